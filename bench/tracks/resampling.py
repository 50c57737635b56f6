"""Track R: hardness-based resampling at class level (docs/protocol.md, "Track R").

On the train split, a method's class hardness h_c (mean natural-unit score of the
class, averaged over estimation seeds) gives target class sizes S_c
(``bench.resample.class_targets``, total kept); undersampled classes keep their
hardest (or random) samples, oversampled ones are filled by ``duplicate``,
``smote`` or ``holdout``. Fresh protocol models train on the resampled set and are
evaluated per class on the dataset's test split. α = 0 is no resampling: the plain
(or pruned) train split, one set of models shared by every method (protocol cache);
each method's α = 0 record still uses its own hard classes for ``hard_easy``.

A configuration (the record's ``config``) is ``alpha``, ``filler``, ``keep`` and,
where not the default, ``assignment`` and ``prune`` (absent = ``hardness`` and 0):

- ``assignment``: which class gets which size. ``hardness`` is S_c itself; the
  controls ``permuted`` (a seeded random permutation of the sizes) and ``inverse``
  (sizes in reverse hardness order: easy classes grow) keep the total and the
  multiset of sizes, separating the effect of class sizes from that of which
  classes grow (``bench.resample.assign_sizes``).
- ``prune`` (case study 1): the fraction of the train split removed at random,
  class-balanced, before resampling (``bench.resample.prune_balanced``); class
  hardness is then the method's full-pool scores restricted to the kept rows, and
  ``holdout`` fills classes from their pruned real samples, each at most once
  (duplicates only where a class's pruned samples run out; the record's
  ``duplicated`` counts them). α = 0 at a pruning fraction is the pruned subset.

Settings (``--option resampling.KEY=VALUE``): ``alphas``, ``fillers``, ``keep``,
``protocol_seeds``, ``split_seed``, ``epochs``, ``prune`` (fractions; none = no case
study), ``controls`` (assignments run beside ``hardness``; ``none`` for none),
``control_alphas`` / ``control_fillers`` / ``control_methods`` (where controls run;
none = every α > 0 / filler / method). By default the controls run for aum and loss
at α = 1 with the duplicate filler; the ``full`` profile runs every control.

Metrics per class on the test split, recall and precision (a class never predicted
has precision 0): mean, gap (max − min), std (over classes, ddof 0), MAD (mean
absolute deviation from the mean over classes), ``quant_diff`` (mean of the k
best minus the k worst classes; k = 2 for ≤ 10 classes, C // 10 beyond) and
``hard_easy`` (mean over the method's easy classes minus over its hard ones; hard:
S_c at α = 1 above the mean), plus the worst class recall.

The resampled set is drawn once per (method, configuration) with ``split_seed``;
protocol seeds vary the models. Paired t-tests (scipy ``ttest_rel``) over protocol
seeds compare every α > 0 configuration with α = 0 at the same pruning, and
hardness-based sizes with ``permuted`` ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import ttest_rel
from tabulate import tabulate

from ..metrics import format_ci, holm
from ..protocol import Cell
from ..errors import UsageError
from ..resample import (ASSIGNMENTS, FILLERS, Resampled, assign_sizes, class_hardness, class_recall_precision,
                        class_targets, prune_balanced, resample, spread)
from .base import (Report, TrackSettings, Unit, method_grid, method_scores, protocol_recipe, protocol_seeds,
                   ranks_by, trainer_for, verdict_section)

NAME = "resampling"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "resampling"
    ENUMERATED = ("alphas", "fillers", "prune", "controls", "control_alphas", "control_fillers", "control_methods",
                  "protocol_seeds")
    RENAMED = {"seeds": "protocol_seeds"}
    alphas: tuple[float, ...] = (0.0, 1.0, 3.0)
    fillers: tuple[str, ...] = ("duplicate", "smote")
    keep: str = "hardest"
    protocol_seeds: int = 3
    split_seed: int = 0
    epochs: int | None = None  # protocol models' epochs (None: the recipe's protocol_epochs, else its epochs)
    prune: tuple[float, ...] = ()
    controls: tuple[str, ...] = ("permuted", "inverse")
    # a control costs one model per (method, seed): by default two methods at α = 1, duplicate filler
    control_alphas: tuple[float, ...] | None = (1.0,)
    control_fillers: tuple[str, ...] | None = ("duplicate",)
    control_methods: tuple[str, ...] | None = ("aum", "loss")

    def validate(self) -> None:
        self.check_subset("fillers", FILLERS)
        self.check_subset("controls", [a for a in ASSIGNMENTS if a != "hardness"])
        self.check_choice("keep", ["hardest", "random"])
        self.check_range("prune", 0.0, 1.0)
        self.check_range("protocol_seeds", 1, 10_000, inclusive=True)
        if any(a < 0 for a in self.alphas):
            raise UsageError(f"The 'alphas' parameter of resampling must be ≥ 0. Got {min(self.alphas)!r} instead.")
        if "holdout" in self.fillers and not self.prune:
            raise UsageError("filler 'holdout' fills classes from pruned real samples, so it needs the pruning case "
                             "study (e.g. --option resampling.prune=0.5); the whole train split has no unused samples")
RECALL = {"mean": "mean_recall", "gap": "recall_gap", "std": "recall_std", "mad": "recall_mad",
          "quant_diff": "recall_quant_diff", "hard_easy": "hard_easy"}
PRECISION = {"mean": "mean_precision", "gap": "precision_gap", "std": "precision_std", "mad": "precision_mad",
             "quant_diff": "precision_quant_diff", "hard_easy": "precision_hard_easy"}
METRICS = (*RECALL.values(), "worst_recall", *PRECISION.values())
HEADS = {"mean": "mean", "gap": "gap", "std": "std", "mad": "MAD", "quant_diff": "q-diff", "hard_easy": "hard−easy"}
SIGNIFICANT = 0.05


# ---- settings ---------------------------------------------------------------------------------------------------

def options(settings: Settings) -> dict:
    """The settings as the planning code reads them: lists, pruning fractions without 0."""
    out = settings.to_dict()
    out["controls"] = [a for a in out["controls"] if a != "hardness"]
    out["prune"] = [float(p) for p in out["prune"] if p]
    return out


def setting(config: dict) -> tuple[float, float, str, str]:
    """(prune, alpha, filler, assignment) of a record's config, with the defaults for absent keys."""
    return (float(config.get("prune", 0.0)), float(config["alpha"]), config["filler"],
            config.get("assignment", "hardness"))


def configs(opts: dict, method: str | None = None) -> list[dict]:
    """Every configuration to run (for ``method``, where given): per pruning fraction (0 first),
    α = 0 once, and each α > 0 with each filler (``holdout`` only where pruned) under
    ``hardness`` and, where the control options select it, each control assignment."""
    out = []
    chosen = method is None or opts["control_methods"] is None or method in opts["control_methods"]
    controls = opts["controls"] if chosen else []
    for prune in [0.0, *opts["prune"]]:
        pruned = {"prune": prune} if prune else {}
        for alpha in opts["alphas"]:
            if alpha == 0:
                out.append({"alpha": 0.0, "filler": "none", "keep": opts["keep"], **pruned})
                continue
            for filler in opts["fillers"]:
                if filler == "holdout" and not prune:
                    continue
                controlled = ((opts["control_alphas"] is None or alpha in opts["control_alphas"])
                              and (opts["control_fillers"] is None or filler in opts["control_fillers"]))
                for assignment in ["hardness", *(controls if controlled else [])]:
                    out.append({"alpha": float(alpha), "filler": filler, "keep": opts["keep"], **pruned,
                                **({"assignment": assignment} if assignment != "hardness" else {})})
    shared = {"split_seed": opts["split_seed"], "epochs": opts["epochs"]}
    return [{**config, **shared} for config in out]


def plan(engine, settings: Settings) -> list[Unit]:
    opts = options(settings)
    return [Unit(config, m.name, seed) for m in engine.methods for config in configs(opts, m.name)
            for seed in protocol_seeds(settings.protocol_seeds)]


# ---- metrics ----------------------------------------------------------------------------------------------------

def class_metrics(pred: np.ndarray, y: np.ndarray, num_classes: int,
                  hard_classes: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(metrics, recall, precision)``: per-class recall and precision on the test labels ``y`` and
    the metrics of ``METRICS`` over the classes present in ``y``."""
    recall, precision = class_recall_precision(pred, y, num_classes)
    present = np.bincount(y, minlength=num_classes) > 0
    hard, easy = hard_classes & present, ~hard_classes & present
    metrics = {"worst_recall": float(recall[present].min())}
    for names, values in ((RECALL, recall), (PRECISION, precision)):
        stats = spread(values[present])
        stats["hard_easy"] = float(values[easy].mean() - values[hard].mean()) if hard.any() and easy.any() else math.nan
        metrics.update({names[k]: v for k, v in stats.items()})
    return metrics, recall, precision


# ---- run --------------------------------------------------------------------------------------------------------

def training_set(config: dict, s: dict, y: np.ndarray, num_classes: int, split: tuple[np.ndarray, np.ndarray],
         opts: dict, x_flat: np.ndarray | None) -> dict:
    """One method's training set for one configuration, from its scores ``s`` and the pruning
    ``split`` = (kept, pruned) pool rows; plus what the record keeps about it."""
    kept, pruned = split
    _, alpha, filler, assignment = setting(config)
    h = class_hardness(s["natural"][kept], y[kept], num_classes)
    base = class_targets(h, len(kept), 1.0, s["higher_is_harder"])
    if alpha == 0:
        targets = np.bincount(y[kept], minlength=num_classes)
        res = Resampled(kept, None, None, np.zeros(num_classes, dtype=np.int64))
    else:
        targets = assign_sizes(class_targets(h, len(kept), alpha, s["higher_is_harder"]), assignment,
                               opts["split_seed"])
        res = resample(y, s["scores"], targets, filler, opts["split_seed"], config["keep"], x_flat, kept, pruned)
    return {"resampled": res, "targets": targets, "hard_classes": base > base.mean(), "h": h,
            "higher_is_harder": bool(s["higher_is_harder"])}


def run(engine, settings: Settings, units: list[Unit]) -> None:
    opts = options(settings)
    todo = [(u.method, u.config, u.seed) for u in units]
    pool = engine.pool("train")
    scores = method_scores(engine, pool)
    y = pool.y.cpu().numpy()
    n, c = len(y), pool.num_classes
    x_flat = pool.x.reshape(n, -1).cpu().numpy() if any(cf["filler"] == "smote" for _, cf, _ in todo) else None
    splits = {p: prune_balanced(y, p, opts["split_seed"], c) for p in {setting(cf)[0] for _, cf, _ in todo}}
    plans, cells = {}, []
    for name, config, seed in todo:
        if name not in scores:
            continue
        key = (name, tuple(sorted(config.items())))
        if key not in plans:
            plans[key] = training_set(config, scores[name], y, c, splits[setting(config)[0]], opts, x_flat)
        res = plans[key]["resampled"]
        cells.append(Cell(res.rows, seed, res.extra_x, res.extra_y, tag={"key": key, "config": config}))
    recipe = protocol_recipe(engine, settings.epochs)
    evals = {"test": engine.dataset.x_test.to(engine.device)}
    trainer = trainer_for(engine, pool, evals, recipe, desc="resampling models")
    y_test = engine.dataset.y_test.numpy()
    for cell, pred in zip(cells, trainer.predict(cells)):
        p = plans[cell.tag["key"]]
        metrics, recall, precision = class_metrics(pred["test"], y_test, c, p["hard_classes"])
        engine.write_record(NAME, cell.tag["config"], cell.tag["key"][0], cell.seed, metrics, recall=recall,
                            precision=precision, targets=p["targets"], hard_classes=p["hard_classes"],
                            class_hardness=p["h"], higher_is_harder=p["higher_is_harder"],
                            duplicated=p["resampled"].duplicated, train_size=cell.size, pool=pool.key,
                            protocol_recipe=recipe.to_dict())


# ---- comparison -------------------------------------------------------------------------------------------------

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
        by.setdefault((r["method"], *setting(r["config"])), {})[r["seed"]] = r["metrics"]
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
    base = table.get((key[0], key[1], 0.0, "none", "hardness"))
    deltas = table.get(key, {}).get(f"delta_{metric}", [])
    if not base or not deltas:
        return math.nan
    ref = float(np.nanmean(base[metric]))
    return 100 * float(np.mean(deltas)) / ref if ref else math.nan


def _reduction(table: dict) -> tuple[dict, float | None]:
    """Each method's relative recall-gap reduction (%) under hardness-based sizes without pruning,
    at the smallest α > 0, mean over fillers; and that α."""
    alphas = sorted({k[2] for k in table if k[2] > 0 and k[1] == 0 and k[4] == "hardness"})
    if not alphas:
        return {}, None
    per: dict[str, list] = {}
    for key in table:
        if key[1] == 0 and key[2] == alphas[0] and key[4] == "hardness":
            per.setdefault(key[0], []).append(-relative_change(table, key, "recall_gap"))
    return {m: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for m, v in per.items()}, alphas[0]


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
            row.append(f"{ranks[key[0]]:.1f}" if key[0] in ranks else "–")
        rows.append(row + [len(e["seeds"])])
    for stat in [*names, *extra]:
        head = HEADS.get(stat, stat.replace("_recall", ""))
        heads += [head, f"p({head})"]
    heads += (["rank"] if ranks is not None else []) + ["seeds"]
    return tabulate(rows, headers=heads, tablefmt="github")


def _controls_table(table: dict, methods: list[str]) -> str:
    rows = []
    for key in sorted(k for k in table if k[4] == "hardness" and k[2] > 0):
        if key[0] not in methods:
            continue
        controls = {a: table.get((*key[:4], a)) for a in ("permuted", "inverse")}
        if not any(controls.values()):
            continue
        e, base = table[key], table.get((key[0], key[1], 0.0, "none", "hardness"), {})
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
        if key[1] == 0 and key[2] != 0:
            continue
        e, i = table[key], info[key]
        rows.append([*_label(key), i["size"], _ci(e, "mean_recall"), _p(e, "mean_recall"), _ci(e, "recall_gap"),
                     _p(e, "recall_gap"), _ci(e, "precision_gap"), _p(e, "precision_gap"),
                     i["dup"] if key[3] == "holdout" else "–"])
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
    alphas = sorted({k[2] for k in table if k[2] > 0 and k[1] == 0 and k[4] == "hardness"})
    if not alphas:
        return "No α > 0 configuration without pruning has results yet."
    alpha = 1.0 if 1.0 in alphas else alphas[0]
    fillers = sorted({k[3] for k in table if k[1] == 0 and k[2] == alpha and k[4] == "hardness"})
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
    for prune in sorted({k[1] for k in table if k[1] > 0}):
        text.append(_pruning_finding(table, records, methods, prune, alpha))
    return "".join(text)


def _pruning_finding(table: dict, records: list[dict], methods: list[str], prune: float, alpha: float) -> str:
    full, pruned = (0.0, 0.0, "none", "hardness"), (prune, 0.0, "none", "hardness")
    mean = {k: _mean_of(table, methods, k, "mean_recall") for k in (full, pruned)}
    gap = {k: _mean_of(table, methods, k, "recall_gap") for k in (full, pruned)}
    text = (f" Pruning {100 * prune:g}% of the train split (random, class-balanced) moves mean recall from "
            f"{mean[full]:.1f}% to {mean[pruned]:.1f}% and the recall gap from {gap[full]:.1f} to {gap[pruned]:.1f} "
            f"points; resampling the kept set at α = {alpha:g} changes the gap by ")
    fillers = sorted({k[3] for k in table if k[1] == prune and k[2] == alpha and k[4] == "hardness"})
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


def report(records: list[dict]) -> Report:
    table = compare(records)
    reduction, alpha0 = _reduction(table)
    ranks = ranks_by({m: (v if np.isfinite(v) else -np.inf) for m, v in reduction.items()}) if reduction else {}
    methods = sorted({k[0] for k in table}, key=lambda m: (ranks.get(m, math.inf), m))
    order = sorted(table, key=lambda k: (methods.index(k[0]), k[1], k[2], k[3], ASSIGNMENTS.index(k[4])))
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
        "mean over fillers; larger = better). Means ± 95% CI over protocol seeds.",
        f"Protocol models: {_protocol_epochs(records)}. Summaries are medians over the identifiers (`random` left "
        "out: it is the control, shown in the tables) and leave degenerate cells out (a class below "
        f"{100 * DEGENERATE_SHARE:g}% of its balanced size; marked in the tables).",
        "**What we found.** " + findings(table, records, [m for m in methods if m != "random"]),
        *filter(None, [degenerate_sizes(records)]),
        "### Recall\n\n" + _metric_table(table, order, RECALL, ("worst_recall",), ranks),
        "### Precision\n\n" + _metric_table(table, order, PRECISION),
    ]
    controls = _controls_table(table, methods)
    if any(k[4] != "hardness" for k in table):
        sections.append("### Controls: size vs hardness\n\nRecall gap (%) under hardness-based sizes and under the "
                        "same sizes permuted or inverted (same filler); p: paired t-tests over protocol seeds.\n\n"
                        + controls)
    if any(k[1] > 0 for k in table):
        sections.append("### Case study 1: pruning, then resampling\n\nThe train split pruned at random, "
                        "class-balanced; α = 0 is the pruned set itself, and p compares with it. `holdout` refills "
                        "from the class's pruned real samples, each at most once; **holdout duplicates** counts the "
                        "samples it had to duplicate because a class's pruned samples ran out.\n\n"
                        + _pruning_table(table, records, order))
    rows = [(m, (prune, a, filler), seed, -100 * d) for (m, prune, a, filler, assignment), e in table.items()
            if assignment == "hardness" and prune == 0 and a == alpha0 and not e["degenerate"]
            for seed, d in zip(e["seeds"], e.get("delta_recall_gap", []))]
    text, summary = verdict_section("resampling", rows, "recall-gap reduction (points)",
                                    what=f"At α = {alpha0 if alpha0 is None else f'{alpha0:g}'} without pruning, "
                                         "hardness sizes, against α = 0; replicates are protocol seeds on one "
                                         "resample draw. ")
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
        candidates = [k for k in table if k[0] == method and k[1] == 0 and k[2] > 0 and k[4] == "hardness"]
        best = min(candidates, key=lambda k: np.nanmean(table[k]["recall_gap"]), default=None)
        for key, label, style in (((0.0, 0.0, "none", "hardness"), "α=0", "o-"),
                                  (best and best[1:], best and f"best: α={best[2]:g} {best[3]}", "s--")):
            curve = _class_curve(records, method, key) if key else None
            if curve is not None:
                ax.plot(*curve, style, markersize=3, label=label)
        ax.legend(fontsize=6)

    return method_grid(methods, draw, "per-class test recall against class hardness: α = 0 and the best α",
                       "class hardness (right = harder)", "test recall %", panel_width=3.4)
