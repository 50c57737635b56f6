"""Protocol-model training speed (run with ``python -m pytest tests/benchmarks --benchmark-enable``):
many small models stacked (``torch.func`` + ``vmap``, the benchmark) vs one at a time with
``bench.train.train``, on the same cells, both timed in one test, interleaved round by round
(see ``_timing.interleaved``). Asserted: the stacked models agree with the sequential ones
(same models up to floating-point summation order) and stacked training is faster
(sequential / batched > 1, wall-clock time). Both sides use the threads torch has (the suite's
conftest: up to 2), as the tracks run them. The digits MLP does the same arithmetic either way:
on ONE thread stacking gains nothing there (measured 1.00x in CPU time; curvbim 2.1x, its models
sharing one full-batch input); on two threads the stacked models' larger operations parallelise
where one small model's do not (digits: 2.1x wall-clock, min of 6).

Workloads:
- ``digits``: the digits recipe (MLP 256-256, batch 64), 16 pathway-like cells of
  different subsets, one size (what tracks S/P/R train on ``digits``), 5 epochs;
- ``curvbim``: the in-class-imbalance recipe (MLP 784-20-20-10 tanh, full batch), 10
  seeds on one 18k-sample MNIST-shaped subset (one cell of the reproduction), 20 epochs.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.protocol import Cell, ProtocolTrainer
from bench.recipes import RECIPES

from ._timing import interleaved, ours_min


def _digits():
    x, y = load_dataset("digits").pooled()
    rng = np.random.default_rng(0)
    cells = [Cell(rng.choice(len(y), 1400, replace=False), 1000 + i) for i in range(16)]
    return replace(RECIPES["digits"], epochs=5), x, y, cells


def _curvbim():
    g = torch.Generator().manual_seed(0)
    n = 18000
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    cells = [Cell(np.arange(n), 1000 + i) for i in range(10)]
    return replace(RECIPES["curvbim"], epochs=20), x, y, cells


WORKLOADS = {"digits": _digits, "curvbim": _curvbim}
ROUNDS = {"digits": 3, "curvbim": 2}


def _predict(recipe, x, y, cells, batched):
    return ProtocolTrainer(recipe, x, y, 10, "bench", {"pool": x[:500]}, batched=batched).predict(cells)


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_batched_vs_sequential(benchmark, workload):
    recipe, x, y, cells = WORKLOADS[workload]()
    benchmark.group = f"protocol models: {workload}"
    batched, baseline_s, outputs = interleaved(
        benchmark, lambda: _predict(recipe, x, y, cells, True),
        {"sequential": lambda: _predict(recipe, x, y, cells, False)}, rounds=ROUNDS[workload], warmup_rounds=0)
    agree = np.mean([(b["pool"] == s["pool"]).mean() for b, s in zip(batched, outputs["sequential"])])
    assert agree > 0.98  # the same models up to floating-point summation order

    ratio = baseline_s["sequential"] / ours_min(benchmark)
    benchmark.extra_info.update(models=len(cells), epochs=recipe.epochs, sequential_s=baseline_s["sequential"],
                                speedup=ratio, agreement=agree, threads=torch.get_num_threads())
    print(f"\n{workload}: {len(cells)} models x {recipe.epochs} epochs, {torch.get_num_threads()} thread(s): batched "
          f"{ours_min(benchmark):.2f} s, one at a time {baseline_s['sequential']:.2f} s; speed-up {ratio:.2f}x "
          f"(agreement {agree:.3f})")
    assert ratio > 1, f"stacked training is not faster: {ratio:.2f}x"
