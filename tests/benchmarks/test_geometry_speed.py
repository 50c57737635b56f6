"""Exact linear-region extraction speed (bench.relu_geometry), measured with pytest-benchmark
(run with ``python -m pytest tests/benchmarks/test_geometry_speed.py --benchmark-enable -s``).

- extraction time and region count against width (8, 16, 32, 64, 128) at depth 2 and 3,
  3 classes, PyTorch's default initialisation (seeded), box [-3, 3]^2; a table and the
  log-log slope of time against region count are printed at the end;
- the acceptance bar: a [2, 64, 64, 3] network extracts in <= 10 s;
- the spiral network of the SkelEx paper, [2, 25, 5, 3] trained on 3-arm spirals: regions,
  boundary length and extraction time.

Like every speed check here, these are skipped in the normal suite (``--benchmark-disable``,
see ``conftest.py``).
"""
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench import relu_geometry as g
from bench.data import make_spirals
from bench.models import mlp

BOX = (-3.0, 3.0, -3.0, 3.0)
WIDTHS = [8, 16, 32, 64, 128]
DEPTHS = [2, 3]
MEASURED = {}  # (width, depth) -> (regions, seconds)


def random_net(width, depth, classes=3, seed=0):
    torch.manual_seed(seed)
    layers, d = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, classes))


def _tiles_the_box(regions, box):
    return np.isclose(regions.areas().sum(), (box[1] - box[0]) * (box[3] - box[2])) and (regions.areas() > 0).all()


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("width", WIDTHS)
def test_extraction_time_against_width(benchmark, width, depth):
    net = random_net(width, depth)
    benchmark.group = "linear regions: width x depth"
    regions = benchmark.pedantic(g.linear_regions, args=(net, BOX), rounds=1 if width >= 128 else 3, iterations=1)
    assert _tiles_the_box(regions, BOX)
    assert regions.counts_per_layer == sorted(regions.counts_per_layer)
    benchmark.extra_info.update(regions=len(regions), counts_per_layer=regions.counts_per_layer)
    MEASURED[width, depth] = (len(regions), benchmark.stats.stats.min)


def test_acceptance_64_64_3_under_10_seconds(benchmark):
    net = random_net(64, 2)
    benchmark.group = "acceptance: [2, 64, 64, 3]"
    regions = benchmark.pedantic(g.linear_regions, args=(net, BOX), rounds=3, iterations=1)
    assert _tiles_the_box(regions, BOX)
    timer = getattr(benchmark, "_timer", time.perf_counter)  # the timer the benchmark uses
    start = timer()
    boundary = g.decision_boundary(regions)  # class cells included: nothing is cached yet
    boundary_s = timer() - start
    print(f"\n[2, 64, 64, 3]: {len(regions)} regions in {benchmark.stats.stats.max:.3f} s (worst of 3); "
          f"decision boundary ({len(boundary)} segments) from them in {boundary_s:.3f} s")
    assert benchmark.stats.stats.max <= 10.0


def test_spiral_network(benchmark):
    """[2, 25, 5, 3] trained full-batch with Adam on bench.data.make_spirals(arms=3)."""
    data = make_spirals(arms=3)
    x, y = data.x_train, data.y_train
    torch.manual_seed(0)
    model = mlp((2,), 3, hidden=[25, 5])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(600):
        optimiser.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimiser.step()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    box = g.default_box(torch.cat([x, data.x_test]))
    benchmark.group = "spirals [2, 25, 5, 3]"
    regions = benchmark.pedantic(g.linear_regions, args=(model, box), rounds=3, iterations=1)
    boundary = g.decision_boundary(regions)
    distance = g.boundary_distance(boundary, x)
    assert _tiles_the_box(regions, box) and len(boundary) > 0 and np.isfinite(distance).all()
    print(f"\nspirals [2, 25, 5, 3], train accuracy {accuracy:.3f}: {len(regions)} regions "
          f"(per layer {regions.counts_per_layer}), {len(boundary)} boundary segments, boundary length "
          f"{boundary.length:.3f} in box {tuple(round(v, 2) for v in box)}; extraction "
          f"{benchmark.stats.stats.min:.4f} s; median train-point distance {np.median(distance):.4f}")


def test_growth_table():
    """Prints width, depth, regions, seconds, and the slope of log(seconds) on log(regions)."""
    if len(MEASURED) < 3:
        pytest.skip("needs the width benchmarks of this module")
    print("\n width depth  regions   seconds  us/(region*neuron)")
    for (width, depth), (regions, seconds) in sorted(MEASURED.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{width:6d} {depth:5d} {regions:8d} {seconds:9.4f}  {1e6 * seconds / (regions * width * depth):8.3f}")
    regions, seconds = np.array(list(MEASURED.values()), dtype=float).T
    big = regions >= 1000  # below that, fixed per-neuron overhead dominates
    slope = np.polyfit(np.log(regions[big]), np.log(seconds[big]), 1)[0] if big.sum() >= 2 else float("nan")
    slope_all = np.polyfit(np.log(regions), np.log(seconds), 1)[0]
    print(f"log-log slope of time on region count: {slope:.2f} (regions >= 1000), {slope_all:.2f} (all)")
    assert np.isfinite(slope_all)
