"""The device-resident trainer.

The whole dataset lives on the device as one tensor; a batch is an index slice
of a seeded ``randperm``; augmentation is batched on the device. While training,
the statistics every dynamics-based method needs are recorded from the logits
the step computed anyway.

Many models of one recipe, each on its own rows (K-fold and early runs), train through
``train_models``: one after another, or stacked where that pays (``stacking_pays``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from .dynamics import Dynamics, DynamicsRecorder
from .progress import Progress
from .errors import DeviceUnavailable
from .recipes import Recipe


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("--device cuda was asked for, but torch sees no CUDA device "
                                f"(torch {torch.__version__}); use --device cpu or auto")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generator (model initialisation) and return a CPU generator
    for data order and augmentation, so both are fixed by the one seed."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_optimizer(model, recipe: Recipe):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
    if recipe.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; valid: sgd, adam")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` of ``total``."""
    progress = step / max(1, total)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "onecycle":  # linear warm-up over the first 20%, then linear decay to 0
        return progress / 0.2 if progress < 0.2 else (1 - progress) / 0.8
    raise ValueError(f"unknown schedule {schedule!r}; valid: constant, cosine, onecycle")


def augment(x: torch.Tensor, kind: str, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Batched on-device augmentation: random horizontal flip and/or pad-and-crop
    (``flip-crop``, ``crop``: reflect padding of 4; ``flip-translate``: zero padding of 2)."""
    if kind == "none" or x.ndim != 4:
        return x
    n, _, h, w = x.shape
    if kind == "flip-crop":
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if kind == "flip-translate":  # airbench: flip, then translate by up to 2 pixels (zero fill)
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        kind, pad = "translate", 2
    if kind in ("flip-crop", "crop", "translate"):
        padded = F.pad(x, (pad, pad, pad, pad), mode="constant" if kind == "translate" else "reflect")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return x


@dataclass
class TrainResult:
    model: torch.nn.Module
    dynamics: Dynamics | None = None
    eval_dynamics: Dynamics | None = None
    checkpoints: dict[int, dict] = field(default_factory=dict)
    lrs: np.ndarray | None = None  # learning rate in force during each epoch (its mean over steps)


@torch.no_grad()
def predict_logits(model, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def bf16_autocast(device: torch.device, recorded: bool) -> bool:
    """Whether a training run uses bf16 autocast: on CUDA, unless its per-epoch logits are
    recorded for methods to read (then fp32, like every final-model and fold-model pass,
    ``predict_logits``), so no method reads lower-precision logits than another."""
    return device.type == "cuda" and not recorded


def train(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int, *,
          record: bool = True, eval_every_epoch: bool = False, checkpoint_epochs=(),
          model: torch.nn.Module | None = None, stop_after: int | None = None,
          progress: Progress | None = None) -> TrainResult:
    """Train a fresh model of ``recipe`` on (x, y), already on the target device.

    ``record``: fill per-sample, per-epoch dynamics from the training forward pass.
    ``eval_every_epoch``: also record the same statistics from a clean no-grad pass.
    ``checkpoint_epochs``: 1-based epochs after which a copy of the state is kept.
    ``stop_after``: stop after this many epochs, the learning-rate schedule unchanged
    (the state a full run has at that epoch, e.g. EL2N's early epoch).
    ``progress``: told each epoch's training accuracy (``bench.progress``).
    On CUDA image models use channels_last and the forward pass runs under bf16 autocast,
    except in a recorded run (``bf16_autocast``): logits that methods read are fp32.
    """
    device = x.device
    generator = seed_everything(seed)
    model = (model or recipe.build(tuple(x.shape[1:]), num_classes)).to(device)
    cuda = device.type == "cuda"
    if cuda and x.ndim == 4:
        model = model.to(memory_format=torch.channels_last)
    half = bf16_autocast(device, record or eval_every_epoch)
    model.train()
    optimizer = make_optimizer(model, recipe)
    n = len(y)
    batch_size = n if recipe.batch_size is None else min(recipe.batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    recorder = DynamicsRecorder(y, recipe.epochs) if record else None
    eval_recorder = DynamicsRecorder(y, recipe.epochs) if eval_every_epoch else None
    all_idx = torch.arange(n, device=device)
    wanted = set(checkpoint_epochs)
    result = TrainResult(model)
    lrs = np.zeros(recipe.epochs)

    step = 0
    progress = progress or Progress(None)
    for epoch in range(recipe.epochs if stop_after is None else min(stop_after, recipe.epochs)):
        correct = torch.zeros((), device=device)
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, batch_size):
            factor = lr_factor(recipe.schedule, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * factor
            lrs[epoch] += recipe.lr * factor / steps_per_epoch
            idx = order[start:start + batch_size]
            yb = y[idx]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=half):
                logits = model(augment(x[idx], recipe.augment, generator))
            losses = F.cross_entropy(logits.float(), yb, reduction="none", label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            losses.mean().backward()
            optimizer.step()
            if recorder is not None:
                recorder.update(idx, logits)
            if progress.active:
                correct += (logits.detach().argmax(1) == yb).sum()
            step += 1
        progress.epoch(float(correct) / n if progress.active else None)
        if recorder is not None:
            recorder.end_epoch(epoch)
        if eval_recorder is not None:
            eval_recorder.update(all_idx, predict_logits(model, x))
            eval_recorder.end_epoch(epoch)
        if epoch + 1 in wanted:
            result.checkpoints[epoch + 1] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    model.eval()
    result.lrs = lrs
    result.dynamics = recorder.result() if recorder else None
    result.eval_dynamics = eval_recorder.result() if eval_recorder else None
    return result


@torch.no_grad()
def fold_model_predict(states, fold: np.ndarray, recipe: Recipe, input_shape, num_classes: int, x: torch.Tensor,
                       rows, repeat: int = 0, pool_rows: np.ndarray | None = None) -> torch.Tensor:
    """Out-of-sample softmax probabilities (N, C) of the K-fold models on inputs ``x``: each
    input is scored by the fold model of partition ``repeat`` that held its row out.

    ``states``: the ``states`` of a folds part's ``fold_models.pt`` (``states[repeat][f]``
    the state dict of the model trained without fold f); ``fold``: its ``folds.npz`` ``fold``
    array (R, N_pool), indexed by pool position; ``rows``: the train-split rows of ``x``.
    ``pool_rows``: the train-split row of each pool position (``fold_models.pt``'s
    ``pool_rows``); None when the pool is the whole train split in order (rows = positions).
    A row outside the pool raises: no fold model held it out."""
    rows = np.asarray(rows, dtype=np.int64)
    if pool_rows is None:
        positions = rows
        missing = (rows < 0) | (rows >= fold.shape[1])
    else:
        pool_rows = np.asarray(pool_rows, dtype=np.int64)
        order = np.argsort(pool_rows)
        at = np.searchsorted(pool_rows, rows, sorter=order).clip(0, len(pool_rows) - 1)
        positions = order[at]
        missing = pool_rows[positions] != rows
    if missing.any():
        raise ValueError(f"{int(missing.sum())} rows are not in the pool the fold models were trained on, "
                         f"e.g. {rows[missing][:5].tolist()}")
    assigned = fold[repeat, positions]
    model = recipe.build(tuple(input_shape), num_classes).to(x.device).eval()
    probs = torch.empty(len(rows), num_classes, device=x.device)
    for f in np.unique(assigned):
        model.load_state_dict(states[repeat][int(f)])
        where = torch.as_tensor(np.flatnonzero(assigned == f), device=x.device)
        probs[where] = torch.softmax(predict_logits(model, x[where]).float(), 1)
    return probs


# ---- many models at once ---------------------------------------------------------------------------
# Many models of one recipe trained at once, each on its own rows of one dataset.
#
# The models' parameters are stacked (``torch.func.stack_module_state``) and one
# ``vmap``-ed ``functional_call`` runs all of them per step, as the protocol trainer
# does (``bench.protocol``). Each model keeps what ``train`` would give it:
# its seeded initialisation, its seeded batch order over its own rows, its batch size,
# epochs and learning-rate schedule, so a stacked model equals the one-at-a-time model
# up to floating-point summation order.
#
# Differences from ``bench.protocol.train_stacked``: any optimizer of
# ``make_optimizer`` (its update is elementwise, so torch's own optimizer
# over the stacked tensors updates every model as if alone), label smoothing, and
# training sets of unequal sizes (K-fold training sets differ by a few rows): the
# models are grouped by steps per epoch, and within a group a shorter model's batches
# are padded with a masked row, its loss the mean over its real rows only.

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
                 seeds: list[int], stop_after: int | None = None, stacked: bool | None = None,
                 progress: Progress | None = None) -> list[dict]:
    """One model per (rows[m], seeds[m]), each what ``train(recipe, x[rows[m]], y[rows[m]],
    num_classes, seeds[m], record=False, stop_after=stop_after)`` gives; their state dicts,
    on the CPU. ``stacked``: None decides by ``stacking_pays``. ``progress`` counts every
    model's epochs."""
    if stacked is None:
        stacked = stacking_pays(recipe, x.shape[1:], num_classes, x.device)
    if stacked:
        states = train_many(recipe, x, y, num_classes, rows, seeds, stop_after=stop_after)
        if progress is not None:
            progress.epoch(None, epochs=progress.total)
    else:
        states = []
        for r, seed in zip(rows, seeds):
            idx = torch.as_tensor(r, device=x.device)
            states.append(train(recipe, x[idx], y[idx], num_classes, seed, record=False,
                                stop_after=stop_after, progress=progress).model.state_dict())
    return [{k: v.detach().to("cpu", copy=True) for k, v in state.items()} for state in states]


def _steps(recipe: Recipe, n: int) -> tuple[int, int]:
    batch_size = n if recipe.batch_size is None else min(recipe.batch_size, n)
    return batch_size, math.ceil(n / batch_size)


def train_many(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: list[np.ndarray],
               seeds: list[int], stop_after: int | None = None, max_stack: int = MAX_STACK) -> list[dict[str, torch.Tensor]]:
    """Train one model per (rows[m], seeds[m]), stacked, and return their state dicts (views
    of the stacked tensors, on x's device), in the order given. ``rows[m]`` are the rows of (x, y)
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
