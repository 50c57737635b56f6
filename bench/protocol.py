"""Protocol models: fresh models trained on subsets of a pool (tracks S, P and R).

A protocol model depends only on its training data (a subset of the pool's rows,
plus synthetic rows for SMOTE), the recipe and its seed. Its predictions are cached
under a sha256 of exactly those, so methods whose hard sets coincide share one
model, and a rerun skips every model already trained.

Small models without batch norm (MLPs, the small CNN) train many at once: the
models' parameters are stacked (``torch.func.stack_module_state``) and one
``vmap``-ed ``functional_call`` runs all of them per step. Each model keeps its own
seeded initialisation and its own seeded batch order, drawn exactly as
``bench.train.train`` draws them, so a batched model equals the one-at-a-time model
up to floating-point summation order. Everything else falls back to ``train``.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state
from tqdm import tqdm

from . import store as st
from .fingerprint import protocol_fingerprint
from .recipes import Recipe
from .train import lr_factor, predict_logits, seed_everything, train

MAX_STACK = 64  # models per vmap group: bounds memory, large enough to amortise dispatch


@dataclass(frozen=True, eq=False)
class Cell:
    """One protocol model: the pool rows it trains on (repeats allowed, order irrelevant),
    optional synthetic rows appended (``extra_x``, ``extra_y``), and its seed."""
    indices: np.ndarray
    seed: int
    extra_x: np.ndarray | None = None
    extra_y: np.ndarray | None = None
    tag: dict = field(default_factory=dict)  # free-form, for the caller; not part of the key

    @property
    def size(self) -> int:
        return len(self.indices) + (0 if self.extra_y is None else len(self.extra_y))


def data_key(cell: Cell) -> str:
    """sha256 of a cell's training data alone (sorted pool rows and synthetic rows)."""
    h = hashlib.sha256()
    h.update(np.sort(np.asarray(cell.indices, dtype=np.int64)).tobytes())
    if cell.extra_y is not None:
        h.update(b"extra")
        h.update(np.ascontiguousarray(cell.extra_x, dtype=np.float32).tobytes())
        h.update(np.asarray(cell.extra_y, dtype=np.int64).tobytes())
    return h.hexdigest()


def cell_key(cell: Cell, recipe: Recipe, pool_key: str, eval_names=()) -> str:
    """sha256 of (sorted subset indices, synthetic rows, recipe key, seed, pool key, eval sets),
    and of the code that trains protocol models: a changed trainer trains them again."""
    h = hashlib.sha256(data_key(cell).encode())
    h.update(f"|{recipe.key()}|{int(cell.seed)}|{pool_key}|{','.join(sorted(eval_names))}".encode())
    h.update(protocol_fingerprint().encode())
    return h.hexdigest()


def can_batch(recipe: Recipe, model: torch.nn.Module) -> bool:
    """Stacked training needs no buffers (batch norm), no augmentation and plain SGD."""
    return (recipe.optimizer == "sgd" and recipe.augment == "none"
            and not any(True for _ in model.buffers()))


class ProtocolTrainer:
    """Trains the protocol models of one pool and returns their predictions.

    ``evals`` maps a name to the inputs predictions are wanted on (e.g. ``{"pool": x}``
    or ``{"test": x_test}``); every model predicts on all of them.
    """

    def __init__(self, recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, pool_key: str,
                 evals: dict[str, torch.Tensor], cache_dir: str | Path | None = None, batched: str | bool = "auto",
                 quiet: bool = True, desc: str = "protocol models"):
        self.recipe, self.x, self.y, self.num_classes = recipe, x, y, num_classes
        self.pool_key, self.evals = pool_key, evals
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batched, self.quiet, self.desc = batched, quiet, desc
        self.trained = 0  # models trained (not loaded) by this trainer, for tests and logs

    def key(self, cell: Cell) -> str:
        return cell_key(cell, self.recipe, self.pool_key, self.evals)

    def _path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.npz"

    def predict(self, cells: list[Cell]) -> list[dict[str, np.ndarray]]:
        """Predicted labels of every cell's model on every eval set (trained or cached)."""
        keys = [self.key(c) for c in cells]
        found: dict[str, dict] = {}
        todo: dict[str, Cell] = {}
        for key, cell in zip(keys, cells):
            if key in found or key in todo:
                continue
            cached = st.read_or_none(self._path(key), st.read_npz) if self.cache_dir is not None else None
            if cached is not None:
                found[key] = cached
            else:
                todo[key] = cell
        if todo:
            for key, preds in self._train(list(todo.items())):
                found[key] = preds
                if self.cache_dir is not None:
                    st.write_npz(self._path(key), **preds)
        return [found[k] for k in keys]

    # ---- training ------------------------------------------------------------------
    def _use_batched(self) -> bool:
        if self.batched == "auto" or self.batched is True:
            probe = self.recipe.build(tuple(self.x.shape[1:]), self.num_classes)
            ok = can_batch(self.recipe, probe)
            if self.batched is True and not ok:
                raise ValueError("this recipe cannot train stacked (batch norm, augmentation or a non-SGD optimizer)")
            return ok
        return False

    def _train(self, items: list[tuple[str, Cell]]):
        if not self._use_batched():
            for key, cell in tqdm(items, desc=self.desc, disable=self.quiet):
                yield key, self._train_one(cell)
            return
        # vmap needs equal training-set sizes within a group. Full batch: group by training set,
        # so a group's models share one input (one large matrix product instead of per-model copies).
        full_batch = self.recipe.batch_size is None
        by_size: dict = {}
        for item in items:
            group_key = data_key(item[1]) if full_batch else item[1].size
            by_size.setdefault(group_key, []).append(item)
        groups = [g[i:i + MAX_STACK] for g in by_size.values() for i in range(0, len(g), MAX_STACK)]
        bar = tqdm(total=len(items), desc=self.desc, disable=self.quiet)
        for group in groups:
            preds = self._train_group([c for _, c in group])
            for (key, _), p in zip(group, preds):
                yield key, p
            bar.update(len(group))
        bar.close()

    def _data(self, cell: Cell) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(np.sort(np.asarray(cell.indices, dtype=np.int64)), device=self.x.device)
        x, y = self.x[idx], self.y[idx]
        if cell.extra_y is not None:
            x = torch.cat([x, torch.as_tensor(cell.extra_x, dtype=x.dtype, device=x.device).reshape(-1, *x.shape[1:])])
            y = torch.cat([y, torch.as_tensor(cell.extra_y, dtype=y.dtype, device=y.device)])
        return x, y

    def _labels(self, logits: torch.Tensor) -> np.ndarray:
        dtype = np.uint8 if self.num_classes <= 256 else np.int32
        return logits.argmax(-1).cpu().numpy().astype(dtype)

    def _train_one(self, cell: Cell) -> dict[str, np.ndarray]:
        x, y = self._data(cell)
        model = train(self.recipe, x, y, self.num_classes, cell.seed, record=False).model
        self.trained += 1
        return {name: self._labels(predict_logits(model, ex)) for name, ex in self.evals.items()}

    def _train_group(self, cells: list[Cell]) -> list[dict[str, np.ndarray]]:
        fmodel, params = train_stacked(self.recipe, self.x, self.y, self.num_classes, cells)
        self.trained += len(cells)
        out = [dict() for _ in cells]
        for name, ex in self.evals.items():
            labels = self._labels(predict_stacked(fmodel, params, ex))  # (M, Ne)
            for m in range(len(cells)):
                out[m][name] = labels[m]
        return out


def _bank(x: torch.Tensor, y: torch.Tensor, cells: list[Cell]):
    """All rows the cells train on: the pool, then each cell's synthetic rows; and each
    cell's row indices into it (M, n), pool rows sorted so the order is the subset's own."""
    xs, ys, rows, offset = [x], [y], [], len(y)
    for cell in cells:
        idx = np.sort(np.asarray(cell.indices, dtype=np.int64))
        if cell.extra_y is not None:
            k = len(cell.extra_y)
            xs.append(torch.as_tensor(cell.extra_x, dtype=x.dtype, device=x.device).reshape(-1, *x.shape[1:]))
            ys.append(torch.as_tensor(cell.extra_y, dtype=y.dtype, device=y.device))
            idx = np.concatenate([idx, offset + np.arange(k)])
            offset += k
        rows.append(idx)
    return torch.cat(xs), torch.cat(ys), torch.as_tensor(np.stack(rows), device=x.device)


def train_stacked(recipe: Recipe, x: torch.Tensor, y: torch.Tensor, num_classes: int, cells: list[Cell]):
    """Train one model per cell at once; every cell must have the same training-set size.

    Returns ``(fmodel, params)``: a stateless copy of the architecture and the stacked
    parameters (leading dimension = cell). Initialisation and batch order per cell are
    those of ``bench.train.train`` with the cell's seed; the update is torch's SGD
    (momentum, Nesterov when momentum > 0, weight decay) written out for stacked tensors.
    """
    sizes = {c.size for c in cells}
    if len(sizes) != 1:
        raise ValueError(f"stacked training needs equal training-set sizes; got {sorted(sizes)}")
    n = sizes.pop()
    device = x.device
    models, generators = [], []
    for cell in cells:
        generators.append(seed_everything(cell.seed))  # as train(): init from the global seed
        models.append(recipe.build(tuple(x.shape[1:]), num_classes).to(device))
    params, _ = stack_module_state(models)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    fmodel = copy.deepcopy(models[0]).to("meta")

    def forward(p, xb):
        return functional_call(fmodel, p, (xb,))

    bank_x, bank_y, rows = _bank(x, y, cells)
    shared = bool((rows == rows[0]).all())  # one subset for all: feed its rows once (in_dims None)
    batch_size = n if recipe.batch_size is None else min(recipe.batch_size, n)
    full_batch = batch_size == n
    steps_per_epoch = math.ceil(n / batch_size)
    total = recipe.epochs * steps_per_epoch
    m = len(cells)
    momentum, wd, nesterov = recipe.momentum, recipe.weight_decay, recipe.momentum > 0
    buffers = {k: None for k in params}
    if shared and full_batch:
        x_shared, y_shared = bank_x[rows[0]], bank_y[rows[0]].expand(m, n)
    step = 0
    for _ in range(recipe.epochs):
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)  # (M, n)
        for start in range(0, n, batch_size):
            lr = recipe.lr * lr_factor(recipe.schedule, step, total)
            if shared and full_batch:  # every model sees the same full batch; order does not matter
                logits = torch.vmap(forward, in_dims=(0, None))(params, x_shared)
                yb = y_shared
            else:
                sel = rows.gather(1, orders[:, start:start + batch_size])  # (M, B) bank rows
                logits = torch.vmap(forward)(params, bank_x[sel])
                yb = bank_y[sel]
            loss = F.cross_entropy(logits.reshape(-1, num_classes), yb.reshape(-1), reduction="none")
            loss = loss.view(m, -1).mean(1).sum()  # models are independent: gradients do not mix
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads):
                    if wd:
                        g = g.add(p, alpha=wd)
                    if momentum:
                        if buffers[name] is None:
                            buffers[name] = g.clone()
                        else:
                            buffers[name].mul_(momentum).add_(g)
                        g = g.add(buffers[name], alpha=momentum) if nesterov else buffers[name]
                    p.add_(g, alpha=-lr)
            step += 1
    return fmodel, {k: v.detach() for k, v in params.items()}


@torch.no_grad()
def predict_stacked(fmodel, params: dict, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits of every stacked model on x: (M, N, C)."""
    def forward(p, xb):
        return functional_call(fmodel, p, (xb,))

    return torch.cat([torch.vmap(forward, in_dims=(0, None))(params, x[i:i + batch_size])
                      for i in range(0, len(x), batch_size)], dim=1)
