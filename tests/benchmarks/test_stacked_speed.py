"""Speed levers of training and per-sample gradients (run with
``python -m pytest tests/benchmarks/test_stacked_speed.py --benchmark-enable``), each a ratio of
minimum times measured in one run, on one thread (CPU time; see ``_timing``):

- K-fold models trained together (``bench.train.train_models``, stacked) vs one after another,
  15 models (5 folds x 3 repeats) as the K-fold part trains them: the digits MLP (2 epochs) and
  a small MLP (hidden 32) on digits and the MNIST recipe's LeNet-5 (1024 random 28x28 images, 1
  epoch). ``stacking_pays`` must pick the faster: measured on a shared 2-core CPU, the small MLP
  about 3x faster stacked, the digits MLP 256-256 0.8-0.9x (compute-bound) and LeNet 0.5x (vmap
  turns the 15 convolutions into one grouped convolution, which oneDNN runs slower than 15 plain
  ones): on the CPU only small MLPs train stacked.
- LeNet-5 channels-last (what ``build_model`` gives image models) vs the default contiguous
  layout: one ``train`` of 2048 random images, 1 epoch; measured 1.3-1.5x.
- GraNd's per-sample gradient norms of LeNet-5 on 2048 samples: closed form (unfolded patches)
  vs ``vmap(grad)`` of the same model; measured 1.2-1.4x, the closed form's floor being the one
  batched forward and backward it needs.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold

from bench.data import load_dataset
from bench.models import build_model
from bench.recipes import RECIPES
from bench.train import stacking_pays, train_models
from bench.train import train
from methods.gradients import per_sample_grad_norms
from methods_support import single_thread

from ._timing import interleaved, ours_min


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_thread():
        yield


def _random_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def _fold_rows(y, folds=5, repeats=3):
    rows = []
    for r in range(repeats):
        splitter = StratifiedKFold(folds, shuffle=True, random_state=r)
        rows += [train_idx for train_idx, _ in splitter.split(np.zeros(len(y)), y.numpy())]
    return rows


WORKLOADS = {
    "digits-mlp": lambda: (*(lambda d: (d.x_train, d.y_train))(load_dataset("digits")),
                           replace(RECIPES["digits"], epochs=2)),
    "digits-mlp-32": lambda: (*(lambda d: (d.x_train, d.y_train))(load_dataset("digits")),
                              replace(RECIPES["digits"], epochs=2, model_kwargs={"hidden": [32]})),
    "mnist-lenet": lambda: (*_random_images(1024), replace(RECIPES["mnist"], epochs=1)),
}


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_fold_models_stacked_vs_sequential(benchmark, workload):
    x, y, recipe = WORKLOADS[workload]()
    rows = _fold_rows(y)
    seeds = list(range(100, 100 + len(rows)))
    benchmark.group = f"K-fold models: {workload}"
    stacked, baseline_s, outputs = interleaved(
        benchmark, lambda: train_models(recipe, x, y, 10, rows, seeds, stacked=True),
        {"sequential": lambda: train_models(recipe, x, y, 10, rows, seeds, stacked=False)}, rounds=3)
    for a, b in zip(stacked, outputs["sequential"]):
        torch.testing.assert_close(a["head.weight"], b["head.weight"], atol=1e-3, rtol=1e-3)
    speedup = baseline_s["sequential"] / ours_min(benchmark)
    benchmark.extra_info.update(sequential_s=baseline_s["sequential"], speedup=speedup)
    print(f"\n{workload}, {len(rows)} models: stacked {ours_min(benchmark):.3f} s, "
          f"sequential {baseline_s['sequential']:.3f} s ({speedup:.2f}x)")
    chosen = stacking_pays(recipe, x.shape[1:], 10, torch.device("cpu"))
    assert chosen == (speedup > 1), f"stacking_pays says {chosen}, but stacked is {speedup:.2f}x"


def test_lenet_channels_last_vs_contiguous(benchmark):
    x, y = _random_images(2048)
    recipe = replace(RECIPES["mnist"], epochs=1)

    def contiguous():
        torch.manual_seed(0)
        model = recipe.build((1, 28, 28), 10).to(memory_format=torch.contiguous_format)
        return train(recipe, x, y, 10, 0, record=False, model=model)

    benchmark.group = "LeNet-5 training: channels-last vs contiguous"
    _, baseline_s, _ = interleaved(benchmark, lambda: train(recipe, x, y, 10, 0, record=False),
                                   {"contiguous": contiguous}, rounds=3)
    speedup = baseline_s["contiguous"] / ours_min(benchmark)
    benchmark.extra_info.update(contiguous_s=baseline_s["contiguous"], speedup=speedup)
    print(f"\nLeNet-5, 1 epoch of 2048: channels-last {ours_min(benchmark):.3f} s, "
          f"contiguous {baseline_s['contiguous']:.3f} s ({speedup:.2f}x)")
    assert speedup > 1


def test_grand_closed_form_vs_vmap_on_lenet(benchmark):
    x, y = _random_images(2048)
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10).eval()
    benchmark.group = "GraNd per-sample gradient norms: LeNet-5, 2048 samples"
    closed, baseline_s, outputs = interleaved(
        benchmark, lambda: per_sample_grad_norms(model, x, y),
        {"vmap": lambda: per_sample_grad_norms(model, x, y, closed_form=False)}, rounds=5)
    np.testing.assert_allclose(closed, outputs["vmap"], rtol=1e-4)
    speedup = baseline_s["vmap"] / ours_min(benchmark)
    benchmark.extra_info.update(vmap_s=baseline_s["vmap"], speedup=speedup)
    print(f"\nGraNd, LeNet-5, 2048 samples: closed form {ours_min(benchmark):.3f} s, "
          f"vmap(grad) {baseline_s['vmap']:.3f} s ({speedup:.2f}x)")
    assert speedup > 1
