"""The Bayes-optimal boundary of the synthetic 2-D generators, and distances to it: a ground truth no network reads (see ``bench.relu_geometry``)."""
from __future__ import annotations

import functools

import numpy as np
import torch

from .regions import Box, Boundary, _as_points, check_box, default_box
from .distances import _nearest_on_segments, geometric_hardness

# ------------------------------------------------- Bayes-optimal boundary of the generators
#
# Ground truth that no network computes: for the 2-D synthetic sets of ``bench.data`` the
# generating distribution is known, so the Bayes-optimal classifier argmax_c pi_c f_c(x) and
# its decision boundary {x : the top two of pi_c f_c(x) tie} are too. Coordinates: the
# generators' own ("raw") ones; ``bench.data`` standardises every feature with the train
# split's mean and std, and ``synthetic_frame`` regenerates that split to give them back.
#
# - ``blobs2d`` (``make_blobs2d``): class c ~ N(mu_c, s^2 I), centres on the unit circle,
#   equal priors (the labels are arange(n) % C). Equal isotropic covariances and priors make
#   the Bayes boundary the Voronoi boundary of the centres, and the distance of a point x
#   in the cell of k to it is exact: min over j != k of (|x - mu_j|^2 - |x - mu_k|^2) /
#   (2 |mu_j - mu_k|), the distance to the bisector of k and j (for a point inside an
#   intersection of half-planes, the distance to its border is the smallest distance to
#   one of their lines; redundant ones are farther). An affine per-axis rescaling maps the
#   bisectors to lines, so the distance stays exact in the standardised coordinates.
# - ``moons`` (``sklearn.datasets.make_moons``): class 0 is n // 2 points at
#   linspace(0, pi) on the upper unit half circle, class 1 the rest on the shifted lower
#   one, each plus N(0, noise^2 I): an exact finite Gaussian mixture per class, with
#   priors the class shares.
# - ``spirals``, ``spirals3`` (``make_spirals``): class c is t (cos(t + 2 pi c / A),
#   sin(t + 2 pi c / A)) / T with t = T sqrt(U), U uniform, T = 2 pi turns, so t has
#   density 2 t / T^2 on [0, T], plus N(0, (2 noise / T)^2 I). The integral over t is a
#   midpoint rule with ``BAYES_SPIRAL_NODES`` nodes: their spacing along the curve is at
#   most T / nodes (the curve's speed |dp/dt| = sqrt(1 + t^2) / T <= 1.01 at the default
#   T = 3 pi), 1/4.5 of the noise std 2 noise / T at the defaults, where a midpoint sum of
#   a Gaussian kernel is exact to far below the lattice error (its Poisson-summation error
#   is of order exp(-2 pi^2 std^2 / spacing^2)); priors the class shares.
#
# For moons and spirals the boundary is approximated on a ``grid`` x ``grid`` lattice over
# the box (default: the raw points' bounding box grown by 25% per side): for every class
# pair (i, j) the zero level set of log(pi_i f_i) - log(pi_j f_j) by marching squares with
# linear interpolation (``level_set_segments``, ``contourpy``), kept where i and j are the
# two most likely classes (tested at each segment's midpoint). The distance of a point to
# those segments is then exact; the approximation is the contour's: its vertices lie on the
# level set up to the interpolation error of the log ratio along a grid edge, and its chords
# cut curves short by O(h^2 x curvature), h the grid spacing; near a triple point (C = 3) a
# segment may be kept or dropped whole, an error below h. tests/test_geometry.py checks the
# lattice method on a circle (known distance), against the exact blobs2d distance, and the
# log ratio at the moons and spirals boundary vertices.

BAYES_DATASETS = ("blobs2d", "moons", "spirals", "spirals3")
BAYES_GRID = 301  # lattice points per axis for the level-set approximation
BAYES_SPIRAL_NODES = 1000  # midpoint nodes of the integral over the spiral parameter t
BAYES_BOX_MARGIN = 0.25  # the default box: the raw points' bounding box grown by this share per side


def _generator_defaults(name: str) -> dict:
    """The keyword defaults of ``bench.data``'s generator of ``name`` (``spirals3``: 3 arms)."""
    import inspect

    from .. import data

    if name not in BAYES_DATASETS:
        raise ValueError(f"no known generating distribution for {name!r}; known: {', '.join(BAYES_DATASETS)}")
    function = {"blobs2d": data.make_blobs2d, "moons": data.make_moons}.get(name, data.make_spirals)
    settings = {k: p.default for k, p in inspect.signature(function).parameters.items()}
    if name == "spirals3":
        settings["arms"] = 3
    return settings


def raw_synthetic(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) of a 2-D synthetic set before standardisation: the
    generator of ``bench.data`` at its defaults, regenerated with its seed and split the same
    way (``bench.data._stratified_split``). Standardising these with ``synthetic_frame`` gives
    the ``Dataset``'s inputs (tests/test_geometry.py checks it)."""
    from ..data import _stratified_split

    s = _generator_defaults(name)
    if name == "moons":
        from sklearn.datasets import make_moons

        x, y = make_moons(n_samples=s["n"], noise=s["noise"], random_state=s["seed"])
    elif name == "blobs2d":  # the lines of bench.data.make_blobs2d
        rng = np.random.default_rng(s["seed"])
        centres = _blob_centres(s["classes"])
        y = np.arange(s["n"]) % s["classes"]
        x = centres[y] + rng.normal(scale=s["spread"], size=(s["n"], 2))
    else:  # the lines of bench.data.make_spirals
        rng = np.random.default_rng(s["seed"])
        y = np.arange(s["n"]) % s["arms"]
        span = s["turns"] * 2 * np.pi
        t = np.sqrt(rng.uniform(size=s["n"])) * span
        angle = t + 2 * np.pi * y / s["arms"]
        x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / span
        x += rng.normal(scale=s["noise"] / span * 2, size=x.shape)
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y)
    return x_tr, y_tr, x_te, y_te


def synthetic_frame(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), each (2,): the train split's per-feature statistics with which
    ``bench.data`` standardises a 2-D synthetic set (float32, unbiased std, at least 1e-6, as
    ``bench.data._normalised``). Raw coordinates = standardised x std + mean."""
    x_tr = torch.as_tensor(raw_synthetic(name)[0], dtype=torch.float32)
    return x_tr.mean(dim=0).double().numpy(), x_tr.std(dim=0).clamp_min(1e-6).double().numpy()


def _blob_centres(classes: int) -> np.ndarray:
    angle = 2 * np.pi * (np.arange(classes) + 0.5) / classes
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _mixture(name: str) -> tuple[list[np.ndarray], list[np.ndarray], float, np.ndarray]:
    """Per class the Gaussian components' centres (M_c, 2) and log weights (M_c,), the common
    noise std, and the log priors (C,) of the generating distribution (raw coordinates)."""
    s = _generator_defaults(name)
    if name == "blobs2d":
        centres = _blob_centres(s["classes"])
        counts = np.bincount(np.arange(s["n"]) % s["classes"])
        return [c[None] for c in centres], [np.zeros(1)] * len(centres), s["spread"], np.log(counts / s["n"])
    if name == "moons":
        n_out = s["n"] // 2
        n_in = s["n"] - n_out
        outer = np.linspace(0, np.pi, n_out)
        inner = np.linspace(0, np.pi, n_in)
        centres = [np.stack([np.cos(outer), np.sin(outer)], 1),
                   np.stack([1 - np.cos(inner), 1 - np.sin(inner) - 0.5], 1)]
        weights = [np.full(n_out, -np.log(n_out)), np.full(n_in, -np.log(n_in))]
        return centres, weights, s["noise"], np.log(np.array([n_out, n_in]) / s["n"])
    arms, span = s["arms"], s["turns"] * 2 * np.pi
    t = (np.arange(BAYES_SPIRAL_NODES) + 0.5) * span / BAYES_SPIRAL_NODES  # midpoints
    log_w = np.log(2 * t / span ** 2 * (span / BAYES_SPIRAL_NODES))
    centres = [np.stack([t * np.cos(t + 2 * np.pi * c / arms), t * np.sin(t + 2 * np.pi * c / arms)], 1) / span
               for c in range(arms)]
    counts = np.bincount(np.arange(s["n"]) % arms)
    return centres, [log_w] * arms, s["noise"] / span * 2, np.log(counts / s["n"])


def bayes_log_joint(name: str, points) -> np.ndarray:
    """(N, C) log(pi_c f_c(x)) of the generating distribution at raw ``points`` (N, 2), in
    float64 (torch's cdist and logsumexp, in chunks of points)."""
    p = torch.as_tensor(_as_points(points))
    centres, log_weights, sigma, log_prior = _mixture(name)
    out = torch.empty(len(p), len(centres), dtype=torch.float64)
    chunk = max(1, 4_000_000 // max(len(c) for c in centres))
    for c, (mu, log_w) in enumerate(zip(centres, log_weights)):
        mu, log_w = torch.as_tensor(mu), torch.as_tensor(log_w)
        for i in range(0, len(p), chunk):
            squared = torch.cdist(p[i:i + chunk], mu, compute_mode="donot_use_mm_for_euclid_dist") ** 2
            out[i:i + chunk, c] = torch.logsumexp(log_w - squared / (2 * sigma ** 2), dim=1)
    return (out - np.log(2 * np.pi * sigma ** 2)).numpy() + log_prior


def _to_raw(name: str, points, normalised: bool) -> np.ndarray:
    p = _as_points(points)
    if not normalised:
        return p
    mean, std = synthetic_frame(name)
    return p * std + mean


def bayes_predict(name: str, points, normalised: bool = False) -> np.ndarray:
    """The Bayes-optimal class of each point (raw coordinates, or the ``Dataset``'s
    standardised ones with ``normalised=True``); ties to the lower index."""
    return bayes_log_joint(name, _to_raw(name, points, normalised)).argmax(axis=1)


def _default_bayes_box(name: str) -> Box:
    x_tr, _, x_te, _ = raw_synthetic(name)
    return default_box(np.concatenate([x_tr, x_te]), BAYES_BOX_MARGIN)


def level_set_segments(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, level: float = 0.0) -> np.ndarray:
    """The level set {values = level} of a function sampled on a lattice (``values[r, c]`` at
    (xs[c], ys[r])), as segments (S, 2, 2): marching squares with linear interpolation along
    the lattice edges (``contourpy``, well kept and used by matplotlib)."""
    import contourpy

    lines = contourpy.contour_generator(xs, ys, values, line_type=contourpy.LineType.Separate).lines(level)
    pieces = [np.stack([line[:-1], line[1:]], 1) for line in lines if len(line) > 1]
    return np.concatenate(pieces) if pieces else np.zeros((0, 2, 2))


def bayes_boundary(name: str, box=None, grid: int = BAYES_GRID) -> Boundary:
    """The Bayes-optimal decision boundary in raw coordinates, approximated on a
    ``grid`` x ``grid`` lattice over ``box`` (see the section comment), as a `Boundary`
    whose ``classes`` are the two classes that tie along each segment. Cached per
    (name, box, grid): a few seconds for the spirals, then free."""
    return _bayes_boundary(name, check_box(box) if box is not None else _default_bayes_box(name), int(grid))


@functools.lru_cache(maxsize=16)
def _bayes_boundary(name: str, box: Box, grid: int) -> Boundary:
    xs, ys = np.linspace(box[0], box[1], grid), np.linspace(box[2], box[3], grid)
    gx, gy = np.meshgrid(xs, ys)
    log_joint = bayes_log_joint(name, np.stack([gx.ravel(), gy.ravel()], 1)).reshape(grid, grid, -1)
    segments, pairs = [np.zeros((0, 2, 2))], [np.zeros((0, 2), dtype=np.int64)]
    for i in range(log_joint.shape[-1]):
        for j in range(i + 1, log_joint.shape[-1]):
            piece = level_set_segments(log_joint[..., i] - log_joint[..., j], xs, ys)
            top_two = np.sort(np.argsort(-bayes_log_joint(name, piece.mean(axis=1)), axis=1)[:, :2], axis=1)
            piece = piece[(top_two == [i, j]).all(axis=1)]
            segments.append(piece)
            pairs.append(np.tile([i, j], (len(piece), 1)))
    return Boundary(box, np.concatenate(segments), np.concatenate(pairs))


def _blobs_distance(name: str, raw: np.ndarray, frame) -> np.ndarray:
    """Exact distance to the Voronoi boundary of the blob centres (see the section comment),
    in raw coordinates (``frame=None``) or in the standardised ones (frame = (mean, std))."""
    centres = _mixture(name)[0]
    mu = np.concatenate(centres)
    scale = np.ones(2) if frame is None else frame[1]
    own = ((raw[:, None] - mu[None]) ** 2).sum(-1).argmin(axis=1)
    # bisector of k and j: n . x = b with n = mu_j - mu_k, b = (|mu_j|^2 - |mu_k|^2) / 2; in the
    # standardised u (x = scale u + mean) its normal is n * scale and the gap is unchanged
    normal = mu[None, :] - mu[own][:, None]  # (N, C, 2)
    offset = ((mu ** 2).sum(-1)[None, :] - (mu[own] ** 2).sum(-1)[:, None]) / 2
    gap = offset - (normal * raw[:, None]).sum(-1)  # >= 0: x is on k's side
    length = np.linalg.norm(normal * scale, axis=-1)
    distance = np.where(length > 0, gap / np.where(length > 0, length, 1), np.inf)
    return distance.min(axis=1)


def bayes_boundary_distance(name: str, points, *, normalised: bool = False, grid: int = BAYES_GRID,
                            box=None, exact: bool = True) -> np.ndarray:
    """Each point's Euclidean distance to the Bayes-optimal decision boundary of the generating
    distribution of ``name`` (one of ``BAYES_DATASETS``).

    ``points`` are raw coordinates, or, with ``normalised=True``, the standardised ones of the
    ``Dataset`` (``bench.data.load_dataset(name).x_train``), in which the distance is then
    measured too (the boundary mapped there: the network's input space). ``blobs2d`` is exact
    (``exact=False`` uses the lattice method instead, for tests); moons and spirals use
    `bayes_boundary` on a ``grid`` lattice over ``box`` (raw coordinates)."""
    raw = _to_raw(name, points, normalised)
    frame = synthetic_frame(name) if normalised else None
    if name == "blobs2d" and exact:
        _generator_defaults(name)
        return _blobs_distance(name, raw, frame)
    boundary = bayes_boundary(name, box, grid)
    segments = boundary.segments
    query = raw
    if frame is not None:
        segments = (segments - frame[0]) / frame[1]
        query = (raw - frame[0]) / frame[1]
    return _nearest_on_segments(query, segments)[0]


def bayes_geometric_hardness(name: str, points, labels, *, normalised: bool = False, **options) -> np.ndarray:
    """Ground-truth hardness from the generating distribution, independent of any network:
    minus the Bayes boundary distance signed by correctness (+d where the Bayes-optimal class
    is the label, -d where it is not), as `geometric_hardness` does for a network."""
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    distance = bayes_boundary_distance(name, points, normalised=normalised, **options)
    if labels.shape != distance.shape:
        raise ValueError(f"got {len(distance)} points but labels of shape {labels.shape}")
    correct = bayes_predict(name, points, normalised) == labels
    return -np.where(correct, distance, -distance)
