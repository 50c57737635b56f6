"""What a method sees: one estimation run (one seed) on one pool, limited to what it declared.

Always available: ``x``, ``y`` (observed labels, on ``device``), ``num_classes``,
``seed``, ``recipe``, ``device``, ``early_epoch``, ``make_model()``, ``len(ctx)``.
Each other attribute belongs to one need, and reading it without having declared
that need raises ``MissingNeed``, even when another method made the part exist:

- ``dynamics``: ``Dynamics`` of the training forward passes, arrays (N, E);
- ``eval_dynamics``: the same statistics from a clean no-grad pass after each epoch;
- ``checkpoints``: ``checkpoints`` ({epoch: state_dict} at ``recipe.checkpoint_epochs()``),
  ``model_at(epoch)`` and ``lrs`` (mean learning rate per epoch);
- ``final_model``: ``final_model`` (eval mode) and ``final_logits``;
- ``features``: penultimate features of the final model, (N, D) float32;
- ``folds``: ``FoldPredictions`` (out-of-sample probabilities from K-fold models);
- ``early_runs``: ``early_models``, ``recipe.early_runs`` models trained independently
  from fresh initialisations up to ``early_epoch`` (EL2N and GraNd average over them);
- ``ensemble``: ``Ensemble`` of K = ``recipe.early_runs`` full runs (this estimation run
  and K - 1 more from fresh initialisations): each run's AUM and final logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import torch

from .dynamics import Dynamics
from .recipes import Recipe
from .train import predict_logits

#: What a method may ask the runner to produce.
NEEDS = frozenset({"dynamics", "eval_dynamics", "checkpoints", "final_model", "features", "folds", "early_runs",
                   "ensemble"})

#: values (float32 elements) that one pass over a chunk of samples may hold at once on the CPU, where
#: the resident memory is the limit: 2^25 values, 128 MiB. A chunk is this budget divided by what one
#: sample holds, ``copies`` times its ``activation_values`` (the copies a kind of pass keeps, measured
#: below), so it follows the model and the input shape rather than a fixed count of samples
ACTIVATION_BUDGET = 1 << 25
#: the budget on an accelerator (4 GiB of float32), whose memory is not the process's and whose
#: throughput wants larger batches
ACCELERATOR_BUDGET = 1 << 30
#: copies of a sample's activation values held at the peak of a no-grad forward pass, and of a pass
#: that differentiates w.r.t. the input (its saved tensors and gradients); measured as peak RSS on
#: airbench on 32 x 32 images, one thread: 0.42 and 1.81 (widths 32-64-64, 186k values a sample),
#: 0.34 and 1.74 (64-256-256, 380k), the same at 64 and 256 samples a pass
NO_GRAD_COPIES, BACKWARD_COPIES = 0.5, 2.0


def activation_budget(device) -> int:
    """``ACTIVATION_BUDGET`` for a CPU device, ``ACCELERATOR_BUDGET`` for any other."""
    return ACTIVATION_BUDGET if torch.device(device).type == "cpu" else ACCELERATOR_BUDGET


def activation_values(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Values of one sample's forward pass: its input plus the output of every leaf module, read by
    hooks on a no-grad pass of the first row of x (in eval mode, the model's mode restored)."""
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    sizes = [x[:1].numel()]

    def hook(module, inputs, output):
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        sizes.append(sum(o.numel() for o in outputs if isinstance(o, torch.Tensor)))

    hooks = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x[:1])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return max(1, sum(sizes))


def sample_chunk(model: torch.nn.Module, x: torch.Tensor, copies: float = 1.0, extra: int = 0,
                 budget: int | None = None) -> int:
    """Samples per pass of ``model`` over rows of x: ``budget`` (default ``activation_budget(x.device)``)
    over what a sample holds, ``copies`` times its ``activation_values`` plus ``extra`` values of
    its own (at least 1)."""
    if not len(x):
        return 1
    budget = activation_budget(x.device) if budget is None else budget
    return max(1, int(budget // (copies * activation_values(model, x) + extra)))


class MissingNeed(RuntimeError):
    """A method read a part of the context it did not declare in ``needs``."""


@dataclass(frozen=True)
class Pool:
    """The samples hardness is estimated on; ``key`` names it in caches and records."""
    key: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    planted: np.ndarray | None = None  # mask of planted samples (detection track)
    spec: tuple = ()  # (kind, planting, seed): how ``Estimator.pool`` rebuilds it in another process
    rows: np.ndarray | None = None  # the rows of the dataset's split (train, or train + test) it holds

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


class Ensemble:
    """K full training runs on the pool, the estimation run first: ``aum`` (K, N), each run's
    mean training margin; ``final_logits`` (K, N, C), each final model's logits (eval mode).
    Each is read only when asked for."""

    def __init__(self, run: "EstimationRun"):
        self._run = run

    @cached_property
    def aum(self) -> np.ndarray:
        first = self._run.part("dynamics").margin.mean(axis=1)
        return np.concatenate([first[None], np.asarray(self._run.part("ensemble")["aum"])])

    @cached_property
    def final_logits(self) -> torch.Tensor:
        extra = torch.as_tensor(self._run.part("ensemble")["logits"]).to(self._run.device)
        return torch.cat([self._run.final_logits[None].float(), extra])


class EstimationRun:
    """Everything one estimation run can provide, built lazily and shared by the methods
    scored on it. ``loaders`` maps a need to a function that builds that part (reading the
    cache or training); parts given directly (tests) need no loader."""

    def __init__(self, pool: Pool, seed: int, recipe: Recipe, device: torch.device,
                 loaders: dict[str, Callable[[], object]] | None = None, **parts):
        self.pool, self.seed, self.recipe, self.device = pool, seed, recipe, device
        self._loaders = loaders or {}
        self._parts = dict(parts)

    def part(self, need: str):
        if need not in self._parts:
            if need not in self._loaders:
                raise MissingNeed(f"the estimation run was not asked to build {need!r}")
            self._parts[need] = self._loaders[need]()
        return self._parts[need]

    def make_model(self) -> torch.nn.Module:
        return self.recipe.build(tuple(self.pool.x.shape[1:]), self.pool.num_classes).to(self.device)

    def model_at(self, epoch: int) -> torch.nn.Module:
        checkpoints = self.part("checkpoints")
        if epoch not in checkpoints:
            raise KeyError(f"no checkpoint at epoch {epoch}; kept: {sorted(checkpoints)}")
        model = self.make_model()
        model.load_state_dict(checkpoints[epoch])
        return model.eval()

    @cached_property
    def final_model(self) -> torch.nn.Module:
        return self.model_at(self.recipe.epochs)

    @cached_property
    def final_logits(self) -> torch.Tensor:
        return predict_logits(self.final_model, self.pool.x,
                              sample_chunk(self.final_model, self.pool.x, NO_GRAD_COPIES))

    @cached_property
    def features(self) -> np.ndarray:
        """Filled chunk by chunk (``sample_chunk`` rows a pass): no list of chunks concatenated after."""
        model, x = self.final_model, self.pool.x
        size, out = sample_chunk(model, x, NO_GRAD_COPIES), None
        with torch.no_grad():
            for start in range(0, len(x), size):
                h = model.embed(x[start:start + size]).cpu().numpy()
                if out is None:
                    out = np.empty((len(x), h.shape[1]), dtype=h.dtype)
                out[start:start + len(h)] = h
        return np.empty((0, 0), dtype=np.float32) if out is None else out

    @cached_property
    def ensemble(self) -> Ensemble:
        return Ensemble(self)

    @cached_property
    def early_models(self) -> list[torch.nn.Module]:
        models = []
        for state in self.part("early_runs"):
            model = self.make_model()
            model.load_state_dict(state)
            models.append(model.eval())
        return models


class Context:
    """One method's view of an estimation run: only the parts it declared."""

    def __init__(self, run: EstimationRun, needs, method: str = "this method"):
        self._run, self._needs, self._method = run, frozenset(needs), method
        self.pool, self.seed, self.recipe, self.device = run.pool, run.seed, run.recipe, run.device
        self.x, self.y, self.num_classes = run.pool.x, run.pool.y, run.pool.num_classes

    def __len__(self) -> int:
        return len(self.y)

    def _require(self, need: str, attribute: str):
        if need not in self._needs:
            declared = ", ".join(sorted(self._needs)) or "nothing"
            raise MissingNeed(f"{self._method} reads ctx.{attribute}, which needs {need!r}, but declared "
                              f"needs={{{declared}}}; add {need!r} to its @register(needs=...)")

    @property
    def early_epoch(self) -> int:
        return self.recipe.early_epoch

    def make_model(self) -> torch.nn.Module:
        return self._run.make_model()

    @property
    def dynamics(self) -> Dynamics:
        self._require("dynamics", "dynamics")
        return self._run.part("dynamics")

    @property
    def eval_dynamics(self) -> Dynamics:
        self._require("eval_dynamics", "eval_dynamics")
        return self._run.part("eval_dynamics")

    @property
    def checkpoints(self) -> dict:
        self._require("checkpoints", "checkpoints")
        return self._run.part("checkpoints")

    @property
    def lrs(self) -> np.ndarray:
        self._require("checkpoints", "lrs")
        return self._run.part("lrs")

    def model_at(self, epoch: int) -> torch.nn.Module:
        """The model as it was after ``epoch`` (1-based), in eval mode."""
        self._require("checkpoints", "model_at")
        return self._run.model_at(epoch)

    @property
    def final_model(self) -> torch.nn.Module:
        self._require("final_model", "final_model")
        return self._run.final_model

    @property
    def final_logits(self) -> torch.Tensor:
        self._require("final_model", "final_logits")
        return self._run.final_logits

    @property
    def features(self) -> np.ndarray:
        self._require("features", "features")
        return self._run.features

    @property
    def folds(self) -> FoldPredictions:
        self._require("folds", "folds")
        return self._run.part("folds")

    @property
    def early_models(self) -> list[torch.nn.Module]:
        self._require("early_runs", "early_models")
        return self._run.early_models

    @property
    def ensemble(self) -> Ensemble:
        self._require("ensemble", "ensemble")
        return self._run.ensemble
