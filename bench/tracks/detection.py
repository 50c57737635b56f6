"""Track D: detection of planted hardness (PROTOCOL.md, "Track D").

For each seed s, hardness type t and rate p: plant t at rate p in a random subset
M of the train split (seeded by s), run the estimation with seed s, and score
each method's oriented scores against M: AUPRC (M = positive), AUROC,
precision@|M|, beside the random baseline AUPRC = p.
"""
from __future__ import annotations

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from ..metrics import detection_metrics, format_ci, friedman_nemenyi, mean_ci
from .base import Report, group, ranks_by

NAME = "detection"
DEFAULTS = {"types": ["label-uniform"], "rates": [0.1]}


def configs(engine) -> list[dict]:
    options = {**DEFAULTS, **engine.options.get(NAME, {})}
    return [{"type": t, "rate": p} for t in options["types"] for p in options["rates"]]


def run(engine) -> None:
    cells = [(config, seed) for config in configs(engine) for seed in engine.seeds]
    for config, seed in tqdm(cells, desc="detection", disable=engine.quiet):
        todo = [m.name for m in engine.methods if not engine.record_path(NAME, config, m.name, seed).exists()]
        if not todo:
            continue
        pool = engine.pool("train", (config["type"], config["rate"]), seed)
        scores = engine.scores(pool, seed)
        for name in todo:
            if scores[name].status == "ok":
                engine.write_record(NAME, config, name, seed, detection_metrics(scores[name].scores, pool.planted),
                                    cost=scores[name].cost)


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
        sections.append(
            f"### {kind}, rate {rate}\n\nRandom AUPRC baseline: {baseline:.3f}. "
            "Means ± 95% CI over seeds; planted samples are the positives; cost is the method's scoring "
            "plus its share of the training it needed.\n\n"
            + tabulate(rows, headers=["method", "AUPRC", "AUROC", "precision@M", "rank", "seeds", "cost (s)"],
                       tablefmt="github"))
    overall, mean_ranks = _overall(records)
    return Report("\n\n".join([*sections, overall]), mean_ranks)


def _overall(records: list[dict]) -> tuple[str, dict[str, float]]:
    """Friedman test and Nemenyi critical difference over all (type, rate, seed) blocks,
    on AUPRC, for the methods present in every block."""
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
    return text, mean_ranks
