"""Each point's exact distance to a decision boundary, and the geometric hardness it gives (see ``bench.relu_geometry``)."""
from __future__ import annotations

import numpy as np
import torch

from .regions import _DISTANCE_CHUNK, Boundary, Regions, _as_points, _extract, check_box, decision_boundary, default_box, forward, network_layers

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
