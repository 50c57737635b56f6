"""Exact linear regions, decision boundary, distances and skeleton of 2-D ReLU networks
(bench.relu_geometry), checked against dense grids, ray marching and closed forms."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from bench import relu_geometry as g
from bench.data import load_dataset
from bench.models import mlp

BOX = (-2.0, 2.5, -1.5, 1.75)  # not square and not centred, to catch mixed-up axes
GRID = 1000


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The reference forward passes are many small float64 products: one thread is about
    3x faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_net(hidden, classes, seed, scale=1.5):
    """A ReLU MLP 2 -> hidden -> classes with larger-than-default weights, so that the
    box holds many regions and a decision boundary."""
    torch.manual_seed(seed)
    layers, width = [], 2
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    net = nn.Sequential(*layers, nn.Linear(width, classes))
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                layer.weight.normal_(0, scale / np.sqrt(layer.in_features))
                layer.bias.normal_(0, 0.5)
    return net


def grid_points(box, n=GRID):
    """Cell centres of an n x n grid over the box, row-major in y then x; and the cell size."""
    xmin, xmax, ymin, ymax = box
    hx, hy = (xmax - xmin) / n, (ymax - ymin) / n
    xs, ys = xmin + (np.arange(n) + 0.5) * hx, ymin + (np.arange(n) + 0.5) * hy
    return np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2), (hx, hy)


def locate_on_grid(polygons, box, n=GRID, tol=1e-12):
    """For every grid point: how many of the convex CCW ``polygons`` contain it (edges
    with tolerance ``tol``), and the index of one that does (-1 if none). Each polygon
    only tests the grid points inside its bounding box."""
    xmin, xmax, ymin, ymax = box
    hx, hy = (xmax - xmin) / n, (ymax - ymin) / n
    xs, ys = xmin + (np.arange(n) + 0.5) * hx, ymin + (np.arange(n) + 0.5) * hy
    hits = np.zeros((n, n), dtype=np.int64)
    owner = np.full((n, n), -1)
    for m, poly in enumerate(polygons):
        low, high = poly.min(axis=0), poly.max(axis=0)
        i0, i1 = np.searchsorted(xs, low[0] - tol), np.searchsorted(xs, high[0] + tol, side="right")
        j0, j1 = np.searchsorted(ys, low[1] - tol), np.searchsorted(ys, high[1] + tol, side="right")
        if i0 >= i1 or j0 >= j1:
            continue
        px, py = np.meshgrid(xs[i0:i1], ys[j0:j1])
        edge = np.roll(poly, -1, axis=0) - poly
        length = np.hypot(edge[:, 0], edge[:, 1])
        dx, dy = px - poly[:, 0, None, None], py - poly[:, 1, None, None]
        cross = edge[:, 0, None, None] * dy - edge[:, 1, None, None] * dx  # > 0: left of the edge
        inside = (cross >= -tol * length[:, None, None]).all(axis=0)
        hits[j0:j1, i0:i1] += inside
        owner[j0:j1, i0:i1][inside] = m
    return hits.ravel(), owner.ravel()


def hidden_patterns(net, points):
    """Activation patterns (z > 0) of every hidden neuron, float64."""
    h, bits = torch.as_tensor(points), []
    with torch.no_grad():
        for layer in copy.deepcopy(net).double():
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                bits.append((h > 0).numpy())
    return np.concatenate(bits, axis=1)


def distinct_rows(bits):
    packed = np.ascontiguousarray(np.packbits(bits, axis=1))
    return np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel())


def logits64(net, points):
    """The network's logits in float64 (its float32 weights are exact in float64)."""
    with torch.no_grad():
        return copy.deepcopy(net).double()(torch.as_tensor(points, dtype=torch.float64)).numpy()


CASES = [([6], 2, 0), ([32], 4, 1), ([16, 16], 3, 2), ([8, 8, 8], 2, 3), ([32, 16], 3, 4), ([12, 12, 12], 4, 5)]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-C{c[1]}")
def case(request):
    hidden, classes, seed = request.param
    net = random_net(hidden, classes, seed)
    regions = g.linear_regions(net, BOX)
    points, cell = grid_points(BOX)
    return net, regions, points, cell


def test_regions_cover_the_box_once_and_carry_the_exact_affine_map(case):
    net, regions, points, _ = case
    assert len(regions) > 1 and regions.vertices.dtype == np.float64
    assert np.isclose(regions.areas().sum(), (BOX[1] - BOX[0]) * (BOX[3] - BOX[2]))
    assert (regions.areas() > 0).all()  # counter-clockwise
    hits, owner = locate_on_grid(regions.polygons, BOX)
    assert (hits == 1).all(), f"{(hits == 0).sum()} grid points in no region, {(hits > 1).sum()} in several"
    logits = logits64(net, points)
    affine = np.einsum("ncd,nd->nc", regions.W[owner], points) + regions.b[owner]
    assert np.abs(affine - logits).max() <= 1e-5


def test_one_region_per_activation_pattern(case):
    net, regions, points, cell = case
    _, owner = locate_on_grid(regions.polygons, BOX)
    on_grid = hidden_patterns(net, points)
    assert (regions.patterns[owner] == on_grid).all()  # each point's region has the point's pattern
    assert len(distinct_rows(regions.patterns)) == len(regions) >= len(distinct_rows(on_grid))
    # a region holding no grid point contains no disc of radius half a cell diagonal, and a
    # convex polygon's inradius is at least area / perimeter
    missed = np.setdiff1d(np.arange(len(regions)), owner)
    for r in missed:
        poly = regions.polygon(r)
        perimeter = np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1).sum()
        assert regions.areas()[r] / perimeter < np.hypot(*cell) / 2


def test_class_cells_give_the_predicted_class(case):
    net, regions, points, _ = case
    cells = g.class_cells(regions)
    hits, owner = locate_on_grid([cells.polygon(m) for m in range(len(cells))], BOX)
    logits = logits64(net, points)
    top2 = np.sort(logits, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-7  # grid points on a tie may lie in two cells
    assert (hits[clear] == 1).all()
    assert (cells.label[owner] == logits.argmax(axis=1))[clear].all()
    assert (cells.region[owner] == locate_on_grid(regions.polygons, BOX)[1])[clear].all()


def march(net, points, direction, samples, halvings=40):
    """Distance (N, rays) to the first argmax change along each ray ``points[n] + t
    direction[n, j]``: the class is sampled at the increasing distances ``samples[n]``,
    then bisected between the last sample without a change and the first with one; inf
    where no sample shows a change."""
    start = logits64(net, points).argmax(axis=1)[:, None]

    def cls(t):
        x = points[:, None, :] + t[..., None] * direction
        return logits64(net, x.reshape(-1, 2)).argmax(axis=1).reshape(t.shape)

    rays = direction.shape[1]
    changed = np.stack([cls(np.broadcast_to(samples[:, i:i + 1], (len(points), rays))) != start
                        for i in range(samples.shape[1])], axis=-1)  # (N, rays, samples)
    found = changed.any(axis=-1)
    first = changed.argmax(axis=-1)
    rows = np.arange(len(points))[:, None]
    high = samples[rows, first]
    low = np.where(first > 0, samples[rows, np.maximum(first - 1, 0)], 0.0)
    for _ in range(halvings):
        mid = 0.5 * (low + high)
        moved = cls(mid) != start
        high, low = np.where(moved, mid, high), np.where(moved, low, mid)
    return np.where(found, high, np.inf)


def brute_force_distance(net, points, expected, scale, rays=720, refine=64):
    """The shortest way to an argmax change over ``rays`` directions from each point, then
    over ``refine`` directions within one ray spacing of the best one. Each ray samples the
    class at 6 distances up to 0.98 ``expected`` (to catch any nearer boundary) and at 10
    distances from there to 1.02 ``expected`` + 1e-3 ``scale`` (so that a thin sliver of
    another class right behind the expected boundary is not stepped over). Every ray ends
    on the boundary, so this is an upper bound of the exact distance."""
    near = np.linspace(0, 0.98, 7)[1:] * expected[:, None]
    around = near[:, -1:] + np.linspace(0, 1, 11)[1:] * (0.04 * expected + 1e-3 * scale)[:, None]
    samples = np.concatenate([near, around], axis=1)
    spacing = 2 * np.pi / rays
    angles = np.broadcast_to(spacing * np.arange(rays), (len(points), rays))
    rays_at = lambda angles: np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # noqa: E731
    coarse = march(net, points, rays_at(angles), samples, halvings=10)
    best = angles[np.arange(len(points)), coarse.argmin(axis=1)]
    fine = best[:, None] + np.linspace(-spacing, spacing, refine)
    return np.minimum(coarse.min(axis=1), march(net, points, rays_at(fine), samples, halvings=30).min(axis=1))


def check_against_ray_marching(net, points, boundary, diag):
    """Exact distances and nearest points vs `brute_force_distance`; returns the share of
    points where the two agree to 1e-4."""
    exact, nearest, segment = g.nearest_boundary_points(boundary, points)
    assert np.isfinite(exact).all() and (1.02 * exact + 1e-3 * diag < 2 * diag).all()  # rays stay in the box
    np.testing.assert_allclose(np.linalg.norm(nearest - points, axis=1), exact)
    brute = brute_force_distance(net, points, exact, diag)
    assert (exact <= brute + 1e-9).all()  # every ray ends on the boundary
    # each nearest point is a genuine boundary point: the top two logits tie there, and the
    # argmax takes two values on a tiny circle around it
    z = np.sort(logits64(net, nearest), axis=1)
    assert (z[:, -1] - z[:, -2] <= 1e-9 * np.maximum(1, np.abs(z[:, -1]))).all()
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = nearest[:, None, :] + 1e-7 * diag * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    around = logits64(net, ring.reshape(-1, 2)).argmax(axis=1).reshape(len(points), -1)
    assert (around != around[:, :1]).any(axis=1).all()
    # rays find the nearest point too (the best refined ray is at most 2 pi / (720 * 63) off
    # its direction), except when it is the apex of a wedge of another class opening away
    # from the point: then only the ray through the apex itself touches that class
    agree = np.isclose(brute, exact, rtol=1e-4, atol=1e-6 * diag)
    ends = boundary.segments[segment[~agree]]
    assert (np.linalg.norm(ends - nearest[~agree, None, :], axis=2).min(axis=1) <= 1e-9 * diag).all()
    return agree.mean()


@pytest.mark.parametrize("hidden,classes,seed", [([16, 16], 3, 2), ([32], 4, 1), ([8, 8, 8], 2, 6)])
def test_exact_distance_matches_ray_marching(hidden, classes, seed):
    """Rays are not cut at the box's edge, so the exact distance is taken over a box so
    large that no ray reaches its edge; points lie in BOX."""
    net = random_net(hidden, classes, seed)
    diag = np.hypot(BOX[1] - BOX[0], BOX[3] - BOX[2])
    outer = (BOX[0] - 2 * diag, BOX[1] + 2 * diag, BOX[2] - 2 * diag, BOX[3] + 2 * diag)
    regions = g.linear_regions(net, outer)
    boundary = g.decision_boundary(regions)
    points = np.random.default_rng(seed).uniform([BOX[0], BOX[2]], [BOX[1], BOX[3]], size=(200, 2))
    assert check_against_ray_marching(net, points, boundary, diag) >= 0.95
    # the same from the model and from its regions; restricted to BOX it can only grow
    exact = g.boundary_distance(boundary, points)
    np.testing.assert_allclose(g.boundary_distance(net, points, outer), exact)
    np.testing.assert_allclose(g.boundary_distance(regions, points), exact)
    assert (g.boundary_distance(net, points, BOX) >= exact - 1e-12).all()


def test_boundary_segments_lie_on_ties_between_their_classes():
    net = random_net([16, 16], 4, 7)
    regions = g.linear_regions(net, BOX)
    boundary = g.decision_boundary(regions)
    assert boundary.segments.shape == (len(boundary), 2, 2) and boundary.classes.shape == (len(boundary), 2)
    assert len(np.unique(np.round(boundary.segments.reshape(-1, 4), 9), axis=0)) == len(boundary)
    assert (boundary.lengths > 0).all()
    d = boundary.segments[:, 1] - boundary.segments[:, 0]
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)  # left
    for t in (0.25, 0.5, 0.75):
        x = boundary.segments[:, 0] + t * d
        z = logits64(net, x)
        rows = np.arange(len(boundary))
        top = np.sort(z, axis=1)[:, -1]
        assert np.allclose(z[rows, boundary.classes[:, 0]], top, atol=1e-9)
        assert np.allclose(z[rows, boundary.classes[:, 1]], top, atol=1e-9)
        eps = 1e-6
        assert (logits64(net, x + eps * normal).argmax(axis=1) == boundary.classes[:, 0]).mean() > 0.99
        assert (logits64(net, x - eps * normal).argmax(axis=1) == boundary.classes[:, 1]).mean() > 0.99


def linear_net(weight, bias):
    net = nn.Sequential(nn.Linear(2, len(weight)))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(weight))
        net[0].bias.copy_(torch.tensor(bias))
    return net


def test_network_without_hidden_layer_has_one_region_and_one_boundary_line():
    net = linear_net([[1.0, 2.0], [-0.5, 0.25]], [0.25, -0.125])
    regions = g.linear_regions(net, BOX)
    boundary = g.decision_boundary(regions)
    assert len(regions) == 1 and regions.counts_per_layer == [] and len(boundary) == 1
    w, b = np.array([1.5, 1.75]), 0.375  # z_0 - z_1 (exact in float32)
    ends = boundary.segments[0]
    assert np.allclose(ends @ w + b, 0, atol=1e-12)
    on_x_edge = np.isclose(ends[:, :1], [BOX[0], BOX[1]]).any(axis=1)
    on_y_edge = np.isclose(ends[:, 1:], [BOX[2], BOX[3]]).any(axis=1)
    assert (on_x_edge | on_y_edge).all()
    rng = np.random.default_rng(0)
    points = rng.uniform([BOX[0], BOX[2]], [BOX[1], BOX[3]], size=(500, 2))
    distance = g.boundary_distance(boundary, points)
    line = np.abs(points @ w + b) / np.linalg.norm(w)
    foot = points - ((points @ w + b) / (w @ w))[:, None] * w
    foot_inside = (foot[:, 0] >= BOX[0]) & (foot[:, 0] <= BOX[1]) & (foot[:, 1] >= BOX[2]) & (foot[:, 1] <= BOX[3])
    assert foot_inside.sum() > 100 and (~foot_inside).sum() > 10
    np.testing.assert_allclose(distance[foot_inside], line[foot_inside], rtol=1e-12, atol=1e-12)
    nearest_end = np.linalg.norm(points[:, None] - ends, axis=2).min(axis=1)
    np.testing.assert_allclose(distance[~foot_inside], nearest_end[~foot_inside], rtol=1e-12)
    assert (distance[~foot_inside] > line[~foot_inside]).all()
    # signs and hardness
    predicted = np.where(points @ w + b >= 0, 0, 1)
    labels = np.where(np.arange(500) % 3 == 0, 1 - predicted, predicted)
    signed = g.signed_boundary_distance(net, points, labels, BOX)
    np.testing.assert_allclose(signed, np.where(labels == predicted, distance, -distance))
    np.testing.assert_allclose(g.geometric_hardness(regions, points, labels, boundary=boundary), -signed)


def test_no_boundary_in_the_box_means_infinite_distance():
    net = linear_net([[1.0, 0.0], [0.0, 0.0]], [10.0, 0.0])  # class 0 wins wherever x > -10
    assert len(g.decision_boundary(net, BOX)) == 0
    assert np.isinf(g.boundary_distance(net, np.zeros((3, 2)), BOX)).all()


def diamond_net():
    """z_0 = 1 - |x| - |y| through four ReLUs, z_1 = 0: class 0 inside the unit diamond."""
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[-1.0, -1, -1, -1], [0, 0, 0, 0]]))
        net[2].bias.copy_(torch.tensor([1.0, 0]))
    return net


def test_diamond_boundary_and_critical_points():
    box = (-1.5, 2.0, -1.25, 1.25)
    regions = g.linear_regions(diamond_net(), box)
    assert len(regions) == 4 and regions.counts_per_layer == [4]
    boundary = g.decision_boundary(regions)
    assert len(boundary) == 4 and np.isclose(boundary.length, 4 * np.sqrt(2))
    assert np.isclose(g.boundary_distance(boundary, [[0.0, 0.0]])[0], 1 / np.sqrt(2))
    assert (boundary.classes[:, 0] != boundary.classes[:, 1]).all()
    critical = g.critical_points(regions, 0)
    np.testing.assert_allclose(critical.maxima, [[0.0, 0.0]], atol=1e-12)
    corners = {(x, y) for x in box[:2] for y in box[2:]}
    assert {tuple(p) for p in np.round(critical.minima, 12)} == corners  # minima of z_0 within the box
    assert len(g.critical_points(regions, 1).points) == 0  # z_1 is constant: no extremum


def test_a_plateau_has_no_strict_extremum():
    """z_0 = -relu(|x| + |y| - 1/2): flat (0) on a diamond, falling outside it."""
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]]))
        net[0].bias.zero_()
        net[2].weight.fill_(1.0)
        net[2].bias.fill_(-0.5)
        net[4].weight.copy_(torch.tensor([[-1.0], [0.0]]))
        net[4].bias.zero_()
    box = (-1.0, 1.0, -1.0, 1.0)
    regions = g.linear_regions(net, box)
    critical = g.critical_points(regions, 0)
    assert len(critical.maxima) == 0  # every rim vertex of the plateau is a non-strict maximum
    assert {tuple(p) for p in critical.minima} == {(x, y) for x in box[:2] for y in box[2:]}


def test_critical_points_are_local_extrema():
    net = random_net([12, 12], 3, 11)
    regions = g.linear_regions(net, BOX)
    for c in range(3):
        critical = g.critical_points(regions, c)
        assert len(critical.points) > 0
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        ring = 1e-6 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        around = (critical.points[:, None, :] + ring).reshape(-1, 2)
        inside = ((around[:, 0] >= BOX[0]) & (around[:, 0] <= BOX[1]) & (around[:, 1] >= BOX[2])
                  & (around[:, 1] <= BOX[3])).reshape(len(critical.points), -1)
        z = logits64(net, around)[:, c].reshape(len(critical.points), -1)
        np.testing.assert_allclose(logits64(net, critical.points)[:, c], critical.values, atol=1e-9)
        sign = critical.kind[:, None]
        assert (np.where(inside, sign * (z - critical.values[:, None]), -1) <= 1e-9).all()
    logits = regions.vertex_logits()
    r = int(np.argmax(regions.counts))
    np.testing.assert_allclose(logits[r, :regions.counts[r]], logits64(net, regions.polygon(r)), atol=1e-9)


def relu_edge_net(tangent):
    """z_0 - z_1 = relu(x) - 2 relu(-x) (class 0 right of x = 0, class 1 left), or
    relu(x) + relu(-x) = |x| (class 0 everywhere, touching a tie along x = 0): the tie line
    lies on a region edge, the non-generic case."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [-1, 0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 1.0 if tangent else -2.0], [0, 0]]))
        net[2].bias.zero_()
    return net


def test_tie_along_a_region_edge():
    boundary = g.decision_boundary(relu_edge_net(tangent=False), BOX)
    assert len(boundary) == 1
    assert np.allclose(boundary.segments[0, :, 0], 0) and np.isclose(boundary.length, BOX[3] - BOX[2])
    assert sorted(boundary.classes[0]) == [0, 1]
    assert len(g.decision_boundary(relu_edge_net(tangent=True), BOX)) == 0


def test_rejects_what_is_not_a_2d_relu_network():
    with pytest.raises(ValueError, match="Tanh.*nn.Linear and nn.ReLU"):
        g.linear_regions(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2)), BOX)
    with pytest.raises(ValueError, match="Conv2d"):
        g.linear_regions(nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.Linear(2, 2)), BOX)
    with pytest.raises(ValueError, match="input dimension must be 2.*3 inputs"):
        g.linear_regions(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), BOX)
    with pytest.raises(ValueError, match="must end with the nn.Linear"):
        g.linear_regions(nn.Sequential(nn.Linear(2, 4), nn.ReLU()), BOX)
    with pytest.raises(ValueError, match="Tanh"):
        g.linear_regions(mlp((2,), 3, hidden=[4], activation="tanh"), BOX)
    with pytest.raises(TypeError, match="nn.Sequential"):
        g.linear_regions(nn.Linear(2, 2), BOX)
    for box in [(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, np.inf, 0.0, 1.0), (0.0, 1.0, 2.0, 2.0), "abcd", None]:
        with pytest.raises(ValueError, match="box"):
            g.linear_regions(linear_net([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0]), box)


def test_suite_mlp_is_accepted_and_agrees_with_its_forward_pass():
    torch.manual_seed(0)
    model = mlp((2,), 3, hidden=[16, 16])
    regions = g.linear_regions(model, BOX)
    assert regions.W.shape == (len(regions), 3, 2) and regions.counts_per_layer[-1] == len(regions)
    points = np.random.default_rng(0).uniform([BOX[0], BOX[2]], [BOX[1], BOX[3]], size=(2000, 2))
    with torch.no_grad():
        expected = model(torch.as_tensor(points, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(regions.logits(points), expected, atol=1e-5)
    hits, owner = locate_on_grid(regions.polygons, BOX, n=200)
    assert (hits == 1).all()
    grid, _ = grid_points(BOX, 200)
    np.testing.assert_allclose(np.einsum("ncd,nd->nc", regions.W[owner], grid) + regions.b[owner],
                               regions.logits(grid), atol=1e-9)


def test_region_counts_per_layer_grow():
    counts = g.region_counts_per_layer(random_net([8, 8, 8], 3, 0), BOX)
    assert len(counts) == 3 and counts == sorted(counts) and counts[0] > 1


def test_plots_draw_every_boundary_segment_and_critical_point():
    import matplotlib.pyplot as plt

    net = random_net([16, 16], 3, 2)
    regions = g.linear_regions(net, BOX)
    boundary = g.decision_boundary(regions)
    points = np.random.default_rng(0).uniform([BOX[0], BOX[2]], [BOX[1], BOX[3]], size=(300, 2))
    labels = regions.predict(points)
    marked = np.argsort(g.geometric_hardness(regions, points, labels, boundary=boundary))[-30:]
    fig = g.plot_regions(regions, boundary, points, labels, marked=marked)
    ax = fig.axes[0]
    drawn = next(c for c in ax.collections if c.get_label() == "decision boundary")
    assert len(drawn.get_segments()) == len(boundary)
    circled = next(c for c in ax.collections if c.get_label() == "marked")
    np.testing.assert_allclose(circled.get_offsets(), points[marked])
    plt.close(fig)
    fig = g.plot_skeleton(regions, 1)
    ax = fig.axes[0]
    critical = g.critical_points(regions, 1)
    shown = sum(len(c.get_offsets()) for c in ax.collections if c.get_label() in ("local maxima", "local minima"))
    assert shown == len(critical.points) > 0
    skeleton = next(c for c in ax.collections if c.get_label() == "skeleton")
    assert len(skeleton.get_segments()) == len(g.region_edges(regions)[0])
    plt.close(fig)


def test_blobs2d_pool_end_to_end():
    """What a track does: train on the 2-D blobs, then exact hardness of every pool sample."""
    from bench.data import load_dataset

    data = load_dataset("blobs2d")
    assert data.num_classes == 4 and data.input_shape == (2,) and len(data.y_train) == 800
    assert torch.equal(load_dataset("blobs2d").x_train, data.x_train)
    x, y = data.pooled()
    torch.manual_seed(0)
    model = mlp((2,), 4, hidden=[16, 16])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    regions = g.linear_regions(model, g.default_box(x))
    boundary = g.decision_boundary(regions)
    hardness = g.geometric_hardness(regions, x, y, boundary=boundary)
    with torch.no_grad():
        wrong = (model(x).argmax(1) != y).numpy()
    assert 0 < wrong.mean() < 0.3
    assert (hardness[wrong] >= 0).all() and (hardness[~wrong] <= 0).all()
    assert np.isin(boundary.classes, np.arange(4)).all() and len(np.unique(boundary.classes)) == 4


# ---- Bayes-optimal boundary of the synthetic generators ------------------------------------------
@pytest.mark.parametrize("name", g.BAYES_DATASETS)
def test_regenerated_raw_points_standardise_to_the_datasets_inputs(name):
    data = load_dataset(name)
    x_tr, y_tr, x_te, y_te = g.raw_synthetic(name)
    mean, std = g.synthetic_frame(name)
    np.testing.assert_allclose((x_tr - mean) / std, data.x_train.numpy(), atol=1e-5)
    np.testing.assert_allclose((x_te - mean) / std, data.x_test.numpy(), atol=1e-5)
    assert np.array_equal(y_tr, data.y_train.numpy()) and np.array_equal(y_te, data.y_test.numpy())


def test_blobs2d_bayes_distance_is_the_distance_to_the_axes():
    """Four equal isotropic blobs centred at 45, 135, 225 and 315 degrees: the Bayes boundary
    is the two axes, so a raw point's distance is min(|x|, |y|), and min(|x| / s_x, |y| / s_y)
    in the standardised coordinates (x = s u + m)."""
    points = np.array([[0.3, 0.7], [-1.2, 0.1], [-0.5, -0.45], [2.0, -3.0]])
    np.testing.assert_allclose(g.bayes_boundary_distance("blobs2d", points), np.abs(points).min(1), atol=1e-12)
    mean, std = g.synthetic_frame("blobs2d")
    standardised = g.bayes_boundary_distance("blobs2d", (points - mean) / std, normalised=True)
    np.testing.assert_allclose(standardised, (np.abs(points) / std).min(1), atol=1e-9)
    assert g.bayes_predict("blobs2d", points).tolist() == [0, 1, 2, 3]
    # the lattice method on an off-centre box gives the same straight boundary
    lattice = g.bayes_boundary_distance("blobs2d", points[:3], exact=False, grid=101, box=(-2.1, 1.9, -1.7, 2.3))
    np.testing.assert_allclose(lattice, np.abs(points[:3]).min(1), atol=1e-9)


def test_level_set_segments_approximate_a_circle_within_the_chord_sag():
    xs = ys = np.linspace(-2, 2, 81)  # h = 0.05
    gx, gy = np.meshgrid(xs, ys)
    segments = g.level_set_segments(1.0 - gx ** 2 - gy ** 2, xs, ys)
    points = np.random.default_rng(0).uniform(-1.8, 1.8, size=(500, 2))
    exact = np.abs(np.linalg.norm(points, axis=1) - 1.0)
    approx = g.boundary_distance(g.Boundary((-2, 2, -2, 2), segments, np.zeros((len(segments), 2), int)), points)
    # vertices interpolate 1 - r^2 linearly (error ~ h^2 / 4), chords sag by ~ h^2 / 8
    assert np.abs(approx - exact).max() < 0.05 ** 2


@pytest.mark.parametrize("name,grid", [("moons", 201), ("spirals", 151), ("spirals3", 151)])
def test_lattice_boundary_matches_a_brute_force_search_for_the_other_class(name, grid):
    """The distance to the nearest lattice point of another Bayes class (a fine lattice,
    independent of the contour) brackets the boundary distance within the two spacings."""
    x_tr, _, _, _ = g.raw_synthetic(name)
    points = x_tr[::25]
    boundary = g.bayes_boundary(name, grid=grid)
    box = boundary.box
    h = max(box[1] - box[0], box[3] - box[2]) / (grid - 1)
    distance = g.boundary_distance(boundary, points)
    # the two tying log joints agree at the boundary's vertices
    vertices = boundary.segments.reshape(-1, 2)
    pairs = np.repeat(boundary.classes, 2, axis=0)
    joint = g.bayes_log_joint(name, vertices)
    rows = np.arange(len(vertices))
    assert np.median(np.abs(joint[rows, pairs[:, 0]] - joint[rows, pairs[:, 1]])) < 0.01
    fine = 241
    xs, ys = np.linspace(box[0], box[1], fine), np.linspace(box[2], box[3], fine)
    lattice = np.stack([g.ravel() for g in np.meshgrid(xs, ys)], 1)
    lattice_class, own = g.bayes_predict(name, lattice), g.bayes_predict(name, points)
    gaps = np.linalg.norm(points[:, None] - lattice[None], axis=2)
    brute = np.where(lattice_class[None] != own[:, None], gaps, np.inf).min(1)
    h_fine = max(box[1] - box[0], box[3] - box[2]) / (fine - 1)
    assert np.all(brute >= distance - h) and np.all(brute <= distance + h_fine + h), np.abs(brute - distance).max()


def test_bayes_geometric_hardness_signs_by_the_bayes_class():
    points = np.array([[0.3, 0.7], [0.3, 0.7], [-1.2, 0.1]])
    hardness = g.bayes_geometric_hardness("blobs2d", points, np.array([0, 2, 1]))
    np.testing.assert_allclose(hardness, [-0.3, 0.3, -0.1])
    with pytest.raises(ValueError, match="no known generating distribution"):
        g.bayes_boundary_distance("blobs", points)
