"""Scoring memory is bounded by the activation budget, not by the pool's size.

Each memory-heavy method scores a CIFAR-shaped pool (3 x 32 x 32 random inputs, airbench with
widths 8-16-16, two checkpoints, two early runs) of N = 96 and 4N samples in a fresh interpreter, and the growth of its
peak resident set size over the resting size (context built, a warm-up call on 16 samples done) is
measured as ``tests/benchmarks/test_memory.py`` does: ``VmHWM`` reset through
``/proc/self/clear_refs`` right before the call, glibc told to map every block of 64 KiB or more on
its own and to return it when freed, one thread. The activation budget is lowered to 2^22 values
(``bench.context.ACTIVATION_BUDGET``) and the k-NN probes' support to 64 samples
(``PROBE_SUPPORT``), so that the chunks the methods would take at the full size of CIFAR-10 are
smaller than N here too and the test takes seconds. Memory, not time, is asserted:

- each method's peak growth at 4N is less than twice the one at N (memory proportional to N,
  chunks that grow with the pool, would give about 4), and less than 4 budgets' worth of float32
  values (what remains besides the budgeted passes: the random probes, drawn for a fixed number of
  samples so that the scores do not depend on the chunks);
- the control: one no-grad pass over all rows (``last_layer_grad_sq_norms`` with the batch the
  whole pool), measured the same way, grows by more than 3 times from N to 4N, so the harness sees
  memory that grows with N.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from methods_support import reset_peak_rss, rss_status

MB = 1e6
N = 96
BUDGET = 1 << 22
WIDTHS = (8, 16, 16)
#: the methods, with fewer probes for the two curvatures than registered (1 Hutchinson vector, 2 finite-
#: difference probes) to keep the test short: a pass holds the same kinds of activations
METHODS = {"curvature_hvp": {"n_vectors": 1}, "curvature": {"n_probes": 2}, "vog": {}, "prediction_depth": {},
           "tracin_self": {}, "stragglers": {}, "el2n": {}}
CONTROL = "one pass of all rows"
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _peak_growth(call) -> int:
    """Peak RSS growth over the current RSS while ``call()`` runs, in bytes."""
    before = rss_status()["VmRSS"]
    reset_peak_rss()
    call()
    return rss_status()["VmHWM"] - before


def _context(n: int):
    import numpy as np
    import torch

    from bench.recipes import Recipe
    from methods_support import make_context

    recipe = Recipe(model="airbench", model_kwargs={"widths": list(WIDTHS)}, epochs=2, checkpoints=2, early_runs=2)
    g = torch.Generator().manual_seed(n)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(0)
    states = [recipe.build((3, 32, 32), 10).state_dict() for _ in range(4)]
    return make_context(x, y, 10, recipe=recipe, checkpoints=dict(zip(recipe.checkpoint_epochs(), states)),
                        early_runs=states[2:], lrs=np.full(recipe.epochs, 0.1))


def _main(sizes: list[int]):
    """In the subprocess: every method's and the control's peak growth at each size, as JSON."""
    import numpy as np
    import torch

    import bench.context
    import methods.representation as rep
    from bench.registry import get_method, load_builtin_methods
    from methods.gradients import last_layer_grad_sq_norms

    torch.set_num_threads(1)
    bench.context.ACTIVATION_BUDGET = BUDGET
    rep.PROBE_SUPPORT = 64
    load_builtin_methods()
    peaks: dict[str, dict[int, int]] = {}
    for name, kwargs in METHODS.items():
        fn = get_method(name).fn
        np.asarray(fn(_context(16), **kwargs))  # warm-up: lazy imports, thread pools, allocator arenas
        for n in sizes:
            ctx = _context(n)
            peaks.setdefault(name, {})[n] = _peak_growth(lambda: np.asarray(fn(ctx, **kwargs)))
    model = _context(16).model_at(2)
    for n in sizes:
        ctx = _context(n)
        peaks.setdefault(CONTROL, {})[n] = _peak_growth(lambda: last_layer_grad_sq_norms(model, ctx.x, ctx.y, n))
    print(json.dumps(peaks))


@pytest.fixture(scope="module")
def peaks() -> dict[str, dict[int, int]]:
    try:
        reset_peak_rss()
        assert "VmHWM" in rss_status()
    except (OSError, AssertionError):
        pytest.skip("peak RSS needs Linux /proc/self/status and a writable /proc/self/clear_refs")
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]; "
            f"from test_scoring_memory import _main; _main([{N}, {4 * N}])")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
           "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: {int(n): peak for n, peak in by_size.items()} for name, by_size in raw.items()}


@pytest.mark.parametrize("name", METHODS)
def test_scoring_memory_grows_sublinearly_in_n(peaks, name):
    small, big = peaks[name][N], peaks[name][4 * N]
    print(f"\n{name}: peak RSS growth {small / MB:.1f} MB at N={N}, {big / MB:.1f} MB at 4N={4 * N} "
          f"(ratio {big / max(small, 1):.2f}); budget {BUDGET * 4 / MB:.1f} MB of float32 values")
    assert big < 2 * small, f"{name}: {small / MB:.1f} MB at N, {big / MB:.1f} MB at 4N"
    assert big < 4 * BUDGET * 4, f"{name}: {big / MB:.1f} MB at 4N, more than 4 budgets of float32 values"


def test_harness_sees_memory_that_grows_with_n(peaks):
    small, big = peaks[CONTROL][N], peaks[CONTROL][4 * N]
    print(f"\ncontrol ({CONTROL}): {small / MB:.1f} MB at N={N}, {big / MB:.1f} MB at 4N (ratio {big / small:.2f})")
    assert big > 3 * small
