"""Exact geometry of ReLU networks on 2-D inputs: linear regions, decision boundary,
skeleton, and every point's exact distance to the decision boundary.

A ReLU network f: R^2 -> R^C is continuous and piecewise affine. Each hidden neuron's
pre-activation is affine on any set where the earlier neurons keep their on/off state,
so its zero set cuts such a set along one straight line. Starting from the box and
cutting layer by layer gives the *linear regions*: convex polygons P_r on which

    f(x) = W_r x + b_r,    W_r in R^{C x 2},  b_r in R^C.

The regions form the polyhedral complex of Berzins 2023, "Polyhedral Complex Extraction
from ReLU Networks using Edge Subdivision" (ICML 2023); here it is extracted by cutting
regions, which is simple and exact in 2-D. The skeleton of the class logits (the
"membership functions") with its critical points, and the analytic decision boundary,
follow Pukowski & Lu 2023, "SkelEx and BoundEx: Natural Visualization of ReLU Neural
Networks" (arXiv:2305.05562). We generalise BoundEx to C >= 2 classes: inside a region
the set where class c wins,

    {x in P_r : (w_c - w_k) . x + (b_c - b_k) >= 0  for all k != c},

is an intersection of half-planes, hence a convex *cell*; the decision boundary is the
union of cell edges along which two classes tie, i.e. pieces of the lines z_c = z_k.
Because the boundary is a finite set of exact segments, the Euclidean distance of a
point to it is exact too (up to float64 rounding), which gives a ground-truth
"how hard is this sample for this network": `geometric_hardness`.

Public API
----------
- `linear_regions(model, box) -> Regions`
- `class_cells(regions) -> Cells`
- `decision_boundary(model_or_regions, box=None) -> Boundary`
- `boundary_distance(source, points, box=None) -> (N,) distances`
- `nearest_boundary_points(source, points, box=None) -> (distances, points, segment indices)`
- `signed_boundary_distance(model_or_regions, points, labels, box=None, boundary=None)`
- `geometric_hardness(model_or_regions, points, labels, box=None, boundary=None)`
- `critical_points(regions, c) -> CriticalPoints`, `plot_skeleton(regions, c, ax=None)`
- `plot_regions(regions, boundary, points=None, labels=None, marked=None, ax=None)`
- `region_counts_per_layer(model, box)`, `default_box(points, margin=0.1)`
- helpers: `network_layers(model)` (the float64 affine layers), `forward(layers, points)`,
  `region_edges(regions)` (the skeleton's edges), `polygon_areas(vertices, counts)`
- ground truth independent of any network, for the 2-D synthetic sets (``BAYES_DATASETS``;
  see the section "Bayes-optimal boundary of the generators"):
  `bayes_boundary_distance(name, points, normalised=False)`,
  `bayes_geometric_hardness(name, points, labels, normalised=False)`, `bayes_predict`,
  `bayes_boundary`, `bayes_log_joint`, `level_set_segments`; `raw_synthetic(name)` and
  `synthetic_frame(name)` give the generators' raw coordinates back

Accepted models: a `torch.nn.Sequential` of `nn.Linear` and `nn.ReLU` (nested
Sequentials, `nn.Flatten` and `nn.Identity` are skipped, consecutive Linear layers are
composed), or the suite's `bench.models.mlp` (`BlockNet`) with ReLU activations; the
first Linear takes 2 inputs and the last module is the Linear producing the logits.

Algorithm and cost
------------------
Polygons are held as padded arrays (R, K, 2) of counter-clockwise vertices plus a
vertex count per polygon. One neuron is processed against all regions at once:
its values at every vertex, s = a_r . v + c_r, classify vertices as positive, negative
or on the line; a Sutherland-Hodgman pass keeps each polygon's vertices of one sign and
inserts the edge crossings v_i + s_i / (s_i - s_j) (v_j - v_i), all in numpy without a
Python loop over regions or vertices. The two pieces of a split region share their
crossing points bit for bit (the negative side is clipped with -s, and negation is
exact). After a layer's neurons, the ReLU pattern composes the affine maps:
A_r <- diag(pattern_r) (W A_r), c_r <- diag(pattern_r) (W c_r + b); while a layer is
cut, each piece only remembers the region it came from, so the maps are gathered once
per layer, not copied at every split.

Time is about proportional to (regions x neurons). At PyTorch's default initialisation
on the box [-3, 3]^2, a [2, 64, 64, 3] network has ~6,000 regions and extracts in ~0.15 s
of CPU time, a [2, 128, 128, 128, 3] one ~49,000 regions in ~3 s
(tests/benchmarks/test_geometry_speed.py). The same cutting loop written with shapely 2.2
(vectorised GEOS intersections with half-plane polygons) was about 3x slower (0.44 s
for the [2, 64, 64, 3] network), so shapely is not used.

Tolerances
----------
All arithmetic is float64 (weights are cast). A vertex within ``EDGE_TOL * diag`` of
a line (diag = the box diagonal) counts as lying on it, so near-coincident lines do not
create near-duplicate vertices. A split whose smaller piece has area below
``SLIVER_TOL * box area`` is skipped: that sliver stays in its parent region, which
keeps the regions an exact cover of the box, at the price of an affine map off by at
most (gradient x sliver width) on the sliver. The same area threshold drops empty
class cells.
"""
from __future__ import annotations

import functools
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
    from .models import BlockNet

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


# ---------------------------------------------------------------------- distances


def _boundary_of(source, points: np.ndarray, box) -> Boundary:
    if isinstance(source, Boundary):
        return source
    if isinstance(source, Regions):
        return decision_boundary(source)
    return decision_boundary(source, check_box(box) if box is not None else default_box(points))


def boundary_distance(source, points, box=None) -> np.ndarray:
    """Each point's exact Euclidean distance to the nearest decision-boundary point
    inside the box: min over segments [p0, p1] of |x - (p0 + t (p1 - p0))| with
    t = clip(((x - p0) . (p1 - p0)) / |p1 - p0|^2, 0, 1). ``np.inf`` for every point when
    the box holds no boundary.

    ``source`` is a model (extracted over ``box``; ``box=None`` uses `default_box` of the
    points), a `Regions` or a `Boundary`; pass one of the last two to reuse an extraction.
    Points are processed in chunks so that memory stays bounded.
    """
    p = _as_points(points)
    return _nearest_on_segments(p, _boundary_of(source, p, box).segments)[0]


def nearest_boundary_points(source, points, box=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each point: its distance to the boundary (as `boundary_distance`), the nearest
    boundary point (N, 2) and the index (N,) of the `Boundary` segment holding it (NaN and
    -1 when the box holds no boundary). ``source`` as in `boundary_distance`."""
    p = _as_points(points)
    return _nearest_on_segments(p, _boundary_of(source, p, box).segments)


def _nearest_on_segments(points: np.ndarray, segments: np.ndarray):
    """Distances (N,), nearest points (N, 2) and segment indices (N,) over segments (S, 2, 2),
    in chunks of points so that no more than ``_DISTANCE_CHUNK`` pairs are held at once."""
    distance, nearest = np.full(len(points), np.inf), np.full((len(points), 2), np.nan)
    which = np.full(len(points), -1)
    if len(segments) == 0 or len(points) == 0:
        return distance, nearest, which
    start, d = segments[:, 0], segments[:, 1] - segments[:, 0]
    dd = np.maximum((d * d).sum(axis=1), np.finfo(float).tiny)
    step = max(1, _DISTANCE_CHUNK // len(segments))
    for i in range(0, len(points), step):
        rel = points[i:i + step, None, :] - start  # (n, S, 2)
        t = np.clip((rel[..., 0] * d[:, 0] + rel[..., 1] * d[:, 1]) / dd, 0.0, 1.0)
        gap = rel - t[..., None] * d
        squared = (gap * gap).sum(axis=2)
        best = squared.argmin(axis=1)
        rows = np.arange(len(best))
        distance[i:i + step] = np.sqrt(squared[rows, best])
        nearest[i:i + step] = start[best] + t[rows, best, None] * d[best]
        which[i:i + step] = best
    return distance, nearest, which


def signed_boundary_distance(model_or_regions, points, labels, box=None,
                             boundary: Boundary | None = None) -> np.ndarray:
    """The boundary distance signed by correctness: +d where the network predicts the
    label, -d where it does not. ``boundary`` reuses an extraction; otherwise the model's
    regions over ``box`` (default: `default_box` of the points) are extracted."""
    p = _as_points(points)
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    if labels.shape != (len(p),):
        raise ValueError(f"got {len(p)} points but labels of shape {labels.shape}")
    given = model_or_regions
    layers = given.layers if isinstance(given, Regions) else network_layers(given)
    if boundary is None:
        regions = given if isinstance(given, Regions) else _extract(layers, check_box(box) if box is not None
                                                                    else default_box(p))
        boundary = decision_boundary(regions)
    correct = forward(layers, p).argmax(axis=1) == labels  # float64 logits; a tie goes to the lower index
    distance = _nearest_on_segments(p, boundary.segments)[0]
    return np.where(correct, distance, -distance)


def geometric_hardness(model_or_regions, points, labels, box=None, boundary: Boundary | None = None) -> np.ndarray:
    """Ground-truth hardness = - signed boundary distance (higher = harder): misclassified
    points far from the boundary are hardest, correctly classified points far from it
    easiest. With a `Boundary` from `decision_boundary(regions)`, pass ``regions`` and
    ``boundary=`` to score many point sets against one extraction."""
    return -signed_boundary_distance(model_or_regions, points, labels, box, boundary)


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


# ------------------------------------------------------------------------ plots


def _axes(ax, size=(5.5, 5)):
    """The given axes and their figure, or a new figure (Agg backend, as the tracks use)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def plot_skeleton(regions: Regions, c: int, ax=None):
    """Class c's skeleton: every region edge coloured by z_c (the mean of its end values),
    local maxima (red triangles up) and minima (blue triangles down) marked. Returns the figure."""
    from matplotlib.collections import LineCollection

    fig, ax = _axes(ax)
    segments, region = region_edges(regions)
    values = (np.einsum("ejd,ed->ej", segments, regions.W[region, c]) + regions.b[region, c][:, None]).mean(axis=1)
    lines = LineCollection(segments, array=values, cmap="viridis", linewidths=0.8, label="skeleton")
    ax.add_collection(lines)
    fig.colorbar(lines, ax=ax, label=f"logit of class {c}")
    critical = critical_points(regions, c)
    if len(critical.maxima):
        ax.scatter(*critical.maxima.T, marker="^", c="tab:red", s=30, zorder=3, label="local maxima")
    if len(critical.minima):
        ax.scatter(*critical.minima.T, marker="v", c="tab:blue", s=30, zorder=3, label="local minima")
    _frame(ax, regions.box, f"skeleton of class {c}: {len(regions)} regions")
    return fig


def plot_regions(regions: Regions, boundary: Boundary | None, points=None, labels=None, marked=None, ax=None):
    """The plane coloured by predicted class (exact class cells), region edges in thin
    grey, the decision boundary in black (``None``: extracted from ``regions``), optionally
    the data (coloured by ``labels``) and a ``marked`` subset (boolean mask or indices,
    e.g. a method's hardest 10%) circled in red. Returns the figure (the caller saves and
    closes it); the boundary is the LineCollection labelled "decision boundary"."""
    from matplotlib.collections import LineCollection, PolyCollection

    fig, ax = _axes(ax)
    boundary = decision_boundary(regions) if boundary is None else boundary
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    cells = class_cells(regions)
    colours = _class_colours(max(regions.num_classes, 0 if labels is None else 1 + int(labels.max(initial=0))))
    ax.add_collection(PolyCollection([cells.polygon(m) for m in range(len(cells))],
                                     facecolors=colours[cells.label], alpha=0.25, edgecolors="none"))
    ax.add_collection(LineCollection(region_edges(regions)[0], colors="0.6", linewidths=0.3, label="region edges"))
    ax.add_collection(LineCollection(boundary.segments, colors="black", linewidths=1.5, label="decision boundary"))
    if points is not None:
        p = _as_points(points)
        ax.scatter(p[:, 0], p[:, 1], c="0.2" if labels is None else colours[labels], s=8, linewidths=0, zorder=3)
        if marked is not None:
            chosen = p[np.asarray(marked)]  # a boolean mask or indices
            ax.scatter(chosen[:, 0], chosen[:, 1], s=60, facecolors="none", edgecolors="red", linewidths=1.0,
                       zorder=4, label="marked")
    _frame(ax, regions.box, f"{len(regions)} regions, boundary length {boundary.length:.3g}")
    return fig


def _class_colours(count: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N) for i in range(max(count, 1))])


def _frame(ax, box: Box, title: str) -> None:
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)


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

    from . import data

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
    from .data import _stratified_split

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
