"""Many models of one recipe trained at once, each on its own rows of one dataset.

The models' parameters are stacked (``torch.func.stack_module_state``) and one
``vmap``-ed ``functional_call`` runs all of them per step, as the protocol trainer
does (``bench.protocol``). Each model keeps what ``bench.train.train`` would give it:
its seeded initialisation, its seeded batch order over its own rows, its batch size,
epochs and learning-rate schedule, so a stacked model equals the one-at-a-time model
up to floating-point summation order.

Differences from ``bench.protocol.train_stacked``: any optimizer of
``bench.train.make_optimizer`` (its update is elementwise, so torch's own optimizer
over the stacked tensors updates every model as if alone), label smoothing, and
training sets of unequal sizes (K-fold training sets differ by a few rows): the
models are grouped by steps per epoch, and within a group a shorter model's batches
are padded with a masked row, its loss the mean over its real rows only.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from .recipes import Recipe
from .train import lr_factor, make_optimizer, seed_everything, train

#: models per vmap group: bounds memory (activations grow with it), large enough to amortise dispatch
MAX_STACK = 16


def can_stack(recipe: Recipe, input_shape, num_classes: int) -> bool:
    """Stacked training needs a model without buffers (batch norm) and no augmentation
    (whose random draws depend on the batch being augmented alone)."""
    probe = recipe.build(tuple(input_shape), num_classes)
    return recipe.augment == "none" and not any(True for _ in probe.buffers())


#: on the CPU, stacking pays for MLPs up to about this many parameters: 15 K-fold models of the
#: digits recipe (2 epochs, one thread) train 3.0x faster stacked at 2.4k parameters, 2.5x at 9k,
#: 1.7x at 26k, 0.8x at 85k (the digits MLP 256-256): larger models are compute-bound, and a
#: batched matrix product is no faster than the same products one after another
CPU_STACK_MAX_PARAMS = 40_000


def stacking_pays(recipe: Recipe, input_shape, num_classes: int, device: torch.device) -> bool:
    """Whether to train stacked: when it can and runs on CUDA, or, on the CPU, for small MLPs
    (``CPU_STACK_MAX_PARAMS``). On the CPU, vmap turns M convolutions into one grouped
    convolution, which oneDNN runs 2-3x slower than the M convolutions one after another
    (LeNet-5, 15 models, batch 128: tests/benchmarks/test_stacked_speed.py)."""
    if not can_stack(recipe, input_shape, num_classes):
        return False
    if device.type == "cuda":
        return True
    probe = recipe.build(tuple(input_shape), num_classes)
    return (not any(isinstance(m, torch.nn.Conv2d) for m in probe.modules())
            and sum(p.numel() for p in probe.parameters()) <= CPU_STACK_MAX_PARAMS)


def train_models(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: list[np.ndarray],
                 seeds: list[int], stop_after: int | None = None, stacked: bool | None = None) -> list[dict]:
    """One model per (rows[m], seeds[m]), each what ``train(recipe, x[rows[m]], y[rows[m]],
    num_classes, seeds[m], record=False, stop_after=stop_after)`` gives; their state dicts,
    on the CPU. ``stacked``: None decides by ``stacking_pays``."""
    if stacked is None:
        stacked = stacking_pays(recipe, x.shape[1:], num_classes, x.device)
    if stacked:
        states = train_many(recipe, x, y, num_classes, rows, seeds, stop_after=stop_after)
    else:
        states = []
        for r, seed in zip(rows, seeds):
            idx = torch.as_tensor(r, device=x.device)
            states.append(train(recipe, x[idx], y[idx], num_classes, seed, record=False,
                                stop_after=stop_after).model.state_dict())
    return [{k: v.detach().to("cpu", copy=True) for k, v in state.items()} for state in states]


def _steps(recipe: Recipe, n: int) -> tuple[int, int]:
    batch_size = n if recipe.batch_size is None else min(recipe.batch_size, n)
    return batch_size, math.ceil(n / batch_size)


def train_many(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: list[np.ndarray],
               seeds: list[int], stop_after: int | None = None, max_stack: int = MAX_STACK) -> list[dict[str, torch.Tensor]]:
    """Train one model per (rows[m], seeds[m]) and return their state dicts (CPU copies
    not made: tensors on x's device), in the order given. ``rows[m]`` are the rows of (x, y)
    model m trains on, in the order ``train(recipe, x[rows[m]], y[rows[m]], ...)`` would see them.
    ``stop_after``: as ``train``'s, stop after that many epochs, the schedule unchanged."""
    if len(rows) != len(seeds):
        raise ValueError(f"{len(rows)} row sets for {len(seeds)} seeds")
    groups: dict = {}
    for m, r in enumerate(rows):
        groups.setdefault(_steps(recipe, len(r)), []).append(m)
    states: list = [None] * len(rows)
    for members in groups.values():
        for i in range(0, len(members), max_stack):
            chunk = members[i:i + max_stack]
            params = _train_group(recipe, x, y, num_classes, [rows[m] for m in chunk], [seeds[m] for m in chunk],
                                  stop_after)
            for j, m in enumerate(chunk):
                states[m] = {k: v[j] for k, v in params.items()}
    return states


def _train_group(recipe: Recipe, x, y, num_classes: int, rows: list[np.ndarray], seeds: list[int],
                 stop_after: int | None) -> dict:
    device = x.device
    m = len(rows)
    sizes = torch.as_tensor([len(r) for r in rows], device=device)
    n_max = int(sizes.max())
    batch_sizes, steps = zip(*(_steps(recipe, len(r)) for r in rows))
    steps_per_epoch = steps[0]
    models, generators = [], []
    for seed in seeds:
        generators.append(seed_everything(seed))  # as train(): init from the global seed, order from this one
        models.append(recipe.build(tuple(x.shape[1:]), num_classes).to(device))
    params, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    fmodel = copy.deepcopy(models[0]).to("meta")
    optimizer = make_optimizer(_Params(list(params.values())), recipe)

    def forward(p, xb):
        return functional_call(fmodel, p, (xb,))

    # each model's rows padded to n_max with its first row (never selected unpadded: see below)
    table = torch.stack([torch.as_tensor(np.concatenate([r, np.full(n_max - len(r), r[0])]), device=device)
                         for r in rows])  # (M, n_max)
    bs = torch.as_tensor(batch_sizes, device=device)
    width = max(batch_sizes)
    offsets = torch.arange(width, device=device)
    total = recipe.epochs * steps_per_epoch
    cuda = device.type == "cuda"
    step = 0
    for _ in range(recipe.epochs if stop_after is None else min(stop_after, recipe.epochs)):
        # (M, n_max): each model's own randperm of its own size, padded
        orders = torch.stack([torch.cat([torch.randperm(len(r), generator=g), torch.zeros(n_max - len(r), dtype=torch.long)])
                              for r, g in zip(rows, generators)]).to(device)
        for s in range(steps_per_epoch):
            factor = lr_factor(recipe.schedule, step, total)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * factor
            pos = s * bs[:, None] + offsets  # (M, width) positions in each model's order
            valid = (offsets < bs[:, None]) & (pos < sizes[:, None])
            sel = table.gather(1, orders.gather(1, pos.clamp_max(n_max - 1)))  # (M, width) rows of x
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = torch.vmap(forward)(params, x[sel])
            losses = F.cross_entropy(logits.float().reshape(-1, num_classes), y[sel].reshape(-1), reduction="none",
                                     label_smoothing=recipe.label_smoothing).view(m, width)
            valid_f = valid.to(losses.dtype)
            loss = ((losses * valid_f).sum(1) / valid_f.sum(1)).sum()  # models are independent: gradients do not mix
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return {k: v.detach() for k, v in params.items()}


class _Params:
    """The stacked parameter tensors in the shape ``make_optimizer`` reads (``.parameters()``)."""

    def __init__(self, tensors):
        self._tensors = tensors

    def parameters(self):
        return iter(self._tensors)
