"""Protocol-model training speed: many small models stacked (``torch.func`` +
``vmap``) vs one at a time with ``bench.train.train``, on the same cells.

Run with ``python -m pytest tests/benchmarks --benchmark-enable``: the batched side is
the benchmark; the sequential side is timed once (best of 2) and the ratio printed
and stored in ``extra_info``. With benchmarking disabled (the normal suite) both
run once on the smallest setting and only agreement is checked.

Workloads:
- ``digits``: the digits recipe (MLP 256-256, batch 64), 16 pathway-like cells of
  different subsets, one size (what tracks S/P/R train on ``digits``);
- ``curvbim``: the in-class-imbalance recipe (MLP 784-20-20-10 tanh, full batch), 10
  seeds on one 18k-sample MNIST-shaped subset (one cell of the reproduction).
"""
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.protocol import Cell, ProtocolTrainer
from bench.recipes import RECIPES


def _digits(enabled):
    x, y = load_dataset("digits").pooled()
    rng = np.random.default_rng(0)
    count, epochs = (16, 5) if enabled else (4, 1)
    cells = [Cell(rng.choice(len(y), 1400, replace=False), 1000 + i) for i in range(count)]
    return replace(RECIPES["digits"], epochs=epochs), x, y, cells


def _curvbim(enabled):
    g = torch.Generator().manual_seed(0)
    n, count, epochs = (18000, 10, 20) if enabled else (2000, 3, 2)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    cells = [Cell(np.arange(n), 1000 + i) for i in range(count)]
    return replace(RECIPES["curvbim"], epochs=epochs), x, y, cells


WORKLOADS = {"digits": _digits, "curvbim": _curvbim}


def _predict(recipe, x, y, cells, batched):
    return ProtocolTrainer(recipe, x, y, 10, "bench", {"pool": x[:500]}, batched=batched).predict(cells)


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_batched_vs_sequential(benchmark, workload):
    recipe, x, y, cells = WORKLOADS[workload](not benchmark.disabled)
    benchmark.group = f"protocol models: {workload}"
    batched = benchmark.pedantic(_predict, args=(recipe, x, y, cells, True), rounds=2, warmup_rounds=0)
    start = time.perf_counter()
    sequential = _predict(recipe, x, y, cells, False)
    sequential_s = time.perf_counter() - start
    agree = np.mean([(b["pool"] == s["pool"]).mean() for b, s in zip(batched, sequential)])
    assert agree > 0.98  # the same models up to floating-point summation order
    if not benchmark.disabled:
        ratio = sequential_s / benchmark.stats.stats.min
        benchmark.extra_info.update(models=len(cells), epochs=recipe.epochs, sequential_s=sequential_s,
                                    speedup=ratio)
        print(f"\n{workload}: {len(cells)} models x {recipe.epochs} epochs: batched {benchmark.stats.stats.min:.2f} s, "
              f"one at a time {sequential_s:.2f} s; speed-up {ratio:.1f}x")
