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

from .regions import Boundary, Cells, CriticalPoints, Regions, check_box, class_cells, critical_points, decision_boundary, default_box, forward, linear_regions, network_layers, polygon_areas, region_counts_per_layer, region_edges  # noqa: F401
from .distances import boundary_distance, geometric_hardness, nearest_boundary_points, signed_boundary_distance  # noqa: F401
from .plots import plot_regions, plot_skeleton  # noqa: F401
from .bayes import BAYES_BOX_MARGIN, BAYES_DATASETS, BAYES_GRID, BAYES_SPIRAL_NODES, bayes_boundary, bayes_boundary_distance, bayes_geometric_hardness, bayes_log_joint, bayes_predict, level_set_segments, raw_synthetic, synthetic_frame  # noqa: F401

from .regions import Box  # noqa: F401
