"""Track R's report: the tables, and the generated sentences that summarise them (see ``bench.tracks.resampling``)."""
from __future__ import annotations

import math
import numpy as np

from tabulate import tabulate

from ...metrics import format_ci
from ...resample import ASSIGNMENTS
from ..base import Metric, Report, method_grid, ranks_by, verdict_section
from .settings import setting
from .study import HEADS, PRECISION, RECALL, SIGNIFICANT
from .tests import DEGENERATE_SHARE, _reduction, compare, relative_change


# ---- report -----------------------------------------------------------------------------------------------------

def _p(entry: dict, name: str) -> str:
    value = entry.get(f"p_{name}", math.nan)
    return "–" if math.isnan(value) else f"{value:.3f}"


def _ci(entry: dict, name: str) -> str:
    return format_ci(entry[name], 1, 100)


def _label(key: tuple) -> list:
    method, prune, alpha, filler, assignment = key
    return [method, f"{100 * prune:g}%" if prune else "–", f"{alpha:g}", filler, assignment if alpha else "–"]


def _metric_table(table: dict, order: list, names: dict, extra: tuple = (), ranks: dict | None = None) -> str:
    rows, heads = [], ["method", "pruned", "α", "filler", "sizes"]
    for key in order:
        e = table[key]
        row = _label(key)
        if e.get("degenerate"):
            row[4] += " (degenerate)"
        for name in [*names.values(), *extra]:
            row += [_ci(e, name), _p(e, name)]
        if ranks is not None:
            row.append(f"{ranks[key.method]:.1f}" if key.method in ranks else "–")
        rows.append(row + [len(e["seeds"])])
    for stat in [*names, *extra]:
        head = HEADS.get(stat, stat.replace("_recall", ""))
        heads += [head, f"p({head})"]
    heads += (["rank"] if ranks is not None else []) + ["seeds"]
    return tabulate(rows, headers=heads, tablefmt="github")


def _controls_table(table: dict, methods: list[str]) -> str:
    rows = []
    for key in sorted(k for k in table if k.assignment == "hardness" and k.alpha > 0):
        if key.method not in methods:
            continue
        controls = {a: table.get((*key[:4], a)) for a in ("permuted", "inverse")}
        if not any(controls.values()):
            continue
        e, base = table[key], table.get((key.method, key.prune, 0.0, "none", "hardness"), {})
        gap = {a: _ci(c, "recall_gap") if c else "–" for a, c in controls.items()}
        p0 = {a: _p(c, "recall_gap") if c else "–" for a, c in controls.items()}
        rows.append([*_label(key)[:4], _ci(base, "recall_gap") if base else "–", _ci(e, "recall_gap"),
                     gap["permuted"], gap["inverse"], _p(e, "recall_gap"), _p(e, "perm_recall_gap"),
                     p0["permuted"], p0["inverse"], _ci(e, "hard_easy"),
                     _ci(controls["permuted"], "hard_easy") if controls["permuted"] else "–"])
    rows.sort(key=lambda r: methods.index(r[0]))
    return tabulate(rows, headers=["method", "pruned", "α", "filler", "gap α=0", "gap hardness", "gap permuted",
                                   "gap inverse", "p(hard. vs α=0)", "p(hard. vs perm.)", "p(perm. vs α=0)",
                                   "p(inv. vs α=0)", "h−e hardness", "h−e permuted"], tablefmt="github")


def _pruning_table(table: dict, records: list[dict], order: list) -> str:
    info: dict[tuple, dict] = {}
    for r in records:
        info.setdefault((r["method"], *setting(r["config"])), {"size": r.get("train_size"),
                                                                "dup": int(np.sum(r.get("duplicated", [0])))})
    rows = []
    for key in order:
        if key.prune == 0 and key.alpha != 0:
            continue
        e, i = table[key], info[key]
        rows.append([*_label(key), i["size"], _ci(e, "mean_recall"), _p(e, "mean_recall"), _ci(e, "recall_gap"),
                     _p(e, "recall_gap"), _ci(e, "precision_gap"), _p(e, "precision_gap"),
                     i["dup"] if key.filler == "holdout" else "–"])
    return tabulate(rows, headers=["method", "pruned", "α", "filler", "sizes", "train size", "mean recall", "p",
                                   "recall gap", "p", "precision gap", "p", "holdout duplicates"], tablefmt="github")


def _change(table: dict, methods: list[str], setting_: tuple, metric: str, prefix: str = "") -> str:
    """How a configuration moves ``metric`` against α = 0, in words: one method's relative change
    and p-value, or the median over methods with the count of significant ones."""
    cells = [table[(m, *setting_)] for m in methods if (m, *setting_) in table]
    degenerate = sum(c["degenerate"] for c in cells)
    pairs = [(relative_change(table, (m, *setting_), metric), table[(m, *setting_)].get(f"p_{metric}", math.nan))
             for m in methods if (m, *setting_) in table and not table[(m, *setting_)]["degenerate"]]
    pairs = [(r, p) for r, p in pairs if np.isfinite(r)]
    left_out = f"; {degenerate} degenerate cell{'s' * (degenerate > 1)} left out" if degenerate else ""
    if not pairs:
        return f"an undefined amount (no α = 0 reference{left_out})"
    rel = np.array([r for r, _ in pairs])
    p = np.array([q for _, q in pairs])
    family = sum(f"p_{metric}" in e for e in table.values())
    if len(pairs) == 1:
        return f"{rel[0]:+.1f}% (p_Holm = {'–' if math.isnan(p[0]) else f'{p[0]:.3f}'} of {family} tests{left_out})"
    return (f"a median {np.median(rel):+.1f}% over {len(rel)} methods (range {rel.min():+.1f}% to "
            f"{rel.max():+.1f}%; p_Holm < {SIGNIFICANT} for {int(np.sum(p < SIGNIFICANT))} of {len(rel)}, Holm over "
            f"the {family} tests of this comparison{left_out})")


def _points(table: dict, methods: list[str], setting_: tuple, metric: str) -> str:
    deltas = [100 * np.mean(table[(m, *setting_)][f"delta_{metric}"]) for m in methods
              if (m, *setting_) in table and table[(m, *setting_)].get(f"delta_{metric}")]
    return "–" if not deltas else f"{np.median(deltas):+.1f} points"


def _mean_of(table: dict, methods: list[str], setting_: tuple, metric: str) -> float:
    values = [np.nanmean(table[(m, *setting_)][metric]) for m in methods if (m, *setting_) in table]
    return 100 * float(np.median(values)) if values else math.nan


def findings(table: dict, records: list[dict], methods: list[str]) -> str:
    """The "what we found" paragraph, every number taken from ``table``."""
    alphas = sorted({k.alpha for k in table if k.alpha > 0 and k.prune == 0 and k.assignment == "hardness"})
    if not alphas:
        return "No α > 0 configuration without pruning has results yet."
    alpha = 1.0 if 1.0 in alphas else alphas[0]
    fillers = sorted({k.filler for k in table if k.prune == 0 and k.alpha == alpha and k.assignment == "hardness"})
    filler = "duplicate" if "duplicate" in fillers else fillers[0]
    head = (0.0, alpha, filler)
    text = [f"Hardness-based resampling at α = {alpha:g} ({filler}) changes the recall gap by "
            f"{_change(table, methods, (*head, 'hardness'), 'recall_gap')}"]
    for control in ("permuted", "inverse"):
        if any((m, *head, control) in table for m in methods):
            text.append(f"; the {control} control by {_change(table, methods, (*head, control), 'recall_gap')}")
    text.append(f". Under hardness-based sizes the precision gap changes by "
                f"{_change(table, methods, (*head, 'hardness'), 'precision_gap')} and mean recall by "
                f"{_points(table, methods, (*head, 'hardness'), 'mean_recall')} (median).")
    paired = [table[(m, *head, "hardness")] for m in methods
              if (m, *head, "hardness") in table and table[(m, *head, "hardness")].get("delta_perm_recall_gap")]
    if paired:
        smaller = sum(np.mean(e["delta_perm_recall_gap"]) < 0 for e in paired)
        significant = sum(np.mean(e["delta_perm_recall_gap"]) < 0 and e["p_perm_recall_gap"] < SIGNIFICANT
                          for e in paired)
        text.append(f" Hardness-based sizes give a smaller recall gap than the same sizes permuted for {smaller} of "
                    f"{len(paired)} methods ({significant} with p < {SIGNIFICANT}).")
    if alphas[-1] > alpha:
        top = (0.0, alphas[-1], filler, "hardness")
        text.append(f" At α = {alphas[-1]:g} ({filler}) mean recall changes by "
                    f"{_points(table, methods, top, 'mean_recall')} and the recall gap by "
                    f"{_change(table, methods, top, 'recall_gap')}.")
    for prune in sorted({k.prune for k in table if k.prune > 0}):
        text.append(_pruning_finding(table, records, methods, prune, alpha))
    return "".join(text)


def _pruning_finding(table: dict, records: list[dict], methods: list[str], prune: float, alpha: float) -> str:
    full, pruned = (0.0, 0.0, "none", "hardness"), (prune, 0.0, "none", "hardness")
    mean = {k: _mean_of(table, methods, k, "mean_recall") for k in (full, pruned)}
    gap = {k: _mean_of(table, methods, k, "recall_gap") for k in (full, pruned)}
    text = (f" Pruning {100 * prune:g}% of the train split (random, class-balanced) moves mean recall from "
            f"{mean[full]:.1f}% to {mean[pruned]:.1f}% and the recall gap from {gap[full]:.1f} to {gap[pruned]:.1f} "
            f"points; resampling the kept set at α = {alpha:g} changes the gap by ")
    fillers = sorted({k.filler for k in table if k.prune == prune and k.alpha == alpha and k.assignment == "hardness"})
    parts = [f"{_change(table, methods, (prune, alpha, f, 'hardness'), 'recall_gap')} with {f}" for f in fillers]
    dup = {(int(np.sum(r.get("duplicated", [0]))), r["config"]["alpha"]) for r in records
           if r["config"].get("prune") == prune and r["config"]["filler"] == "holdout"}
    most, at = max(dup, default=(0, 0.0))
    note = (f"; the holdout filler needed up to {most} duplicates (at α = {at:g}) where a class's pruned samples "
            "ran out" if most else "; the holdout filler never ran out of pruned samples" if dup else "")
    return text + ("; ".join(parts) or "nothing (no α > 0 run)") + note + "."


def degenerate_sizes(records: list[dict], share: float = 0.5) -> str:
    """A warning naming each method whose hardness-based sizes give one class more than ``share``
    of the training set, and why where the cause is PROTOCOL's shift of negative class hardness
    (for "higher = easier" scores, h_c + 1e-4 - min h puts the lowest class at 1e-4, so its
    r_c = 1 / h_c outweighs every other class); "" when there is none."""
    found: dict[str, dict] = {}
    for r in records:
        _, alpha, _, assignment = setting(r["config"])
        targets = np.asarray(r.get("targets", []), dtype=float)
        if alpha and assignment == "hardness" and targets.size and targets.max() > share * targets.sum():
            h = np.asarray(r["class_hardness"], dtype=float)
            entry = found.setdefault(r["method"], {"alphas": set(), "class": int(targets.argmax()), "share": 0.0,
                                                  "shifted": False, "h": math.inf})
            entry["alphas"].add(alpha)
            entry["share"] = max(entry["share"], targets.max() / targets.sum())
            entry["h"] = min(entry["h"], float(h.min()))
            entry["shifted"] |= not r.get("higher_is_harder", True) and h.min() < 0
    parts = []
    for method, e in sorted(found.items()):
        why = (f": its class hardness is negative (down to {e['h']:.3f}), and the shift to positive puts that class at "
               "1e-4, so r_c = 1 / h_c outweighs every other class" if e["shifted"] else "")
        parts.append(f"`{method}` (α = {', '.join(f'{a:g}' for a in sorted(e['alphas']))}) gives class {e['class']} "
                     f"up to {100 * e['share']:.1f}% of the training set{why}")
    return ("**Degenerate sizes.** " + "; ".join(parts) + ". Their recall gaps measure that allocation, not "
            "hardness-based resampling as intended.") if parts else ""


#: what the verdict ranks by (docs/protocol.md, "Statistics": why half a point)
METRIC = Metric("recall-gap reduction (points)", higher_is_better=True, delta=0.5)


def _verdict_rows(table: dict, alpha0) -> list[tuple]:
    return [(m, (prune, a, filler), seed, -100 * d) for (m, prune, a, filler, assignment), e in table.items()
            if assignment == "hardness" and prune == 0 and a == alpha0 and not e["degenerate"]
            for seed, d in zip(e["seeds"], e.get("delta_recall_gap", []))]


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, (prune, α, filler), protocol seed, recall-gap reduction
    against α = 0 in points) at the ranking α without pruning, hardness sizes, degenerate cells out."""
    table = compare(records)
    return {"resampling": _verdict_rows(table, _reduction(table)[1])}


def report(records: list[dict]) -> Report:
    table = compare(records)
    reduction, alpha0 = _reduction(table)
    ranks = ranks_by({m: (v if np.isfinite(v) else -np.inf) for m, v in reduction.items()}) if reduction else {}
    methods = sorted({k.method for k in table}, key=lambda m: (ranks.get(m, math.inf), m))
    order = sorted(table, key=lambda k: (methods.index(k.method), k.prune, k.alpha, k.filler, ASSIGNMENTS.index(k.assignment)))
    keep = sorted({r["config"]["keep"] for r in records})
    sections = [
        "Per-class recall and precision (%) on the test split after resampling the training set by class hardness "
        f"(undersampled classes keep their {'/'.join(keep)} samples). α = 0 is the plain (or pruned) training set, "
        "the same models for every method. **sizes**: `hardness` = S_c from the method's class hardness; controls "
        "with the same total and the same multiset of sizes: `permuted` (a seeded random permutation) and `inverse` "
        "(reverse hardness order). **gap** = max − min over classes, **std** over classes, **MAD** = mean absolute "
        "deviation from the mean over classes, **q-diff** = mean of the top k minus the bottom k classes "
        "(k = 2 for ≤ 10 classes, C // 10 beyond), **worst** class recall, **hard−easy** = mean over the method's "
        "easy classes − over its hard classes (hard: α = 1 target size above the mean). p: paired t-test (scipy "
        "`ttest_rel`) over protocol seeds against α = 0 at the same pruning, Holm-corrected over every configuration "
        "and method of the same comparison. Methods are ranked by the relative "
        f"recall-gap reduction at α = {'–' if alpha0 is None else f'{alpha0:g}'} without pruning (hardness sizes, "
        "mean over fillers; larger = better). Means ± 95% CI over protocol seeds, each with its own pruning split, "
        "resampled set and models.",
        f"Protocol models: {_protocol_epochs(records)}. Summaries are medians over the identifiers (`random` left "
        "out: it is the control, shown in the tables) and leave degenerate cells out (a class below "
        f"{100 * DEGENERATE_SHARE:g}% of its balanced size; marked in the tables).",
        "**What we found.** " + findings(table, records, [m for m in methods if m != "random"]),
        *filter(None, [degenerate_sizes(records)]),
        "### Recall\n\n" + _metric_table(table, order, RECALL, ("worst_recall",), ranks),
        "### Precision\n\n" + _metric_table(table, order, PRECISION),
    ]
    controls = _controls_table(table, methods)
    if any(k.assignment != "hardness" for k in table):
        sections.append("### Controls: size vs hardness\n\nRecall gap (%) under hardness-based sizes and under the "
                        "same sizes permuted or inverted (same filler); p: paired t-tests over protocol seeds.\n\n"
                        + controls)
    if any(k.prune > 0 for k in table):
        sections.append("### Case study 1: pruning, then resampling\n\nThe train split pruned at random, "
                        "class-balanced; α = 0 is the pruned set itself, and p compares with it. `holdout` refills "
                        "from the class's pruned real samples, each at most once; **holdout duplicates** counts the "
                        "samples it had to duplicate because a class's pruned samples ran out.\n\n"
                        + _pruning_table(table, records, order))
    text, summary = verdict_section("resampling", _verdict_rows(table, alpha0), METRIC,
                                    what=f"At α = {alpha0 if alpha0 is None else f'{alpha0:g}'} without pruning, "
                                         "hardness sizes, against α = 0; replicates are protocol seeds, each "
                                         "with its own resample draw. ")
    sections.append(text)
    return Report("\n\n".join(sections), ranks, {"resampling_recall.png": _plot(records, table, methods)},
                  {"resampling": summary} if summary else {})


def _protocol_epochs(records: list[dict]) -> str:
    epochs = sorted({(r.get("protocol_recipe") or r.get("recipe") or {}).get("epochs") for r in records} - {None})
    return f"{', '.join(map(str, epochs)) or 'unknown'} epochs each"


def _class_curve(records: list[dict], method: str, key: tuple) -> tuple[np.ndarray, np.ndarray] | None:
    """(oriented class hardness, mean per-class recall over seeds) of one configuration, sorted by hardness."""
    rs = [r for r in records if r["method"] == method and setting(r["config"]) == key]
    if not rs:
        return None
    h = np.asarray(rs[0]["class_hardness"], dtype=float) * (1 if rs[0].get("higher_is_harder", True) else -1)
    recall = 100 * np.mean([r["recall"] for r in rs], axis=0)
    order = np.argsort(h)
    return h[order], recall[order]


def _plot(records: list[dict], table: dict, methods: list[str]):
    def draw(ax, method):
        candidates = [k for k in table if k.method == method and k.prune == 0 and k.alpha > 0 and k.assignment == "hardness"]
        best = min(candidates, key=lambda k: np.nanmean(table[k]["recall_gap"]), default=None)
        for key, label, style in (((0.0, 0.0, "none", "hardness"), "α=0", "o-"),
                                  (best and best[1:], best and f"best: α={best[2]:g} {best[3]}", "s--")):
            curve = _class_curve(records, method, key) if key else None
            if curve is not None:
                ax.plot(*curve, style, markersize=3, label=label)
        ax.legend(fontsize=6)

    return method_grid(methods, draw, "per-class test recall against class hardness: α = 0 and the best α",
                       "class hardness (right = harder)", "test recall %", panel_width=3.4)
