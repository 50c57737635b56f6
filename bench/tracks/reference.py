"""Track Ref: agreement with an independent reference hardness (docs/protocol.md, "Track Ref").

Where the dataset carries a per-sample hardness of its train split measured
independently of the methods (``Dataset.hardness_train``, higher = harder: an npz's
``hardness`` array, or C-scores from ``<data-root>/cscores/<name>-cscores-orig-order.npz``
as -score, since a high C-score means easy), each method's oriented scores (higher =
harder) on the train-split pool are compared with it, per estimation seed:

- ``spearman``, ``kendall``: rank correlations (scipy; Kendall's tau-b), positive = agrees;
- ``auprc``: AUPRC of the method's scores for the reference's hardest ``q`` (default 10%:
  the ceil(q N) highest reference values, ties in a seeded random order); ``baseline`` is
  the positives' share.

The pool is the train pool every track uses (``--subset`` and ``--pool-size`` aware): the
reference follows the same rows (``Pool.rows``). A dataset without a reference gets no
records, and the track says so once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tabulate import tabulate

from ..metrics import agreement_metrics, format_ci, mean_ci
from .base import Metric, Report, TrackSettings, Unit, group, per_method_units, ranks_by, mean_costs, verdict_section

NAME = "reference"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "reference"
    q: float = 0.1

    def validate(self) -> None:
        self.check_range("q", 0.0, 1.0)


def plan(engine, settings: Settings) -> list[Unit]:
    if getattr(engine.dataset, "hardness_train", None) is None:
        engine.warn_once(f"reference-{engine.dataset.key}",
                         f"reference: dataset {engine.dataset.name} carries no reference hardness (npz 'hardness' or "
                         "<data-root>/cscores/<name>-cscores-orig-order.npz); nothing written")
        return []
    return per_method_units(engine, [{"pool": engine.pool("train").key, **settings.shared()}], engine.seeds)


def run(engine, settings: Settings, units: list[Unit]) -> None:
    pool = engine.pool("train")
    reference = engine.dataset.hardness_train[torch.as_tensor(pool.rows)].numpy()
    for seed in sorted({u.seed for u in units}):
        scores = engine.scores(pool, seed)
        for unit in (u for u in units if u.seed == seed):
            result = scores[unit.method]
            if result.status == "ok":
                engine.write_record(NAME, unit.config, unit.method, seed,
                                    agreement_metrics(result.scores, reference, settings.q), cost=result.cost)


#: what the verdict ranks by (docs/protocol.md, "Statistics": why 0.02)
METRIC = Metric("Spearman", higher_is_better=True, delta=0.02)


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, (pool, q), seed, Spearman with the reference)."""
    return {"reference hardness": [(r["method"], (r["config"]["pool"], r["config"]["q"]), r["seed"],
                                    r["metrics"]["spearman"]) for r in records]}


def report(records: list[dict]) -> Report:
    sections, ranks = [], {}
    for (pool, q), cell in sorted(group(records, "config.pool", "config.q").items()):
        by_method = group(cell, "method")
        spearman = {m: mean_ci([r["metrics"]["spearman"] for r in rs])[0] for (m,), rs in by_method.items()}
        cell_ranks = ranks_by(spearman)
        ranks.update(cell_ranks)
        rows = []
        for (method,), rs in sorted(by_method.items(), key=lambda item: -spearman[item[0][0]]):
            metric = lambda name: [r["metrics"][name] for r in rs]  # noqa: E731
            rows.append([method, format_ci(metric("spearman")), format_ci(metric("kendall")),
                         format_ci(metric("auprc")), f"{cell_ranks[method]:.1f}", len(rs)])
        baseline = np.mean([r["metrics"]["baseline"] for r in cell])
        sections.append(
            f"### pool {pool}, hardest {q:.0%} of the reference\n\n"
            "Agreement of each method's scores (higher = harder) with the dataset's reference hardness "
            "(higher = harder; C-scores enter as −score). Means ± 95% CI over estimation seeds; positive "
            f"correlation = agreement. AUPRC: the reference's hardest {q:.0%} are the positives "
            f"(random baseline {baseline:.3f}).\n\n"
            + tabulate(rows, headers=["method", "Spearman", "Kendall τ", f"AUPRC@{q:.0%}", "rank", "seeds"],
                       tablefmt="github"))
    text, summary = verdict_section("reference hardness", verdict_rows(records)["reference hardness"], METRIC,
                                    costs=mean_costs(records))
    return Report("\n\n".join([*sections, text]), ranks, verdicts={"reference hardness": summary} if summary else {})
