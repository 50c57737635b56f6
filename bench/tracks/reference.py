"""Track Ref: agreement with an independent reference hardness (PROTOCOL.md, "Track Ref").

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

import logging

import numpy as np
import torch
from tabulate import tabulate

from ..metrics import agreement_metrics, format_ci, mean_ci
from .base import Report, group, ranks_by, track_options

log = logging.getLogger("bench")

NAME = "reference"
DEFAULTS = {"q": 0.1}
PROFILES: dict = {}
_TOLD: set = set()


def options(engine) -> dict:
    return track_options(engine, NAME, DEFAULTS, PROFILES)


def run(engine) -> None:
    hardness = getattr(engine.dataset, "hardness_train", None)
    if hardness is None:
        if engine.dataset.name not in _TOLD:
            _TOLD.add(engine.dataset.name)
            log.warning("reference: dataset %s carries no reference hardness (npz 'hardness' or "
                        "<data-root>/cscores/<name>-cscores-orig-order.npz); nothing written", engine.dataset.name)
        return
    q = float(options(engine)["q"])
    pool = engine.pool("train")
    config = {"pool": pool.key, "q": q}
    todo = {seed: [m.name for m in engine.methods if not _done(engine, config, m.name, seed)] for seed in engine.seeds}
    if not any(todo.values()):
        return
    reference = hardness[torch.as_tensor(pool.rows)].numpy()
    for seed, names in todo.items():
        if not names:
            continue
        scores = engine.scores(pool, seed)
        for name in names:
            if scores[name].status == "ok":
                engine.write_record(NAME, config, name, seed, agreement_metrics(scores[name].scores, reference, q),
                                    cost=scores[name].cost)


def _done(engine, config: dict, method: str, seed: int) -> bool:
    if hasattr(engine, "has_record"):
        return engine.has_record(NAME, config, method, seed)
    return engine.record_path(NAME, config, method, seed).exists()


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
    return Report("\n\n".join(sections), ranks)
