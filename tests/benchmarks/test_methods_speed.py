"""Method scoring speed (run with ``python -m pytest tests/benchmarks --benchmark-enable``); each
test times both sides of its ratio in one run, interleaved round by round (``_timing.interleaved``):

- every dynamics-only method scored together (the benchmark) vs one estimation run's training on
  digits (``train`` with recording and the recipe's checkpoints, as ``Estimator`` runs it):
  asserted < 5% of the training;
- GraNd, vectorised (the benchmark: the closed form ``per_sample_grad_norms`` takes for MLPs) vs a
  per-sample autograd loop on the same model and samples, and ``vmap(grad)`` (the path of every
  other architecture) vs the same loop: both asserted faster than the loop (> 1x; the 10x target is
  warned about when missed). The loop is timed on a slice and scaled, to keep the run short. On one
  CPU thread with the digits MLP, ``vmap(grad)`` is only ~2-3x faster: materialising 85k gradient
  values per sample is memory-bound, and a batch-1 backward on CPU carries little overhead to save.
Both run on one thread (see ``one_thread``).
"""
import warnings

import numpy as np
import pytest
import torch

from bench.context import Context, EstimationRun, Pool
from bench.data import load_dataset
from bench.recipes import recipe_for
from bench.registry import get_method, list_methods
from bench.train import train
from methods.gradients import per_sample_grad_norms
from methods_support import loop_grad_norms, single_thread

from ._timing import interleaved, ours_min

MAX_DYNAMICS_SHARE = 0.05


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Both sides of each ratio on one thread: small models gain nothing from a second one,
    and a busy neighbour process makes two-thread barriers erratic on a 2-core machine."""
    with single_thread():
        yield


@pytest.fixture(scope="module")
def digits_run(one_thread):
    data, recipe = load_dataset("digits"), recipe_for("digits")
    x, y = data.x_train, data.y_train
    run = lambda: train(recipe, x, y, data.num_classes, 0, checkpoint_epochs=recipe.checkpoint_epochs())  # noqa: E731
    result = run()
    estimation = EstimationRun(Pool("train", x, y, data.num_classes), 0, recipe, torch.device("cpu"),
                               dynamics=result.dynamics, checkpoints=result.checkpoints, lrs=result.lrs)
    return estimation, run


DYNAMICS_ONLY = [m for m in list_methods() if get_method(m).needs == frozenset({"dynamics"})]


def test_dynamics_methods_cost_under_5_percent_of_training(benchmark, digits_run):
    estimation, run = digits_run
    methods = [get_method(m) for m in DYNAMICS_ONLY]
    contexts = [Context(estimation, m.needs, m.name) for m in methods]
    assert len(methods) >= 8
    benchmark.group = "dynamics-only methods vs training (digits)"
    scores, baseline_s, _ = interleaved(
        benchmark, lambda: [np.asarray(m.fn(ctx)) for m, ctx in zip(methods, contexts)],
        {"training": run}, rounds=5)
    assert all(s.shape == (len(estimation.pool),) for s in scores)

    ratio = ours_min(benchmark) / baseline_s["training"]
    benchmark.extra_info.update(training_s=baseline_s["training"], methods=DYNAMICS_ONLY, ratio=ratio)
    print(f"\nall {len(methods)} dynamics-only methods: {ours_min(benchmark) * 1e3:.2f} ms; "
          f"one estimation run: {baseline_s['training']:.3f} s; ratio {ratio:.3%}")
    assert ratio < MAX_DYNAMICS_SHARE


def test_grand_vectorised_vs_per_sample_loop(benchmark, digits_run):
    estimation, _ = digits_run
    model = estimation.model_at(estimation.recipe.early_epoch)
    x, y = estimation.pool.x, estimation.pool.y
    m = 200  # the loop is timed on a slice and scaled to all N samples
    benchmark.group = "GraNd: vectorised vs per-sample loop (digits, all train samples)"
    vectorised, baseline_s, outputs = interleaved(
        benchmark, lambda: per_sample_grad_norms(model, x, y),  # the MLP takes the closed form
        {"loop": lambda: loop_grad_norms(model, x[:m], y[:m]).detach(),
         "vmap": lambda: per_sample_grad_norms(model, x, y, closed_form=False)}, rounds=5)
    np.testing.assert_allclose(vectorised[:m], outputs["loop"], rtol=1e-4)
    np.testing.assert_allclose(outputs["vmap"], vectorised, rtol=1e-3, atol=1e-6)

    loop_s = baseline_s["loop"] * len(y) / m
    closed_form, vmap_s = ours_min(benchmark), baseline_s["vmap"]
    ratio, vmap_ratio = loop_s / closed_form, loop_s / vmap_s
    benchmark.extra_info.update(loop_s_scaled=loop_s, vmap_s=vmap_s, speedup=ratio, vmap_speedup=vmap_ratio)
    print(f"\nGraNd on {len(y)} samples: closed form {closed_form:.4f} s, vmap(grad) {vmap_s:.3f} s, "
          f"per-sample loop {loop_s:.3f} s (scaled from {m}); speed-up {ratio:.1f}x (vmap: {vmap_ratio:.1f}x)")
    assert ratio > 1, "the vectorised GraNd (closed form) must beat the per-sample loop"
    assert vmap_ratio > 1, "the vectorised GraNd (vmap(grad)) must beat the per-sample loop"
    if vmap_ratio < 10:
        warnings.warn(f"GraNd vmap(grad) speed-up {vmap_ratio:.1f}x is below the 10x target on "
                      f"{torch.get_num_threads()} CPU thread(s): per-sample gradients of a small model are "
                      "memory-bound here")
