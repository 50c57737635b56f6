"""Plots of regions, boundaries, skeletons and marked points (see ``bench.relu_geometry``)."""
from __future__ import annotations

import numpy as np

from .regions import Box, Boundary, Regions, _as_points, class_cells, critical_points, decision_boundary, region_edges

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
