"""What every track's ``report`` returns, plus helpers shared by the track reports."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata


@dataclass
class Report:
    """A track's leaderboard body, and each method's rank on it (1 = best) for the overview."""
    markdown: str
    ranks: dict[str, float] = field(default_factory=dict)
    plots: dict[str, object] = field(default_factory=dict)  # file name -> matplotlib figure


def group(records, *keys) -> dict[tuple, list[dict]]:
    """Records grouped by the given top-level or config keys, e.g. ("method",) or ("config.rate",)."""
    groups = defaultdict(list)
    for record in records:
        groups[tuple(_get(record, k) for k in keys)].append(record)
    return dict(groups)


def _get(record: dict, key: str):
    value = record
    for part in key.split("."):
        value = value[part]
    return value if not isinstance(value, list) else tuple(value)


def ranks_by(values: dict[str, float], higher_is_better: bool = True) -> dict[str, float]:
    """Average ranks (1 = best, ties share the mean rank)."""
    names = list(values)
    array = np.array([values[n] for n in names], dtype=float)
    ranked = rankdata(-array if higher_is_better else array, method="average")
    return dict(zip(names, ranked.tolist()))


def method_grid(methods: list[str], draw, title: str, xlabel: str, ylabel: str, panel_width: float = 3.3):
    """A figure with one small panel per method, each drawn by ``draw(ax, method)``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_width * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, method in zip(axes.flat, methods):
        draw(ax, method)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel(xlabel)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    axes[0, 0].set_ylabel(ylabel)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
