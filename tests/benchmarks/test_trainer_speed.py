"""Trainer speed (run with ``python -m pytest tests/benchmarks --benchmark-enable``).

For each workload, one test measures three variants in one run, interleaved round by round
(see ``_timing.interleaved``), and asserts two ratios of minimum times:
- recording overhead: ``train(record=True)`` (the benchmark) vs ``train(record=False)``,
  at most 5% slower. Measured: digits-mlp ~3.4% (60 alternating runs each, CPU time: the
  recorder's own calls take ~4 ms of a ~120 ms run), the conv nets < 1%; single runs of this test
  under a load average of 4-9 read between -3% and +7% for the MLP: re-run a failure once before calling it real;
- our device-resident trainer, recording dynamics, vs a plain shuffling ``DataLoader`` loop over
  the same tensors, model and optimiser that records nothing: the loop's time / ours must reach
  ``MIN_SPEEDUP[workload]``. The gain is the DataLoader's per-sample indexing and collation, so
  it is clear for a small MLP (dispatch-bound: >= 1.05x) and small for conv nets (compute-bound),
  where the honest claim is parity: >= 0.95x, i.e. no slower within timing noise.
Both sides run on one thread (see ``one_thread``).

Workloads: ``digits-mlp`` (the digits recipe, 5 epochs), ``mnist-lenet`` (the MNIST default
recipe: LeNet-5 with Adam, 2048 random 28x28 images, 1 epoch) and ``mnist-shaped-cnn`` (the small
CNN, 512 random 28x28 images, 1 epoch).
"""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from bench.data import Dataset, load_dataset
from bench.recipes import RECIPES, Recipe, recipe_for
from bench.train import make_optimizer, seed_everything, train
from methods_support import single_thread

from ._timing import interleaved, ours_min


def _random_images(n):
    g = torch.Generator().manual_seed(0)
    return Dataset("random-28x28", torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
                   torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64), 10)


WORKLOADS = {
    "digits-mlp": lambda: (load_dataset("digits"), recipe_for("digits", epochs=5)),
    "mnist-lenet": lambda: (_random_images(2048), replace(RECIPES["mnist"], epochs=1)),
    "mnist-shaped-cnn": lambda: (_random_images(512), Recipe(model="cnn", epochs=1, batch_size=128, checkpoints=1)),
}
ROUNDS = {"digits-mlp": 30, "mnist-lenet": 15, "mnist-shaped-cnn": 8}
MAX_RECORDING_OVERHEAD = 0.05
#: DataLoader loop time / ours (recording), measured on a shared 2-core CPU, one thread, CPU time
#: (min of N): digits-mlp 1.08-1.24x; mnist-lenet 0.95-1.08x (0.85-0.93x in two runs with fewer
#: rounds under a load average of 9); mnist-shaped-cnn 0.94-1.10x. For the conv nets the
#: convolutions are the time and the DataLoader's collation ~2-4% of it: the claim there is parity,
#: asserted with 5% for timing noise.
MIN_SPEEDUP = {"digits-mlp": 1.05, "mnist-lenet": 0.95, "mnist-shaped-cnn": 0.95}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def dataloader_loop(recipe: Recipe, x, y, num_classes, seed):
    """The baseline: the same model and optimiser, batches from a shuffling DataLoader."""
    seed_everything(seed)
    model = recipe.build(tuple(x.shape[1:]), num_classes)
    optimizer = make_optimizer(model, recipe)
    loader = DataLoader(TensorDataset(x, y), batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_training_speed(benchmark, workload):
    data, recipe = WORKLOADS[workload]()
    x, y, c = data.x_train, data.y_train, data.num_classes
    benchmark.group = f"training: {workload}"
    result, baseline_s, outputs = interleaved(
        benchmark, lambda: train(recipe, x, y, c, 0, record=True),
        {"no-recording": lambda: train(recipe, x, y, c, 0, record=False),
         "dataloader": lambda: dataloader_loop(recipe, x, y, c, 0)},
        rounds=ROUNDS[workload])
    assert result.dynamics is not None and outputs["no-recording"].dynamics is None
    assert all(torch.isfinite(p).all() for p in outputs["dataloader"].parameters())

    ours = ours_min(benchmark)
    overhead = ours / baseline_s["no-recording"] - 1
    speedup = baseline_s["dataloader"] / ours
    benchmark.extra_info.update(no_recording_s=baseline_s["no-recording"], dataloader_s=baseline_s["dataloader"],
                                recording_overhead=overhead, speedup_vs_dataloader=speedup)
    print(f"\n{workload}: recording {ours:.3f} s, no recording {baseline_s['no-recording']:.3f} s "
          f"(overhead {overhead:+.1%}), DataLoader loop {baseline_s['dataloader']:.3f} s (ours {speedup:.2f}x)")
    assert overhead <= MAX_RECORDING_OVERHEAD, f"recording costs {overhead:.1%} (> {MAX_RECORDING_OVERHEAD:.0%})"
    assert speedup >= MIN_SPEEDUP[workload], (f"the DataLoader loop / ours = {speedup:.2f}x "
                                              f"(< {MIN_SPEEDUP[workload]}x)")
