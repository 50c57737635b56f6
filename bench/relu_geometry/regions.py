"""Linear regions, class cells, the decision boundary and the skeleton of a ReLU MLP on 2-D inputs, exactly (see ``bench.relu_geometry``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

Box = tuple[float, float, float, float]

EDGE_TOL = 1e-10  # relative to the box diagonal: a vertex this close to a line lies on it
SLIVER_TOL = 1e-12  # relative to the box area: pieces smaller than this are not split off
_MATCH_TOL = 1e-8  # relative to the box diagonal: an edge this close to a tie line lies on it, and
# vertices (segment ends) this close to each other are one
_DISTANCE_CHUNK = 4_000_000  # point-segment pairs per chunk in boundary_distance

# --------------------------------------------------------------------------- model


def network_layers(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """The network as float64 affine layers [(W_1, b_1), ..., (W_L, b_L)], with a ReLU
    after every layer but the last: f(x) = W_L relu(... relu(W_1 x + b_1) ...) + b_L.

    Raises TypeError for a model that is neither an `nn.Sequential` nor a `BlockNet`,
    and ValueError for a layer other than Linear / ReLU (Flatten and Identity are
    skipped), an input dimension other than 2, or a last module that is not Linear.
    """
    from ..models import BlockNet

    if isinstance(model, BlockNet):
        modules = _flatten_modules(list(model.blocks)) + [model.head]
    elif isinstance(model, nn.Sequential):
        modules = _flatten_modules(list(model))
    else:
        raise TypeError(f"expected a torch.nn.Sequential of nn.Linear and nn.ReLU layers, or bench.models.mlp's "
                        f"BlockNet with ReLU activations; got {type(model).__name__}")
    layers, pending = [], None  # pending: the affine map since the last ReLU
    for position, module in enumerate(modules):
        if isinstance(module, (nn.Flatten, nn.Identity)):
            continue
        if isinstance(module, nn.Linear):
            weight = module.weight.detach().to("cpu", torch.float64).numpy()
            bias = (module.bias.detach().to("cpu", torch.float64).numpy() if module.bias is not None
                    else np.zeros(weight.shape[0]))
            pending = (weight, bias) if pending is None else (weight @ pending[0], weight @ pending[1] + bias)
        elif isinstance(module, nn.ReLU):
            if pending is None and not layers:
                raise ValueError(f"layer {position} (ReLU) comes before any nn.Linear: the input must go through "
                                 "an nn.Linear first")
            if pending is not None:  # a ReLU right after a ReLU changes nothing
                layers.append(pending)
                pending = None
        else:
            raise ValueError(f"unsupported layer {position}: {module.__class__.__name__}; only nn.Linear and nn.ReLU "
                             "(plus nn.Flatten / nn.Identity) are allowed, so that the network is piecewise affine")
    if pending is None:
        raise ValueError("the network must end with the nn.Linear layer that produces the logits"
                         + ("" if layers else "; it has no nn.Linear layer at all"))
    layers.append(pending)
    if layers[0][0].shape[1] != 2:
        raise ValueError(f"the input dimension must be 2 (the plane); the first nn.Linear takes "
                         f"{layers[0][0].shape[1]} inputs")
    return layers


def _flatten_modules(modules: list[nn.Module]) -> list[nn.Module]:
    flat = []
    for module in modules:
        flat.extend(_flatten_modules(list(module)) if isinstance(module, nn.Sequential) else [module])
    return flat


def forward(layers: list[tuple[np.ndarray, np.ndarray]], points: np.ndarray) -> np.ndarray:
    """The logits (N, C) of the network given as `network_layers`, in float64."""
    h = np.asarray(points, dtype=np.float64)
    for weight, bias in layers[:-1]:
        h = np.maximum(h @ weight.T + bias, 0.0)
    weight, bias = layers[-1]
    return h @ weight.T + bias


def check_box(box) -> Box:
    """``(xmin, xmax, ymin, ymax)`` as floats; ValueError unless finite with xmin < xmax, ymin < ymax."""
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be four numbers (xmin, xmax, ymin, ymax); got {box!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"box must be four finite numbers (xmin, xmax, ymin, ymax); got {box!r}")
    xmin, xmax, ymin, ymax = values
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"box must have xmin < xmax and ymin < ymax; got {box!r}")
    return values


def default_box(points, margin: float = 0.1) -> Box:
    """The bounding box of ``points`` (N, 2) grown by ``margin`` times its size on each side."""
    p = _as_points(points)
    low, high = p.min(axis=0), p.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-6)
    return (float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1]))


def _as_points(points) -> np.ndarray:
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    p = np.asarray(points, dtype=np.float64)
    p = p.reshape(len(p), -1) if p.ndim > 2 else p  # (N, 1, 2)-style inputs
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2); got {np.shape(points)}")
    return p


# ------------------------------------------------------------------ polygon batches


def _next_index(counts: np.ndarray, k: int) -> np.ndarray:
    """(m, k) index of each vertex's successor, cyclic within each polygon's count."""
    return (np.arange(k)[None, :] + 1) % np.maximum(counts, 1)[:, None]


def _valid(counts: np.ndarray, k: int) -> np.ndarray:
    return np.arange(k)[None, :] < counts[:, None]


def _affine_values(vertices: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """s[m, i] = a_m . v_{m,i} + c_m for polygons (m, K, 2), gradients (m, 2), offsets (m,)."""
    return vertices[..., 0] * a[:, None, 0] + vertices[..., 1] * a[:, None, 1] + c[:, None]


def polygon_areas(vertices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Shoelace areas (m,) of padded counter-clockwise polygons: 1/2 sum_i x_i y_{i+1} - x_{i+1} y_i."""
    nxt = np.take_along_axis(vertices, _next_index(counts, vertices.shape[1])[..., None], axis=1)
    cross = vertices[..., 0] * nxt[..., 1] - nxt[..., 0] * vertices[..., 1]
    return 0.5 * np.where(_valid(counts, vertices.shape[1]), cross, 0.0).sum(axis=1)


def _clip(vertices: np.ndarray, counts: np.ndarray, s: np.ndarray, tol: np.ndarray):
    """Each convex polygon intersected with its half-plane {s >= 0}, s affine.

    ``s`` (m, K) holds the affine function's values at the vertices and ``tol`` (m,) the
    band |s| <= tol counted as on the line. Kept: the vertices with s >= -tol, in order,
    plus the crossing v_i + t (v_j - v_i), t = s_i / (s_i - s_j), on every edge whose
    ends lie strictly on opposite sides. A convex polygon gains at most one vertex.
    Returns padded vertices (m, K', 2) and counts (m,); an empty result has count 0.
    """
    m, k = s.shape
    valid = _valid(counts, k)
    side = np.where(s > tol[:, None], 1, np.where(s < -tol[:, None], -1, 0))
    nxt = _next_index(counts, k)
    s_next = np.take_along_axis(s, nxt, axis=1)
    side_next = np.take_along_axis(side, nxt, axis=1)
    v_next = np.take_along_axis(vertices, nxt[..., None], axis=1)
    keep_vertex = valid & (side >= 0)
    crossing = valid & (side * side_next < 0)
    t = s / np.where(crossing, s - s_next, 1.0)
    crossings = vertices + t[..., None] * (v_next - vertices)
    candidates = np.stack([vertices, crossings], axis=2).reshape(m, 2 * k, 2)
    keep = np.stack([keep_vertex, crossing], axis=2).reshape(m, 2 * k)
    new_counts = keep.sum(axis=1)
    out = np.zeros((m, max(int(new_counts.max(initial=0)), 1), 2))
    rows, cols = np.nonzero(keep)
    out[rows, (np.cumsum(keep, axis=1) - 1)[rows, cols]] = candidates[rows, cols]
    return out, new_counts


def _pad(vertices: np.ndarray, k: int) -> np.ndarray:
    if vertices.shape[1] >= k:
        return vertices
    return np.concatenate([vertices, np.zeros((len(vertices), k - vertices.shape[1], 2))], axis=1)


def _box_polygon(box: Box) -> np.ndarray:
    xmin, xmax, ymin, ymax = box
    return np.array([[[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]]], dtype=np.float64)


def _diag(box: Box) -> float:
    return float(np.hypot(box[1] - box[0], box[3] - box[2]))


def _box_area(box: Box) -> float:
    return (box[1] - box[0]) * (box[3] - box[2])


# ---------------------------------------------------------------------- regions


@dataclass
class Regions:
    """The linear regions of a ReLU network over a box.

    Region r is the convex polygon ``vertices[r, :counts[r]]`` (counter-clockwise) on
    which the logits are affine: z(x) = W[r] @ x + b[r]. ``patterns[r]`` is its ReLU
    activation pattern (True = active, z_j > 0), hidden layers concatenated in order.
    ``counts_per_layer[l]`` is the number of regions after hidden layer l.
    """
    box: Box
    vertices: np.ndarray  # (R, K, 2) float64, padded
    counts: np.ndarray  # (R,) vertices per region
    W: np.ndarray  # (R, C, 2)
    b: np.ndarray  # (R, C)
    patterns: np.ndarray  # (R, total hidden units) bool
    counts_per_layer: list[int]
    layers: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)  # the network, float64
    _cells: "Cells | None" = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def num_classes(self) -> int:
        return self.W.shape[1]

    def polygon(self, r: int) -> np.ndarray:
        """Region r's vertices, (k, 2) counter-clockwise."""
        return self.vertices[r, :self.counts[r]]

    @property
    def polygons(self) -> list[np.ndarray]:
        return [self.polygon(r) for r in range(len(self))]

    def areas(self) -> np.ndarray:
        return polygon_areas(self.vertices, self.counts)

    def vertex_logits(self) -> np.ndarray:
        """The skeleton's values: (R, K, C) logits of every class at every region vertex
        (padding slots beyond ``counts[r]`` hold meaningless values)."""
        return np.einsum("rkd,rcd->rkc", self.vertices, self.W) + self.b[:, None, :]

    def logits(self, points) -> np.ndarray:
        """The network's logits (N, C) at ``points``, in float64."""
        return forward(self.layers, _as_points(points))

    def predict(self, points) -> np.ndarray:
        return self.logits(points).argmax(axis=1)


def linear_regions(model: nn.Module, box) -> Regions:
    """Every linear region of ``model`` inside ``box = (xmin, xmax, ymin, ymax)``.

    Layer l maps h -> relu(W_l h + b_l). On a region where h = A_r x + c_r, neuron j's
    pre-activation is (W_l A_r)_j . x + (W_l c_r + b_l)_j, an affine function whose zero
    line cuts the region into at most two convex pieces. All regions are cut by one
    neuron at a time (vectorised over regions); after the layer, the pattern p_r sets
    A_r <- diag(p_r) W_l A_r and c_r <- diag(p_r) (W_l c_r + b_l). The head gives the
    logits' maps W_r = W_L A_r, b_r = W_L c_r + b_L.
    """
    return _extract(network_layers(model), check_box(box))


def _extract(layers, box: Box) -> Regions:
    diag, sliver = _diag(box), SLIVER_TOL * _box_area(box)
    vertices = _box_polygon(box)
    counts = np.array([4])
    # h = A_r x + c_r on region r, held unit-major for plain matrix products: A (d, R, 2), c (d, R)
    A, c = np.eye(2)[:, None, :], np.zeros((2, 1))
    patterns, counts_per_layer = np.zeros((1, 0), dtype=bool), []
    for weight, bias in layers[:-1]:
        n, d, R = weight.shape[0], weight.shape[1], len(counts)
        ZW = (weight @ A.reshape(d, R * 2)).reshape(n, R, 2)  # pre-activation gradients
        Zb = weight @ c + bias[:, None]  # pre-activation offsets (n, R)
        origin = np.arange(R)  # each piece's region at the start of the layer
        bits = np.zeros((R, n), dtype=bool)
        for j in range(n):
            vertices, counts, origin, bits = _cut(vertices, counts, ZW[j, origin], Zb[j, origin], origin, bits, j,
                                                  diag, sliver)
        vertices = vertices[:, :counts.max()]
        patterns = np.concatenate([patterns[origin], bits], axis=1)
        A, c = ZW[:, origin] * bits.T[..., None], Zb[:, origin] * bits.T
        counts_per_layer.append(len(counts))
    weight, bias = layers[-1]
    R = len(counts)
    W = (weight @ A.reshape(weight.shape[1], R * 2)).reshape(-1, R, 2).transpose(1, 0, 2)
    b = (weight @ c + bias[:, None]).T
    return Regions(box, vertices, counts, np.ascontiguousarray(W), np.ascontiguousarray(b), patterns,
                   counts_per_layer, layers)


def _cut(vertices, counts, a, offset, origin, bits, j, diag, sliver):
    """Cut every region by neuron j's zero line {a_r . x + offset_r = 0}: a region with
    vertices strictly on both sides is split into its positive piece (kept in place, bit j
    on) and its negative piece (appended, bit j off, same origin); any other region takes
    bit j from the side it lies on."""
    s = _affine_values(vertices, a, offset)
    tol = EDGE_TOL * diag * np.hypot(a[:, 0], a[:, 1])
    valid = _valid(counts, vertices.shape[1])
    positive = (valid & (s > tol[:, None])).any(axis=1)
    negative = (valid & (s < -tol[:, None])).any(axis=1)
    bits[:, j] = positive
    split = np.nonzero(positive & negative)[0]
    if len(split) == 0:
        return vertices, counts, origin, bits
    v, n, sv, t = vertices[split], counts[split], s[split], tol[split]
    upper, n_upper = _clip(v, n, sv, t)
    lower, n_lower = _clip(v, n, -sv, t)
    area_upper, area_lower = polygon_areas(upper, n_upper), polygon_areas(lower, n_lower)
    real = (area_upper >= sliver) & (area_lower >= sliver)
    bits[split[~real], j] = area_upper[~real] >= area_lower[~real]  # a sliver stays in its parent
    split, upper, n_upper, lower, n_lower = split[real], upper[real], n_upper[real], lower[real], n_lower[real]
    if len(split) == 0:
        return vertices, counts, origin, bits
    k = max(vertices.shape[1], upper.shape[1], lower.shape[1])
    vertices = _pad(vertices, k)
    vertices[split] = _pad(upper, k)
    counts = counts.copy()
    counts[split] = n_upper
    bits[split, j] = True
    new_bits = bits[split]
    new_bits[:, j] = False
    vertices = np.concatenate([vertices, _pad(lower, k)])
    counts = np.concatenate([counts, n_lower])
    return vertices, counts, np.concatenate([origin, origin[split]]), np.concatenate([bits, new_bits])


def region_counts_per_layer(model: nn.Module, box) -> list[int]:
    """The number of linear regions inside ``box`` after each hidden layer (empty without one)."""
    return linear_regions(model, box).counts_per_layer


# ------------------------------------------------------------------- class cells


@dataclass
class Cells:
    """Convex class cells: cell m is where class ``label[m]`` wins inside region
    ``region[m]``, the polygon ``vertices[m, :counts[m]]`` (counter-clockwise)."""
    vertices: np.ndarray  # (M, K, 2)
    counts: np.ndarray  # (M,)
    region: np.ndarray  # (M,)
    label: np.ndarray  # (M,)

    def __len__(self) -> int:
        return len(self.counts)

    def polygon(self, m: int) -> np.ndarray:
        return self.vertices[m, :self.counts[m]]


def class_cells(regions: Regions) -> Cells:
    """Every non-empty class cell: region r clipped by the C - 1 half-planes
    (w_c - w_k) . x + (b_c - b_k) >= 0, k != c, for every class c (vectorised over all
    region-class pairs, one loop step per k). Cached on ``regions``."""
    if regions._cells is not None:
        return regions._cells
    R, C = len(regions), regions.num_classes
    diag = _diag(regions.box)
    region = np.repeat(np.arange(R), C)
    label = np.tile(np.arange(C), R)
    vertices, counts = np.repeat(regions.vertices, C, axis=0), np.repeat(regions.counts, C)
    Wc, bc = regions.W[region, label], regions.b[region, label]
    for k in range(C):
        a = Wc - regions.W[region, k]
        offset = bc - regions.b[region, k]
        own = label == k  # z_c - z_c = 0 >= 0 keeps everything
        offset = np.where(own, 1.0, offset)
        s = _affine_values(vertices, a, offset)
        vertices, counts = _clip(vertices, counts, s, EDGE_TOL * diag * np.hypot(a[:, 0], a[:, 1]))
    keep = (counts >= 3) & (polygon_areas(vertices, counts) >= SLIVER_TOL * _box_area(regions.box))
    cells = Cells(vertices[keep], counts[keep], region[keep], label[keep])
    regions._cells = cells
    return cells


# ------------------------------------------------------------- decision boundary


@dataclass
class Boundary:
    """The decision boundary inside ``box`` as S segments: segment s runs from
    ``segments[s, 0]`` to ``segments[s, 1]``, with class ``classes[s, 0]`` on its left and
    ``classes[s, 1]`` on its right (left = counter-clockwise side of the direction p0 -> p1)."""
    box: Box
    segments: np.ndarray  # (S, 2, 2)
    classes: np.ndarray  # (S, 2)

    def __len__(self) -> int:
        return len(self.segments)

    @property
    def lengths(self) -> np.ndarray:
        return np.linalg.norm(self.segments[:, 1] - self.segments[:, 0], axis=1)

    @property
    def length(self) -> float:
        """Total boundary length inside the box."""
        return float(self.lengths.sum())


def decision_boundary(model_or_regions, box=None) -> Boundary:
    """The exact decision boundary {x : the top two logits tie} inside the box.

    Inside a region the class cells are convex (`class_cells`). A cell edge of class c
    along which z_c = z_k for some k != c (both ends within a tiny band of the tie line)
    is boundary between c and k. Edges inside a region are taken from the cell of the
    smaller class index only, so each appears once. An edge on the region's own border
    (the tie line coincides with a region edge, a non-generic case) is kept only where the
    network's argmax just across it differs from c. Segments are finally deduplicated.
    Works for any C >= 2; for C = 1 the boundary is empty.
    """
    regions = _regions_of(model_or_regions, box)
    cells = class_cells(regions)
    diag = _diag(regions.box)
    tol = _MATCH_TOL * diag
    k = cells.vertices.shape[1]
    nxt = np.take_along_axis(cells.vertices, _next_index(cells.counts, k)[..., None], axis=1)
    cell_of_edge, position = np.nonzero(_valid(cells.counts, k))
    p, q = cells.vertices[cell_of_edge, position], nxt[cell_of_edge, position]
    long_enough = np.linalg.norm(q - p, axis=1) > tol
    cell_of_edge, p, q = cell_of_edge[long_enough], p[long_enough], q[long_enough]
    r, c = cells.region[cell_of_edge], cells.label[cell_of_edge]
    # scaled gaps (z_c - z_k) / |grad(z_c - z_k)| at both ends, for every k: (E, C)
    grad = regions.W[r, c][:, None, :] - regions.W[r]
    offset = regions.b[r, c][:, None] - regions.b[r]
    norm = np.hypot(grad[..., 0], grad[..., 1])
    gap = np.maximum(np.abs(np.einsum("ekd,ed->ek", grad, p) + offset),
                     np.abs(np.einsum("ekd,ed->ek", grad, q) + offset)) / np.where(norm > 0, norm, np.nan)
    gap[np.arange(len(c)), c] = np.inf
    gap = np.nan_to_num(gap, nan=np.inf)
    other = gap.argmin(axis=1)
    on_tie = gap[np.arange(len(c)), other] <= tol
    on_border = _distance_to_border(regions, r, 0.5 * (p + q)) <= tol
    inner = np.nonzero(on_tie & ~on_border & (c < other))[0]
    border = np.nonzero(on_tie & on_border)[0]
    across = _class_across(regions, p[border], q[border])
    differs = (across >= 0) & (across != c[border])
    chosen = np.concatenate([inner, border[differs]])
    right = np.concatenate([other[inner], across[differs]])
    segments = np.stack([p[chosen], q[chosen]], axis=1)
    classes = np.stack([c[chosen], right], axis=1) if len(chosen) else np.zeros((0, 2), dtype=np.int64)
    return Boundary(regions.box, *_deduplicate(segments, classes, tol))


def _regions_of(model_or_regions, box) -> Regions:
    if isinstance(model_or_regions, Regions):
        return model_or_regions
    if box is None:
        raise ValueError("a box (xmin, xmax, ymin, ymax) is needed to extract the regions of a model")
    return linear_regions(model_or_regions, box)


def _distance_to_border(regions: Regions, r: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of each point (inside its region r) to that region's border: the smallest
    distance to the lines of the region's edges."""
    v, n = regions.vertices[r], regions.counts[r]
    w = np.take_along_axis(v, _next_index(n, v.shape[1])[..., None], axis=1)
    edge = w - v
    length = np.hypot(edge[..., 0], edge[..., 1])
    rel = points[:, None, :] - v
    dist = np.abs(edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]) / np.where(length > 0, length, np.inf)
    return np.where(_valid(n, v.shape[1]) & (length > 0), dist, np.inf).min(axis=1)


def _class_across(regions: Regions, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The network's class just right of each directed edge p -> q (outside its cell);
    -1 where that point leaves the box."""
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    d = q - p
    right = np.stack([d[:, 1], -d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)
    probe = 0.5 * (p + q) + 1e3 * EDGE_TOL * _diag(regions.box) * right
    xmin, xmax, ymin, ymax = regions.box
    inside = (probe[:, 0] >= xmin) & (probe[:, 0] <= xmax) & (probe[:, 1] >= ymin) & (probe[:, 1] <= ymax)
    return np.where(inside, regions.predict(probe), -1)


def _deduplicate(segments: np.ndarray, classes: np.ndarray, tol: float):
    """Segments with the same ends (to within ``tol``, either direction) kept once,
    oriented from the lexicographically smaller end (classes swapped when flipped)."""
    if len(segments) == 0:
        return np.zeros((0, 2, 2)), np.zeros((0, 2), dtype=np.int64)
    flip = (segments[:, 0, 0] > segments[:, 1, 0]) | (
        (segments[:, 0, 0] == segments[:, 1, 0]) & (segments[:, 0, 1] > segments[:, 1, 1]))
    segments = np.where(flip[:, None, None], segments[:, ::-1], segments)
    classes = np.where(flip[:, None], classes[:, ::-1], classes)
    keys = np.round(segments.reshape(-1, 4) / tol).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    first = np.sort(first)
    return segments[first], classes[first].astype(np.int64)


# ---------------------------------------------------------------------- skeleton


@dataclass
class CriticalPoints:
    """Strict local extrema of one class's logit over the box: ``kind`` +1 = maximum, -1 = minimum."""
    points: np.ndarray  # (m, 2)
    values: np.ndarray  # (m,)
    kind: np.ndarray  # (m,)

    @property
    def maxima(self) -> np.ndarray:
        return self.points[self.kind > 0]

    @property
    def minima(self) -> np.ndarray:
        return self.points[self.kind < 0]


def critical_points(regions: Regions, c: int) -> CriticalPoints:
    """Strict local extrema of class c's logit z_c, a continuous piecewise-affine function.

    An affine function on a convex polygon peaks at a vertex, and near a vertex v the
    polygon is the cone spanned by v's two edges, so v is a strict local maximum of z_c
    iff in every region having v as a vertex z_c strictly decreases along both edges
    leaving v; minima alike. Non-strict extrema are left out on purpose: where z_c is
    constant on a region (e.g. the last hidden layer is all off there) every vertex on
    the rim of that plateau would qualify. Copies of a vertex in different regions are matched by rounding to a
    grid of ``1e-8 * diag``. Extrema on the box border are extrema of z_c restricted to the box.
    """
    if not 0 <= c < regions.num_classes:
        raise ValueError(f"class {c} out of range: the network has {regions.num_classes} classes")
    values = np.einsum("rkd,rd->rk", regions.vertices, regions.W[:, c]) + regions.b[:, c][:, None]
    k = regions.vertices.shape[1]
    valid = _valid(regions.counts, k)
    nxt = _next_index(regions.counts, k)
    prev = (np.arange(k)[None, :] - 1) % np.maximum(regions.counts, 1)[:, None]
    up = np.take_along_axis(values, nxt, axis=1) - values
    down = np.take_along_axis(values, prev, axis=1) - values
    tol = 1e-9 * max(1.0, float(np.abs(values[valid]).max(initial=0.0)))
    rows, cols = np.nonzero(valid)
    key = np.round(regions.vertices[rows, cols] / (_MATCH_TOL * _diag(regions.box))).astype(np.int64)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel()
    groups = group.max() + 1
    not_below = (up[rows, cols] >= -tol) | (down[rows, cols] >= -tol)  # a neighbour not strictly lower
    not_above = (up[rows, cols] <= tol) | (down[rows, cols] <= tol)
    maximum = np.bincount(group, not_below, groups) == 0
    minimum = np.bincount(group, not_above, groups) == 0
    kind = np.where(maximum, 1, np.where(minimum, -1, 0))
    representative = np.zeros(groups, dtype=np.int64)
    representative[group] = np.arange(len(group))
    keep = kind != 0
    at = representative[keep]
    return CriticalPoints(regions.vertices[rows[at], cols[at]], values[rows[at], cols[at]], kind[keep])


def region_edges(regions: Regions) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton's edges: every region edge once, (E, 2, 2), and the region (E,) it was taken from."""
    k = regions.vertices.shape[1]
    nxt = np.take_along_axis(regions.vertices, _next_index(regions.counts, k)[..., None], axis=1)
    rows, cols = np.nonzero(_valid(regions.counts, k))
    segments = np.stack([regions.vertices[rows, cols], nxt[rows, cols]], axis=1)
    flip = (segments[:, 0, 0] > segments[:, 1, 0]) | (
        (segments[:, 0, 0] == segments[:, 1, 0]) & (segments[:, 0, 1] > segments[:, 1, 1]))
    segments = np.where(flip[:, None, None], segments[:, ::-1], segments)
    keys = np.round(segments.reshape(-1, 4) / (_MATCH_TOL * _diag(regions.box))).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    return segments[first], rows[first]
