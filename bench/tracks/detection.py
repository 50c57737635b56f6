"""Track D: detection of planted hardness (docs/protocol.md, "Track D").

For each seed s, hardness type t and rate p: plant t at rate p in a random subset
M of the train split (seeded by s; ``bench.inject``), run the estimation with seed
s, and score each method's oriented scores against M: AUPRC (M = positive), AUROC,
precision@|M|, beside the random baseline AUPRC = |M| / N.

Types: ``label-uniform``, ``label-pair``, ``near-ood``, ``far-ood``, ``atypical``
(settings ``types`` and ``rates``; by default every type at p = 0.1; the ``full``
profile every type at every rate in {0.05, 0.1, 0.2}). A dataset that carries clean
labels (``Dataset.y_clean_train``: an npz with ``y_clean``, CIFAR-10N / CIFAR-100N) is
also scored as type ``real``, automatically: the pool is the train split with its given
labels, nothing planted, and the positives are the samples whose given label differs from
the clean one; its ``rate`` is the dataset's observed noise rate.

``label-pair`` moves labels along the most-confused class pairs of a clean model (the
out-of-sample confusion matrix of the K-fold models on the clean train split,
``Estimator.clean_confusion``); ``far-ood`` samples come from the engine's planting
sources (``bench.inject.default_sources`` of the dataset and ``--data-root``).

Report: a table per (type, rate), a method x type table and heatmap of mean AUPRC, and
the overall ranking over (type, rate, seed) blocks: Friedman test, Nemenyi critical
difference and a critical-difference diagram (scikit-posthocs). Scores are never flipped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch
from tabulate import tabulate
from tqdm import tqdm

from ..context import Pool
from ..inject import PLANTERS
from ..metrics import detection_metrics, format_ci, friedman_nemenyi, mean_ci
from .base import Report, TrackSettings, Unit, group, per_method_units, ranks_by

log = logging.getLogger("bench")

NAME = "detection"
TYPES = list(PLANTERS)
REAL = "real"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "detection"
    ENUMERATED = ("types", "rates")
    types: tuple[str, ...] = tuple(TYPES)
    rates: tuple[float, ...] = (0.1,)

    def validate(self) -> None:
        self.check_subset("types", [*PLANTERS, REAL])
        self.check_range("rates", 0.0, 1.0)


def configs(engine, settings: Settings) -> list[dict]:
    out = [{"type": t, "rate": float(p)} for t in settings.types if t != REAL for p in settings.rates]
    clean = getattr(engine.dataset, "y_clean_train", None)
    if clean is not None:
        out.append({"type": REAL, "rate": round(float((engine.dataset.y_train != clean).float().mean()), 4)})
    elif REAL in settings.types:
        engine.warn_once(f"detection-real-{engine.dataset.key}",
                         "detection type 'real' needs clean labels (npz 'y_clean', cifar10n/cifar100n); "
                         f"dataset {engine.dataset.name} has none")
    return out


def plan(engine, settings: Settings) -> list[Unit]:
    return per_method_units(engine, configs(engine, settings), engine.seeds)


def detection_pool(engine, config: dict, seed: int) -> Pool:
    """The pool of one (type, rate, seed) cell, with its positives in ``pool.planted``."""
    if config["type"] == REAL:
        pool = engine.pool("train")
        clean = engine.dataset.y_clean_train[torch.as_tensor(pool.rows)]
        return replace(pool, planted=(pool.y.cpu() != clean).numpy())
    return engine.pool("train", (config["type"], config["rate"]), seed)


def run(engine, settings: Settings, todo: list[Unit]) -> None:
    cells = group([{"config": u.config, "seed": u.seed, "method": u.method} for u in todo], "config.type",
                  "config.rate", "seed")
    pools = {key: detection_pool(engine, {"type": key[0], "rate": key[1]}, key[2]) for key in cells}
    engine.prepare([(pool, key[2]) for key, pool in pools.items()])
    for key, pool in tqdm(pools.items(), desc="detection", disable=engine.quiet):
        config, seed = cells[key][0]["config"], key[2]
        if not pool.planted.any() or pool.planted.all():
            log.warning("detection %s: the pool has %d positives of %d; nothing to score",
                        config, int(pool.planted.sum()), len(pool))
            continue
        scores = engine.scores(pool, seed)
        for unit in cells[key]:
            name = unit["method"]
            if scores[name].status == "ok":
                engine.write_record(NAME, config, name, seed, detection_metrics(scores[name].scores, pool.planted),
                                    cost=scores[name].cost, pool=pool.key)


# ---- report ------------------------------------------------------------------------------
def report(records: list[dict]) -> Report:
    sections = []
    for (kind, rate), cell in sorted(group(records, "config.type", "config.rate").items()):
        by_method = group(cell, "method")
        auprc = {m: mean_ci([r["metrics"]["auprc"] for r in rs])[0] for (m,), rs in by_method.items()}
        ranks = ranks_by(auprc)
        rows = []
        for (method,), rs in sorted(by_method.items(), key=lambda item: -auprc[item[0][0]]):
            metric = lambda name: [r["metrics"][name] for r in rs]  # noqa: E731
            cost = [r["cost"]["scoring_s"] + r["cost"]["shared_s"] for r in rs]
            rows.append([method, format_ci(metric("auprc")), format_ci(metric("auroc")),
                         format_ci(metric("precision_at_m")), f"{ranks[method]:.1f}", len(rs), f"{np.mean(cost):.2f}"])
        baseline = np.mean([r["metrics"]["baseline"] for r in cell])
        what = ("real label noise (given label ≠ clean label), observed rate" if kind == REAL else "rate")
        sections.append(
            f"### {kind}, {what} {rate}\n\nRandom AUPRC baseline: {baseline:.3f}. "
            "Means ± 95% CI over seeds; planted samples are the positives; cost is the method's scoring "
            "plus its share of the training it needed.\n\n"
            + tabulate(rows, headers=["method", "AUPRC", "AUROC", "precision@M", "rank", "seeds", "cost (s)"],
                       tablefmt="github"))
    by_type, plots = _by_type(records)
    overall, mean_ranks, cd_plot = _overall(records)
    plots.update(cd_plot)
    return Report("\n\n".join([*sections, by_type, overall]), mean_ranks, plots)


def _by_type(records: list[dict]) -> tuple[str, dict]:
    """Mean AUPRC per method and type (over rates and seeds), as a table and a heatmap."""
    types = sorted({r["config"]["type"] for r in records})
    methods = sorted({r["method"] for r in records})
    cells = group(records, "method", "config.type")
    matrix = np.array([[np.mean([r["metrics"]["auprc"] for r in cells[(m, t)]]) if (m, t) in cells else np.nan
                        for t in types] for m in methods])
    baselines = [np.mean([r["metrics"]["baseline"] for r in records if r["config"]["type"] == t]) for t in types]
    order = np.argsort(-np.nanmean(matrix, axis=1), kind="stable")
    rows = [[methods[i], *(f"{v:.3f}" if np.isfinite(v) else "–" for v in matrix[i])] for i in order]
    rows.append(["(random baseline)", *(f"{b:.3f}" for b in baselines)])
    text = ("### AUPRC by hardness type\n\nMean AUPRC over rates and seeds; the last row is the mean random "
            "baseline (the positives' share).\n\n" + tabulate(rows, headers=["method", *types], tablefmt="github"))
    return text, {"detection-auprc-by-type.png": _heatmap(matrix[order], [methods[i] for i in order], types)}


def _heatmap(matrix: np.ndarray, methods: list[str], types: list[str]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.1 * len(types) + 2.5, 0.32 * len(methods) + 1.4))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(types)), types, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(methods)), methods, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, label="mean AUPRC")
    ax.set_title("Detection: mean AUPRC by hardness type", fontsize=10)
    fig.tight_layout()
    return fig


def _overall(records: list[dict]) -> tuple[str, dict[str, float], dict]:
    """Friedman test and Nemenyi critical difference over all (type, rate, seed) blocks,
    on AUPRC, for the methods present in every block; and the critical-difference diagram."""
    blocks = group(records, "config.type", "config.rate", "seed")
    methods = sorted(set.intersection(*({r["method"] for r in rs} for rs in blocks.values())))
    matrix = np.array([[next(r["metrics"]["auprc"] for r in rs if r["method"] == m) for m in methods]
                       for rs in blocks.values()])
    stats = friedman_nemenyi(matrix)
    mean_ranks = dict(zip(methods, stats["mean_ranks"].tolist()))
    rows = [[m, f"{mean_ranks[m]:.2f}"] for m in sorted(methods, key=mean_ranks.get)]
    test = (f"Friedman χ² = {stats['statistic']:.2f}, p = {stats['p']:.2g}" if np.isfinite(stats["p"])
            else "Friedman test needs at least 2 blocks and 3 methods")
    text = (f"### Overall\n\nMean AUPRC rank over {stats['blocks']} blocks (hardness type × rate × seed). "
            f"{test}; Nemenyi critical difference at α = 0.05: {stats['cd']:.2f} "
            "(methods whose mean ranks differ by less are not distinguishable).\n\n"
            + tabulate(rows, headers=["method", "mean rank"], tablefmt="github"))
    plots = {}
    if np.isfinite(stats["p"]):
        figure = _cd_diagram(matrix, methods, mean_ranks, stats["cd"])
        if figure is not None:
            plots["detection-critical-difference.png"] = figure
    return text, mean_ranks, plots


def _cd_diagram(matrix: np.ndarray, methods: list[str], mean_ranks: dict[str, float], cd: float):
    """Critical-difference diagram (scikit-posthocs): mean ranks on the axis, methods that the
    Nemenyi post-hoc test (after Friedman) does not separate at α = 0.05 joined by a bar."""
    try:
        import pandas as pd
        import scikit_posthocs as sp
    except ImportError:
        log.warning("scikit-posthocs is not installed; no critical-difference diagram")
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p_values = sp.posthoc_nemenyi_friedman(pd.DataFrame(matrix, columns=methods))
    p_values = p_values.fillna(1.0)
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(methods) + 1.5))
    sp.critical_difference_diagram(pd.Series(mean_ranks), p_values, ax=ax, label_props={"fontsize": 8})
    ax.set_title(f"Detection: mean AUPRC rank over {len(matrix)} blocks (1 = best); Nemenyi CD = {cd:.2f}",
                 fontsize=9)
    fig.tight_layout()
    return fig
