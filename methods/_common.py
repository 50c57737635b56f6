"""Small helpers shared by the method families (not methods themselves)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.context import (BACKWARD_COPIES, NO_GRAD_COPIES, activation_budget,  # noqa: F401 - chunking helpers
                           activation_values, sample_chunk)


def chunks(n: int, size: int):
    """(start, stop) slices covering range(n) in pieces of at most ``size``: bounds memory
    of the vectorised per-sample computations without a per-sample loop."""
    size = max(1, int(size))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def _flat(h: torch.Tensor, max_dim: int) -> torch.Tensor:
    if h.ndim == 4 and h[0].numel() > max_dim:
        side = max(1, int((max_dim / h.shape[1]) ** 0.5))
        h = F.adaptive_avg_pool2d(h, min(side, h.shape[-1]))
    return h.flatten(1)


def layer_chunks(model, x: torch.Tensor, max_dim: int = 4096, batch_size: int | None = None):
    """Yields ``(start, stop, layers)`` over row chunks of x: the input and every block's output
    of a ``BlockNet`` and finally its logits for rows start:stop, each flattened to (B, D).
    Feature maps wider than ``max_dim`` values are average-pooled spatially to the largest grid
    that fits, so that k-NN probes stay affordable. Chunks of ``batch_size`` rows, by default
    ``sample_chunk(model, x)`` (the activation budget over a sample's activation values)."""
    batch_size = batch_size or sample_chunk(model, x)
    with torch.no_grad():
        for start, stop in chunks(len(x), batch_size):
            h = x[start:stop]
            layers = [_flat(h, max_dim)]
            for block in model.blocks:
                h = block(h)
                layers.append(_flat(h, max_dim))
            layers.append(model.head(h.flatten(1)))
            yield start, stop, layers


def layer_representations(model, x: torch.Tensor, max_dim: int = 4096, batch_size: int | None = None,
                          rows: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Every layer of ``layer_chunks`` for all of x (or its ``rows``, in that order), (N, D) each:
    memory N times the summed widths (LeNet on 60,000 MNIST images: 0.6 GB); ``layer_chunks``
    streams instead. Filled chunk by chunk into preallocated tensors, so the chunks are never
    held twice; with ``rows``, only a chunk of them is gathered from x at a time."""
    n = len(x) if rows is None else len(rows)
    batch_size = batch_size or sample_chunk(model, x)
    out = None
    for start, stop in chunks(n, batch_size):
        xb = x[start:stop] if rows is None else x[rows[start:stop]]
        _, _, layers = next(layer_chunks(model, xb, max_dim, len(xb)))
        if out is None:
            out = [torch.empty((n, h.shape[1]), dtype=h.dtype, device=h.device) for h in layers]
        for target, h in zip(out, layers):
            target[start:stop] = h
    return [] if out is None else out
