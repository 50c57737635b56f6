"""What a method sees: one estimation run (one seed) on one pool.

Attributes a method may read, by what it declared in ``needs``:

- always: ``x``, ``y`` (observed labels, on ``device``), ``num_classes``, ``seed``,
  ``recipe``, ``device``, ``make_model()``;
- ``dynamics``: ``Dynamics`` of the training forward passes, arrays (N, E);
- ``eval_dynamics``: the same statistics from a clean no-grad pass after each epoch;
- ``checkpoints``: ``{epoch: state_dict}`` at ``recipe.checkpoint_epochs()``,
  ``model_at(epoch)``, ``early_epoch``, and ``lrs`` (mean learning rate per epoch);
- ``final_model``: the trained model, in eval mode;
- ``features``: penultimate features of the final model, (N, D) float32;
- ``folds``: ``FoldPredictions`` (out-of-sample probabilities from K-fold models).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .dynamics import Dynamics
from .recipes import Recipe
from .train import predict_logits


@dataclass(frozen=True)
class Pool:
    """The samples hardness is estimated on; ``key`` names it in caches and records."""
    key: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    planted: np.ndarray | None = None  # mask of planted samples (detection track)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class FoldPredictions:
    """Out-of-sample predictions from ``repeats`` independent K-fold partitions.

    ``probs[r, i]`` comes from the model of partition r that did not train on i;
    ``fold[r, i]`` is the fold that held i out in partition r.
    """
    probs: np.ndarray  # (R, N, C)
    fold: np.ndarray  # (R, N) int


class Context:
    def __init__(self, pool: Pool, seed: int, recipe: Recipe, device: torch.device, *,
                 dynamics: Dynamics | None = None, eval_dynamics: Dynamics | None = None,
                 checkpoints: dict | None = None, lrs: np.ndarray | None = None, fold_builder=None):
        self.pool, self.seed, self.recipe, self.device = pool, seed, recipe, device
        self.x, self.y, self.num_classes = pool.x, pool.y, pool.num_classes
        self._dynamics, self._eval_dynamics = dynamics, eval_dynamics
        self.checkpoints = checkpoints or {}
        self.lrs = lrs
        self._fold_builder = fold_builder

    def __len__(self) -> int:
        return len(self.y)

    @property
    def dynamics(self) -> Dynamics:
        if self._dynamics is None:
            raise RuntimeError("this method did not declare needs={'dynamics'}")
        return self._dynamics

    @property
    def eval_dynamics(self) -> Dynamics:
        if self._eval_dynamics is None:
            raise RuntimeError("this method did not declare needs={'eval_dynamics'}")
        return self._eval_dynamics

    @property
    def early_epoch(self) -> int:
        return self.recipe.early_epoch

    def make_model(self) -> torch.nn.Module:
        return self.recipe.build(tuple(self.x.shape[1:]), self.num_classes).to(self.device)

    def model_at(self, epoch: int) -> torch.nn.Module:
        """The model as it was after ``epoch`` (1-based), in eval mode."""
        if epoch not in self.checkpoints:
            raise KeyError(f"no checkpoint at epoch {epoch}; kept: {sorted(self.checkpoints)}")
        model = self.make_model()
        model.load_state_dict(self.checkpoints[epoch])
        return model.eval()

    @cached_property
    def final_model(self) -> torch.nn.Module:
        return self.model_at(self.recipe.epochs)

    @cached_property
    def features(self) -> np.ndarray:
        with torch.no_grad():
            model = self.final_model
            return torch.cat([model.embed(self.x[i:i + 2048]) for i in range(0, len(self.x), 2048)]).cpu().numpy()

    @cached_property
    def final_logits(self) -> torch.Tensor:
        return predict_logits(self.final_model, self.x)

    @cached_property
    def folds(self) -> FoldPredictions:
        if self._fold_builder is None:
            raise RuntimeError("this method did not declare needs={'folds'}")
        return self._fold_builder()
