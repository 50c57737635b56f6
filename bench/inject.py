"""Planted hardness: corrupt a seeded random subset M of a clean pool.

Each planter takes the clean pool and returns the corrupted pool; the mask of M
is the ground truth of the detection track.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import UnknownName


@dataclass(frozen=True)
class Planted:
    x: torch.Tensor
    y: torch.Tensor
    mask: np.ndarray  # True for the planted samples


def choose_subset(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(rate * n)), replace=False)] = True
    return mask


def label_uniform(x, y, num_classes, mask, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each planted label by a uniformly drawn *different* class:
    adding an offset in 1..C-1 modulo C never returns the original label."""
    offsets = rng.integers(1, num_classes, size=int(mask.sum()))
    y = y.clone()
    idx = torch.as_tensor(np.flatnonzero(mask))
    y[idx] = (y[idx] + torch.as_tensor(offsets, dtype=y.dtype)) % num_classes
    return x, y


PLANTERS = {"label-uniform": label_uniform}


def plant(kind: str, x: torch.Tensor, y: torch.Tensor, num_classes: int, rate: float, seed: int) -> Planted:
    if kind not in PLANTERS:
        raise UnknownName("hardness type", kind, PLANTERS)
    rng = np.random.default_rng([seed, 0x5EED])
    mask = choose_subset(len(y), rate, rng)
    x_new, y_new = PLANTERS[kind](x, y, num_classes, mask, rng)
    return Planted(x_new, y_new, mask)
