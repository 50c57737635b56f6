"""Small helpers shared by the method families (not methods themselves)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def chunks(n: int, size: int):
    """(start, stop) slices covering range(n) in pieces of at most ``size``: bounds memory
    of the vectorised per-sample computations without a per-sample loop."""
    size = max(1, int(size))
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def layer_representations(model, x: torch.Tensor, max_dim: int = 4096, batch_size: int = 1024) -> list[torch.Tensor]:
    """The input and every block's output of a ``BlockNet`` and finally its logits, each
    flattened to (N, D). Feature maps wider than ``max_dim`` values are average-pooled
    spatially to the largest grid that fits, so that k-NN probes stay affordable."""

    def flat(h: torch.Tensor) -> torch.Tensor:
        if h.ndim == 4 and h[0].numel() > max_dim:
            side = max(1, int((max_dim / h.shape[1]) ** 0.5))
            h = F.adaptive_avg_pool2d(h, min(side, h.shape[-1]))
        return h.flatten(1)

    outputs = []
    with torch.no_grad():
        for start, stop in chunks(len(x), batch_size):
            h = x[start:stop]
            layers = [flat(h)]
            for block in model.blocks:
                h = block(h)
                layers.append(flat(h))
            layers.append(model.head(h.flatten(1)))
            outputs.append(layers)
    return [torch.cat([layer[i] for layer in outputs]) for i in range(len(outputs[0]))]
