"""What every track's ``report`` returns, plus helpers shared by the track reports."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata

from ..protocol import ProtocolTrainer
from ..recipes import Recipe


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


def trainer_for(engine, pool, evals: dict, recipe: Recipe | None = None,
                desc: str = "protocol models") -> ProtocolTrainer:
    """The protocol trainer of an engine's pool, caching in the store's protocol folder."""
    recipe = recipe or engine.recipe
    cache = engine.store.protocol_dir(engine.dataset.key, pool.key, recipe.key())
    return ProtocolTrainer(recipe, pool.x, pool.y, pool.num_classes, pool.key, evals, cache,
                           batched=engine.options.get("batched", "auto"), quiet=engine.quiet, desc=desc)


def method_scores(engine, pool) -> dict[str, dict]:
    """Each method's scores on the pool, averaged over the estimation seeds:
    ``{"scores": oriented (higher = harder), "natural": own units, "higher_is_harder": bool}``.
    A method that failed on any seed is left out (the engine lists it as failed)."""
    engine.prepare([(pool, seed) for seed in engine.seeds])
    per_seed = [engine.scores(pool, seed) for seed in engine.seeds]
    out = {}
    for method in engine.methods:
        results = [r[method.name] for r in per_seed]
        if all(r.status == "ok" for r in results):
            out[method.name] = {"scores": np.mean([r.scores for r in results], axis=0),
                                "natural": np.mean([r.natural for r in results], axis=0),
                                "higher_is_harder": method.higher_is_harder}
    return out


def protocol_seeds(count: int) -> list[int]:
    """Protocol-model seeds, disjoint from the estimation seeds 0..S-1."""
    return [1000 + r for r in range(count)]


def track_options(engine, name: str, defaults: dict, profiles: dict) -> dict:
    """A track's settings: its defaults, then its profile's, then ``engine.options[name]``."""
    return {**defaults, **profiles.get(engine.options.get("profile"), {}), **engine.options.get(name, {})}
