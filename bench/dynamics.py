"""Per-sample, per-epoch training statistics, recorded from logits already computed.

Stored as (N, E) arrays, never (N, E, C) logits:
``margin`` z_y - max_{k != y} z_k, ``p_y`` softmax probability of the label,
``loss`` cross-entropy, ``correct`` argmax == y, ``pred`` argmax.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Dynamics:
    margin: np.ndarray
    p_y: np.ndarray
    loss: np.ndarray
    correct: np.ndarray
    pred: np.ndarray

    @property
    def epochs(self) -> int:
        return self.margin.shape[1]

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> "Dynamics":
        return cls(**{f.name: np.asarray(arrays[prefix + f.name]) for f in fields(cls)})


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{k != y} z_k per row: the best other class is the runner-up when the
    top class is the label."""
    top2 = logits.topk(2, dim=1)
    other = torch.where(top2.indices[:, 0] == y, top2.values[:, 1], top2.values[:, 0])
    return logits.gather(1, y[:, None]).squeeze(1) - other


class DynamicsRecorder:
    """Per-sample statistics into preallocated (N, E) device tensors.

    During an epoch the step's detached logits (B x C) are only collected; at the
    epoch's end they are reduced in one vectorised call, which keeps the per-step
    cost to an append (small models are dominated by per-op dispatch). Only
    margin, loss and prediction are stored: p_y = exp(-loss) and correct =
    (pred == y) follow exactly and are derived once at the end.
    """

    def __init__(self, y: torch.Tensor, epochs: int):
        n = len(y)
        self.y = y
        self.margin = torch.zeros((n, epochs), dtype=torch.float32, device=y.device)
        self.loss = torch.zeros((n, epochs), dtype=torch.float32, device=y.device)
        self.pred = torch.zeros((n, epochs), dtype=torch.int64, device=y.device)
        self._idx, self._logits = [], []

    def update(self, idx: torch.Tensor, logits: torch.Tensor):
        self._idx.append(idx)
        self._logits.append(logits.detach())

    @torch.no_grad()
    def end_epoch(self, epoch: int):
        idx, logits = torch.cat(self._idx), torch.cat(self._logits).float()
        self._idx, self._logits = [], []
        y = self.y[idx]
        self.margin[idx, epoch] = margins(logits, y)
        self.loss[idx, epoch] = F.cross_entropy(logits, y, reduction="none")
        self.pred[idx, epoch] = logits.argmax(1)

    def result(self) -> Dynamics:
        loss = self.loss.cpu().numpy()
        pred = self.pred.cpu().numpy()
        return Dynamics(margin=self.margin.cpu().numpy(), p_y=np.exp(-loss), loss=loss,
                        correct=pred == self.y.cpu().numpy()[:, None], pred=pred.astype(np.int16))
