"""Track R's comparisons: paired t-tests against α = 0 and against permuted sizes, Holm-corrected per comparison (see ``bench.tracks.resampling``)."""
from __future__ import annotations

import math
from typing import NamedTuple
import numpy as np

from scipy.stats import ttest_rel

from ...metrics import holm
from .settings import setting
from .study import METRICS


# ---- comparison -------------------------------------------------------------------------------------------------

class TableKey(NamedTuple):
    """One row of the comparison table: a method under one configuration."""
    method: str
    prune: float
    alpha: float
    filler: str
    assignment: str


def _paired(runs: dict, other: dict, prefix: str) -> dict:
    """``p_<prefix><metric>`` (paired t-test over the seeds both have; NaN with fewer than two
    seeds or constant differences) and ``delta_<prefix><metric>`` (differences per seed)."""
    seeds = sorted(set(runs) & set(other))
    out = {}
    for k in METRICS:
        a = np.array([runs[s].get(k, math.nan) for s in seeds], dtype=float)
        b = np.array([other[s].get(k, math.nan) for s in seeds], dtype=float)
        d = a - b
        ok = len(seeds) > 1 and np.isfinite(d).all() and np.ptp(d) > 0
        out[f"p_{prefix}{k}"] = float(ttest_rel(a, b).pvalue) if ok else math.nan
        out[f"delta_{prefix}{k}"] = d.tolist()
    return out


def compare(records: list[dict]) -> dict:
    """Per (method, prune, alpha, filler, assignment): each metric's values over seeds; for α > 0
    the paired t-test against α = 0 of the same method and pruning (``p_<metric>``,
    ``delta_<metric>``), and for hardness-based sizes against ``permuted`` ones where run
    (``p_perm_<metric>``, ``delta_perm_<metric>``)."""
    by: dict[tuple, dict] = {}
    for r in records:
        by.setdefault(TableKey(r["method"], *setting(r["config"])), {})[r["seed"]] = r["metrics"]
    out = {}
    for key, runs in by.items():
        method, prune, alpha, filler, assignment = key
        seeds = sorted(runs)
        entry = {"seeds": seeds, **{k: [runs[s].get(k, math.nan) for s in seeds] for k in METRICS}}
        if alpha:
            entry.update(_paired(runs, by.get((method, prune, 0.0, "none", "hardness"), {}), ""))
            permuted = by.get((method, prune, alpha, filler, "permuted"))
            if assignment == "hardness" and permuted:
                entry.update(_paired(runs, permuted, "perm_"))
        out[key] = entry
    _holm_correct(out)
    for key, entry in out.items():
        entry["degenerate"] = any(_degenerate(r) for r in records if (r["method"], *setting(r["config"])) == key)
    return out


#: a cell whose smallest class is below this share of its balanced size is degenerate: reported, marked,
#: and left out of every summary (a class clipped to a handful of samples says nothing about resampling)
DEGENERATE_SHARE = 0.01


def _degenerate(record: dict) -> bool:
    targets = np.asarray(record.get("targets", []), dtype=float)
    return bool(len(targets)) and targets.min() < DEGENERATE_SHARE * targets.sum() / len(targets)


def _holm_correct(table: dict) -> None:
    """Every ``p_<name>`` of the table Holm-corrected within its family (the same metric and the
    same comparison, over every configuration and method); the raw values kept as ``praw_<name>``."""
    names = {k for entry in table.values() for k in entry if k.startswith("p_")}
    for name in names:
        keys = [key for key, entry in table.items() if name in entry]
        raw = [table[key][name] for key in keys]
        for key, value, adjusted in zip(keys, raw, holm(raw)):
            table[key][f"praw_{name[2:]}"] = value
            table[key][name] = float(adjusted)


def relative_change(table: dict, key: tuple, metric: str) -> float:
    """100 · mean paired change of ``metric`` against α = 0 / mean of α = 0 (NaN where undefined)."""
    key = TableKey(*key)
    base = table.get((key.method, key.prune, 0.0, "none", "hardness"))
    deltas = table.get(key, {}).get(f"delta_{metric}", [])
    if not base or not deltas:
        return math.nan
    ref = float(np.nanmean(base[metric]))
    return 100 * float(np.mean(deltas)) / ref if ref else math.nan


def _reduction(table: dict) -> tuple[dict, float | None]:
    """Each method's relative recall-gap reduction (%) under hardness-based sizes without pruning,
    at the smallest α > 0, mean over fillers; and that α."""
    alphas = sorted({k.alpha for k in table if k.alpha > 0 and k.prune == 0 and k.assignment == "hardness"})
    if not alphas:
        return {}, None
    per: dict[str, list] = {}
    for key in table:
        if key.prune == 0 and key.alpha == alphas[0] and key.assignment == "hardness":
            per.setdefault(key.method, []).append(-relative_change(table, key, "recall_gap"))
    return {m: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for m, v in per.items()}, alphas[0]
