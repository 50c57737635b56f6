"""Small helpers shared by the method families (not methods themselves)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def chunks(n: int, size: int):
    """(start, stop) slices covering range(n) in pieces of at most ``size``: bounds memory
    of the vectorised per-sample computations without a per-sample loop."""
    size = max(1, int(size))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def layer_chunks(model, x: torch.Tensor, max_dim: int = 4096, batch_size: int = 1024):
    """Yields ``(start, stop, layers)`` over row chunks of x: the input and every block's output
    of a ``BlockNet`` and finally its logits for rows start:stop, each flattened to (B, D).
    Feature maps wider than ``max_dim`` values are average-pooled spatially to the largest grid
    that fits, so that k-NN probes stay affordable."""

    def flat(h: torch.Tensor) -> torch.Tensor:
        if h.ndim == 4 and h[0].numel() > max_dim:
            side = max(1, int((max_dim / h.shape[1]) ** 0.5))
            h = F.adaptive_avg_pool2d(h, min(side, h.shape[-1]))
        return h.flatten(1)

    with torch.no_grad():
        for start, stop in chunks(len(x), batch_size):
            h = x[start:stop]
            layers = [flat(h)]
            for block in model.blocks:
                h = block(h)
                layers.append(flat(h))
            layers.append(model.head(h.flatten(1)))
            yield start, stop, layers


def layer_representations(model, x: torch.Tensor, max_dim: int = 4096, batch_size: int = 1024) -> list[torch.Tensor]:
    """Every layer of ``layer_chunks`` for all of x, (N, D) each: memory N times the summed
    widths (LeNet on 60,000 MNIST images: 0.6 GB); ``layer_chunks`` streams instead."""
    outputs = [layers for _, _, layers in layer_chunks(model, x, max_dim, batch_size)]
    return [torch.cat([layer[i] for layer in outputs]) for i in range(len(outputs[0]))]
