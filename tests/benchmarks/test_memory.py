"""Memory bounds, measured (run with ``python -m pytest tests/benchmarks --benchmark-enable``).

Two instruments:
- ``tracemalloc`` for numpy (numpy reports its array buffers to it): the exact peak of traced
  bytes during a call, in this process;
- the peak resident set size of a fresh subprocess (``VmHWM`` in ``/proc/self/status``, reset by
  writing 5 to ``/proc/self/clear_refs`` right before the measured call, after a warm-up call on
  a few samples has loaded every lazy import and thread pool), for anything that allocates
  through torch, whose CPU allocator ``tracemalloc`` does not see. glibc is told to map every
  block of 64 KiB or more on its own and to return it when freed, so the RSS follows what is live
  (repeated runs agree to 0.1%); each size runs in its own process.

(a) ``DynamicsRecorder`` at N = 50,000, C = 100, E = 200, driven with synthetic logits batch by
    batch for epochs 1, 2 and E (its (N, E) buffers are preallocated, so later epochs add nothing):
    no tensor it holds has N*E*C elements (it holds no more than N*E each), its tensors sum to
    <= 300 MB, and the process's peak RSS grows by <= 300 MB while recording and while building
    the ``Dynamics`` (``result()``).
(b) Scoring reads the dynamics in place: every context of an estimation run returns the run's one
    ``Dynamics`` object, and a method that reduces one (N, E) statistic (aum, loss, confidence,
    correctness) allocates less than one (N, E) float32 array while it runs; every other
    dynamics-only method allocates at most one (N, E) float32 temporary its formula needs
    (variability's deviations, Data-IQ's p(1 - p)), never a copy of the dynamics.
(c) Neighbour searches and per-layer representations grow linearly in N: peak memory at 2N is at
    most ``LINEAR`` = 2.5 times the peak at N (an N x N matrix gives ~4; a control check with a
    full pairwise-distance matrix shows the harness sees that). The k-NN search
    (``neighbours_excluding_self``) computes ``DISTANCE_BUDGET`` = 2^24 distances at a time, so its
    memory is O(N k) plus a bounded chunk; below N = 4096 one chunk holds all N x N distances and
    memory grows quadratically up to that bound, so the search, the k-NN helpers and the registered
    methods (prediction_depth, knn_disagreement, prototypicality; an MLP 64-64-64-10) are measured
    at N = 8192 and 16384, where the chunking is in force; ``layer_representations`` with LeNet at
    N = 8000 and 16000; numpy-only parts (class-mean cosine, k-NN vote count) also by tracemalloc.
(d) Every method on a full-MNIST-shaped run (LeNet-5, 60,000 28 x 28 inputs): at most +300 MB.
(e) Every method on a full-CIFAR-10-shaped run (the cifar10 recipe's airbench, widths 64-256-256, 50,000
    3 x 32 x 32 inputs, its 6 checkpoints and 4 early runs): at most +1.5 GB. Every pass over samples
    is chunked by the activation budget (``bench.context.ACTIVATION_BUDGET`` values over a sample's
    activation values), so this does not grow with N; ``tests/test_scoring_memory.py`` checks the
    growth from N to 4N on a small airbench in the normal suite. ``HARDBENCH_MEMORY_N`` sets N for
    (d) and (e) (the curvatures take hours single-threaded at full size).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from methods_support import reset_peak_rss, rss_status

MB = 1e6
LINEAR = 2.5
TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


# ---- instruments -------------------------------------------------------------------------------
@pytest.fixture
def rss_peak():
    """Skips where the peak RSS cannot be reset and read (not Linux, or /proc/self/clear_refs not writable)."""
    try:
        reset_peak_rss()
        assert "VmHWM" in rss_status()
    except (OSError, AssertionError):
        pytest.skip("peak RSS needs Linux /proc/self/status and a writable /proc/self/clear_refs")


def traced_peak(fn) -> tuple[int, object]:
    """Peak bytes traced by tracemalloc while ``fn()`` runs, and its result."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def subprocess_peak(probe: str, n: int) -> dict:
    """Run ``PROBES[probe]`` in a fresh interpreter: warm-up on 64 samples, then the measured call on
    ``n``; returns {"peak": peak RSS growth in bytes, "held": RSS growth still held after, ...extra}."""
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]; "
            f"from benchmarks.test_memory import _probe_main; _probe_main({probe!r}, {n})")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
           # glibc: every block of 64 KiB or more its own mapping, returned when freed, so that the RSS
           # follows what is live (otherwise freed heap pages are reused unseen and peaks drift by ~20%)
           "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe_main(probe: str, n: int):
    torch.set_num_threads(1)
    PROBES[probe](64)()  # warm-up: lazy imports, thread pools, allocator arenas
    call = PROBES[probe](n)
    before = rss_status()["VmRSS"]
    reset_peak_rss()
    extra = call() or {}
    after = rss_status()
    extra = {(k[:-4] if k.endswith("_abs") else k): (v - before if k.endswith("_abs") else v) for k, v in extra.items()}
    print(json.dumps({"peak": after["VmHWM"] - before, "held": after["VmRSS"] - before, **extra}))


# ---- probes run in a subprocess ------------------------------------------------------------------
N_REC, C_REC, E_REC, BATCH = 50_000, 100, 200, 512


def _tensor_bytes(obj) -> tuple[int, int]:
    """(sum of numel * element_size, largest numel) over the tensors an object holds directly
    or in list/tuple/dict attributes."""
    total, largest = 0, 0
    stack = list(vars(obj).values())
    while stack:
        value = stack.pop()
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
            largest = max(largest, value.numel())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return total, largest


def _recorder_probe(n):
    from bench.dynamics import DynamicsRecorder

    g = torch.Generator().manual_seed(0)
    n_classes = C_REC if n == N_REC else 10
    y = torch.randint(0, n_classes, (n,), generator=g)

    def call():
        recorder = DynamicsRecorder(y, E_REC)
        held, largest = 0, 0
        for epoch in (0, 1, E_REC - 1):
            order = torch.randperm(n, generator=g)
            for start in range(0, n, BATCH):
                idx = order[start:start + BATCH]
                recorder.update(idx, torch.randn(len(idx), n_classes, generator=g))
            total, big = _tensor_bytes(recorder)  # the epoch's logits are all collected now
            held, largest = max(held, total), max(largest, big)
            recorder.end_epoch(epoch)
        recording_peak = rss_status()["VmHWM"]
        dynamics = recorder.result()
        assert dynamics.margin.shape == (n, E_REC)
        return {"recording_peak_abs": recording_peak, "tensor_bytes": held, "largest_numel": largest,
                "dynamics_bytes": sum(a.nbytes for a in dynamics.to_arrays().values())}

    return call


def _mlp_context(n):
    """A context over an untrained MLP 64-64-64-10 on random digits-shaped (8x8) inputs (its
    checkpoint at the last epoch is the final model): small layers keep the k-NN arithmetic of
    2 x 16k samples short; the distance chunks, not the widths, are what is measured."""
    from bench.recipes import Recipe
    from methods_support import make_context

    g = torch.Generator().manual_seed(0)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [64, 64]}, epochs=1)
    torch.manual_seed(0)
    state = recipe.build((1, 8, 8), 10).state_dict()
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return make_context(x, y, 10, recipe=recipe, checkpoints={1: state})


def _method_probe(name):
    def probe(n):
        from bench.registry import get_method, load_builtin_methods

        load_builtin_methods()
        ctx = _mlp_context(n)

        def call():
            np.asarray(get_method(name).fn(ctx))
        return call
    return probe


def _layers_probe(n):
    from bench.models import build_model
    from methods._common import layer_representations

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10).eval()
    x = torch.randn(n, 1, 28, 28, generator=g)

    def call():
        layers = layer_representations(model, x)
        return {"output_bytes": sum(h.numel() * h.element_size() for h in layers)}
    return call


def _helper_probe(name, d=16, k=30, num_classes=10):
    def probe(n):
        from methods import representation as rep

        rng = np.random.default_rng(n)
        x, y = rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, num_classes, n)
        calls = {
            "neighbours_excluding_self": lambda: rep.neighbours_excluding_self(x, k),
            "knn_probe_predictions": lambda: rep.knn_probe_predictions(x, y, num_classes, k),
            "knn_disagreement_scores": lambda: rep.knn_disagreement_scores(x, y, 10),
            "cosine_to_class_mean": lambda: rep.cosine_to_class_mean(x.astype(np.float64), y, num_classes),
            # the control: every pairwise distance at once, as an unchunked search would hold them
            "full_distances": lambda: torch.cdist(torch.as_tensor(x), torch.as_tensor(x)).topk(k, 1, largest=False),
        }

        def call():
            calls[name]()
        return call
    return probe


def _run_context(recipe_name: str, shape: tuple, n: int, draw=torch.rand):
    """A context shaped as a full run of a dataset's recipe on ``n`` inputs of ``shape`` drawn by
    ``draw``: every part a method may read, at its real size, from untrained states of the recipe's
    model (memory does not depend on the weights' values) and synthetic dynamics and fold probabilities."""
    from bench.context import FoldPredictions
    from bench.recipes import RECIPES
    from methods_support import dynamics_from, make_context

    recipe = RECIPES[recipe_name]
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = draw(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(0)
    states = [recipe.build(shape, 10).state_dict() for _ in range(len(recipe.checkpoint_epochs()))]
    checkpoints = dict(zip(recipe.checkpoint_epochs(), states))
    early = [recipe.build(shape, 10).state_dict() for _ in range(recipe.early_runs)]
    p_y = rng.uniform(size=(n, recipe.epochs)).astype(np.float32)
    dynamics = dynamics_from(p_y=p_y, margin=rng.normal(size=(n, recipe.epochs)))
    probs = rng.dirichlet(np.ones(10), size=(recipe.fold_repeats, n)).astype(np.float32)
    folds = FoldPredictions(probs, rng.integers(0, recipe.folds, (recipe.fold_repeats, n)))
    extra = recipe.early_runs - 1
    ensemble = {"aum": rng.normal(size=(extra, n)).astype(np.float32),
                "logits": rng.normal(size=(extra, n, 10)).astype(np.float32)}
    return make_context(x, y, 10, recipe=recipe, dynamics=dynamics, eval_dynamics=dynamics, checkpoints=checkpoints,
                        early_runs=early, folds=folds, ensemble=ensemble, lrs=np.full(recipe.epochs, recipe.lr))


def _mnist_context(n):
    """A full-MNIST run of the MNIST recipe (LeNet-5; 60,000 28x28 inputs), uniform pixels."""
    return _run_context("mnist", (1, 28, 28), n)


def _cifar_context(n):
    """A full-CIFAR-10 run of the cifar10 recipe (airbench 64-256-256; 50,000 3 x 32 x 32 inputs)."""
    return _run_context("cifar10", (3, 32, 32), n, draw=torch.randn)


def _mnist_method_probe(name, build=None):
    def probe(n):
        import time

        from bench.registry import get_method, load_builtin_methods

        load_builtin_methods()
        ctx = (build or _mnist_context)(n)

        def call():
            start = time.process_time()  # CPU time, one thread: what a shared machine cannot inflate
            scores = np.asarray(get_method(name).fn(ctx))
            assert scores.shape == (n,)
            return {"seconds": time.process_time() - start}
        return call
    return probe


def _all_methods():
    from bench.registry import list_methods, load_builtin_methods

    load_builtin_methods()
    return list_methods()


PROBES = {"recorder": _recorder_probe, "layer_representations": _layers_probe,
          **{name: _method_probe(name) for name in ("prediction_depth", "knn_disagreement", "prototypicality")},
          **{f"mnist:{name}": _mnist_method_probe(name) for name in _all_methods()},
          **{f"cifar:{name}": _mnist_method_probe(name, _cifar_context) for name in _all_methods()},
          **{name: _helper_probe(name) for name in ("neighbours_excluding_self", "knn_probe_predictions",
                                                    "knn_disagreement_scores", "cosine_to_class_mean",
                                                    "full_distances")}}


# ---- (a) the dynamics recorder --------------------------------------------------------------------
def test_dynamics_recorder_memory(rss_peak):
    limit = 300 * MB
    m = subprocess_peak("recorder", N_REC)
    buffers = N_REC * E_REC * (4 + 4 + 8)  # margin, loss (float32), pred (int64)
    print(f"\nDynamicsRecorder N={N_REC} C={C_REC} E={E_REC}: its tensors {m['tensor_bytes'] / MB:.1f} MB "
          f"((N, E) buffers {buffers / MB:.0f} MB + one epoch's logits), largest tensor {m['largest_numel']:,} "
          f"elements (N*E*C = {N_REC * E_REC * C_REC:,}); peak RSS growth while recording "
          f"{m['recording_peak'] / MB:.1f} MB, with result() {m['peak'] / MB:.1f} MB (the Dynamics' arrays: "
          f"{m['dynamics_bytes'] / MB:.0f} MB), held after {m['held'] / MB:.1f} MB")
    assert m["largest_numel"] <= N_REC * E_REC < N_REC * E_REC * C_REC
    assert m["tensor_bytes"] <= limit
    assert m["recording_peak"] <= limit, f"recording grew the RSS by {m['recording_peak'] / MB:.0f} MB"
    assert m["peak"] <= limit, f"recording + result() grew the RSS by {m['peak'] / MB:.0f} MB"


# ---- (b) scoring reads the dynamics in place --------------------------------------------------------
N_DYN, E_DYN, C_DYN = 50_000, 200, 100
REDUCTIONS = ("aum", "loss", "confidence", "correctness")  # one (N, E) statistic reduced over epochs


@pytest.fixture(scope="module")
def large_run():
    from bench.context import EstimationRun, Pool
    from bench.dynamics import Dynamics
    from bench.recipes import Recipe

    rng = np.random.default_rng(0)
    y = rng.integers(0, C_DYN, N_DYN)
    loss = rng.exponential(size=(N_DYN, E_DYN)).astype(np.float32)
    pred = rng.integers(0, C_DYN, (N_DYN, E_DYN)).astype(np.int16)
    dynamics = Dynamics(margin=rng.normal(size=(N_DYN, E_DYN)).astype(np.float32), p_y=np.exp(-loss), loss=loss,
                        correct=pred == y[:, None], pred=pred)
    pool = Pool("memory", torch.zeros(N_DYN, 1), torch.as_tensor(y), C_DYN)
    return EstimationRun(pool, 0, Recipe(epochs=E_DYN), torch.device("cpu"), dynamics=dynamics), dynamics


def _dynamics_only():
    from bench.registry import get_method, list_methods

    return [m for m in list_methods() if get_method(m).needs == frozenset({"dynamics"})]


def test_two_methods_share_the_dynamics_without_copying(large_run):
    from bench.context import Context
    from bench.registry import get_method

    run, dynamics = large_run
    one = N_DYN * E_DYN * 4
    for name in ("aum", "loss"):
        method = get_method(name)
        ctx = Context(run, method.needs, name)
        assert ctx.dynamics is dynamics  # the run's one object, not a per-method copy
        peak, scores = traced_peak(lambda: np.asarray(method.fn(ctx)))
        print(f"\n{name}: traced peak {peak / MB:.2f} MB (output {scores.nbytes / MB:.2f} MB; "
              f"one (N, E) float32 = {one / MB:.0f} MB)")
        assert scores.shape == (N_DYN,)
        assert peak < one


@pytest.mark.parametrize("name", _dynamics_only())
def test_dynamics_methods_allocate_at_most_one_temporary(large_run, name):
    from bench.context import Context
    from bench.registry import get_method

    run, _ = large_run
    method = get_method(name)
    one = N_DYN * E_DYN * 4
    peak, scores = traced_peak(lambda: np.asarray(method.fn(Context(run, method.needs, name))))
    print(f"\n{name}: traced peak {peak / MB:.2f} MB = {peak / one:.3f} x one (N, E) float32")
    bound = one if name in REDUCTIONS else 1.1 * one
    assert peak < bound, f"{name} allocated {peak / MB:.0f} MB while scoring (bound {bound / MB:.0f} MB)"


# ---- (c) linear growth in N ---------------------------------------------------------------------
@pytest.mark.parametrize("probe,n", [
    ("neighbours_excluding_self", 8192), ("knn_probe_predictions", 8192), ("knn_disagreement_scores", 8192),
    ("cosine_to_class_mean", 8192), ("layer_representations", 8000),
    ("prediction_depth", 8192), ("knn_disagreement", 8192), ("prototypicality", 8192)])
def test_representations_grow_linearly(rss_peak, probe, n):
    big, small = subprocess_peak(probe, 2 * n), subprocess_peak(probe, n)
    ratio = big["peak"] / small["peak"]
    print(f"\n{probe}: peak RSS growth {small['peak'] / MB:.1f} MB at N={n}, {big['peak'] / MB:.1f} MB at 2N; "
          f"ratio {ratio:.2f}")
    assert ratio <= LINEAR


def test_harness_sees_quadratic_memory(rss_peak):
    """Control: a full N x N distance matrix, measured the same way, gives a ratio near 4."""
    n = 4096
    big, small = subprocess_peak("full_distances", 2 * n), subprocess_peak("full_distances", n)
    ratio = big["peak"] / small["peak"]
    print(f"\nfull N x N distances: {small['peak'] / MB:.1f} MB at N={n}, {big['peak'] / MB:.1f} MB at 2N; "
          f"ratio {ratio:.2f}")
    assert ratio > 3.5


def test_numpy_helpers_grow_linearly_traced():
    """The numpy parts by tracemalloc, exactly: the class-mean cosine and the k-NN vote count."""
    from methods.representation import cosine_to_class_mean, knn_disagreement_scores

    def traced_at(n):
        rng = np.random.default_rng(n)
        x, y = rng.normal(size=(n, 16)), rng.integers(0, 10, n)
        neighbours = rng.integers(0, n, (n, 30))
        votes = traced_peak(lambda: (y[neighbours][:, :, None] == np.arange(10)).sum(axis=1).argmax(axis=1))[0]
        return traced_peak(lambda: cosine_to_class_mean(x, y, 10))[0], votes

    knn_disagreement_scores(np.zeros((64, 4), np.float32), np.arange(64) % 10, 10)  # warm-up
    n = 8192
    (cos_small, votes_small), (cos_big, votes_big) = traced_at(n), traced_at(2 * n)
    print(f"\ncosine_to_class_mean: traced {cos_small / MB:.2f} -> {cos_big / MB:.2f} MB (ratio "
          f"{cos_big / cos_small:.2f}); k-NN votes: {votes_small / MB:.2f} -> {votes_big / MB:.2f} MB "
          f"(ratio {votes_big / votes_small:.2f})")
    assert cos_big / cos_small <= LINEAR and votes_big / votes_small <= LINEAR


# ---- (d) every method on full MNIST ---------------------------------------------------------------
N_MNIST = int(os.environ.get("HARDBENCH_MEMORY_N", 60_000))
METHOD_LIMIT = 300 * MB


@pytest.mark.parametrize("name", _all_methods())
def test_method_memory_on_full_mnist(rss_peak, name):
    """Each method scored on a full-MNIST-shaped run (``_mnist_context``) in a fresh process: the
    peak RSS growth over the process's resting size (inputs, states, dynamics and fold
    probabilities loaded, one warm-up call on 64 samples done) is at most 300 MB."""
    m = subprocess_peak(f"mnist:{name}", N_MNIST)
    print(f"\n{name}: N={N_MNIST}, peak RSS growth {m['peak'] / MB:.0f} MB, held after {m['held'] / MB:.0f} MB, "
          f"{m['seconds']:.1f} s CPU (one thread)")
    assert m["peak"] <= METHOD_LIMIT, f"{name} grew the RSS by {m['peak'] / MB:.0f} MB (> 300 MB)"


# ---- (e) every method on full CIFAR-10 --------------------------------------------------------------
N_CIFAR = int(os.environ.get("HARDBENCH_MEMORY_N", 50_000))
CIFAR_LIMIT = 1500 * MB


@pytest.mark.parametrize("name", _all_methods())
def test_method_memory_on_full_cifar(rss_peak, name):
    """Each method scored on a full-CIFAR-10-shaped run (``_cifar_context``) in a fresh process: the
    peak RSS growth over the resting size is at most 1.5 GB."""
    m = subprocess_peak(f"cifar:{name}", N_CIFAR)
    print(f"\n{name}: N={N_CIFAR}, peak RSS growth {m['peak'] / MB:.0f} MB, held after {m['held'] / MB:.0f} MB, "
          f"{m['seconds']:.1f} s CPU (one thread)")
    assert m["peak"] <= CIFAR_LIMIT, f"{name} grew the RSS by {m['peak'] / MB:.0f} MB (> 1.5 GB)"
