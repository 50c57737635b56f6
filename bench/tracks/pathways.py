"""Track P: easy and hard generalization pathways (docs/protocol.md, "Track P").

On the pooled pool, a method's hard set H(q) (its top q by scores averaged over the
estimation seeds) and the easy rest are each split into train/test with
``train_ratio`` (0.9), stratified by class inside each, so the hard:easy ratio is
the same in train and test. Pathway E keeps a fraction r of the easy training
samples (all hard ones), pathway H a fraction r of the hard ones (all easy ones);
the kept samples are the first round(r·n) of one seeded permutation, so they are
nested across r, and r = 1 is the same set on both pathways (one shared model).
Fresh protocol models, R seeds; accuracy on the hard, easy and full test sets.

Every protocol seed (``protocol_seeds`` of them) draws its own splits and subsets
(``draw_seed(split_seed, seed)``) as well as its models' initialisation and batch
order: intervals cover the draw as well as the models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tabulate import tabulate

from ..metrics import format_ci, mean_ci, top_k
from ..protocol import Cell
from ..resample import largest_remainder
from .base import (Metric, Report, TrackSettings, Unit, group, method_grid, method_scores, per_method_units,
                   protocol_recipe, protocol_seeds, ranks_by, trainer_for, verdict_section, draw_seed)

NAME = "pathways"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "pathways"
    ENUMERATED = ("ratios", "protocol_seeds")
    RENAMED = {"seeds": "protocol_seeds"}
    q: float = 0.1
    train_ratio: float = 0.9
    ratios: tuple[float, ...] = (0.0, 0.5, 1.0)
    protocol_seeds: int = 3
    split_seed: int = 0
    epochs: int | None = None  # protocol models' epochs (None: the recipe's protocol_epochs, else its epochs)
    rounding: str = "total"

    def validate(self) -> None:
        self.check_range("q", 0.0, 1.0)
        self.check_range("train_ratio", 0.0, 1.0)
        self.check_range("ratios", 0.0, 1.0, inclusive=True)
        self.check_range("protocol_seeds", 1, 10_000, inclusive=True)
        self.check_choice("rounding", ["total", "class"])


def configs(settings: Settings) -> list[dict]:
    return [{"pathway": p, "r": float(r), **settings.shared()} for p in ("E", "H") for r in settings.ratios]


def plan(engine, settings: Settings) -> list[Unit]:
    return per_method_units(engine, configs(settings), protocol_seeds(settings.protocol_seeds))


def stratified_split(indices: np.ndarray, y: np.ndarray, train_ratio: float, rng: np.random.Generator,
                     rounding: str = "total"):
    """Split ``indices`` into (train, test). ``rounding="total"``: round(train_ratio · n) training
    samples in all, shared among classes in proportion (largest remainder), so the sizes do not
    depend on the class make-up and every method's cells train stacked together; ``"class"``:
    round(train_ratio · n_c) per class (the first implementation; same draws otherwise)."""
    classes = np.unique(y[indices])
    counts = np.array([(y[indices] == c).sum() for c in classes])
    if rounding == "class":
        per_class = np.round(train_ratio * counts).astype(np.int64)
    else:
        per_class = largest_remainder(train_ratio * counts, int(round(train_ratio * len(indices))))
    train, test = [], []
    for c, k in zip(classes, per_class):
        members = rng.permutation(indices[y[indices] == c])
        train.append(members[:k])
        test.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def pathway_sets(scores: np.ndarray, y: np.ndarray, q: float, train_ratio: float, ratios, seed: int,
                 rounding: str = "total") -> dict:
    """The subsets of one method: hard/easy train/test and, per (pathway, r), the training rows."""
    n = len(y)
    hard = top_k(scores, math.ceil(q * n), seed)
    easy = np.setdiff1d(np.arange(n), hard)
    rng = np.random.default_rng(seed)
    hard_train, hard_test = stratified_split(hard, y, train_ratio, rng, rounding)
    easy_train, easy_test = stratified_split(easy, y, train_ratio, rng, rounding)
    easy_order, hard_order = rng.permutation(easy_train), rng.permutation(hard_train)
    train = {}
    for r in ratios:
        train[("E", r)] = np.sort(np.concatenate([hard_train, easy_order[:int(round(r * len(easy_order)))]]))
        train[("H", r)] = np.sort(np.concatenate([easy_train, hard_order[:int(round(r * len(hard_order)))]]))
    return {"hard_train": hard_train, "hard_test": hard_test, "easy_train": easy_train, "easy_test": easy_test,
            "train": train}


# docs/protocol.md, Track P: the in-class-imbalance paper's CurvBIM numbers (MNIST pooled 20k subset,
# MLP 784-20-20-10 tanh, full-batch SGD lr 0.1, 500 epochs, stragglers, train_ratio 0.9, 100 networks):
# test accuracy % (hard, easy, full) per (pathway, r). Cited, for checking; never computed here.
REFERENCE = {
    "stragglers": {("E", 0.0): (51.4, 52.3, 52.2), ("E", 0.25): (42.8, 96.0, 91.7), ("E", 1.0): (30.4, 97.6, 92.2),
                   ("H", 0.0): (17.2, 96.7, 91.0), ("H", 0.25): (20.2, 97.0, 91.5), ("H", 1.0): (27.2, 97.5, 92.5)},
    # the confidence identifier (maximum softmax probability averaged over networks), pathway H, hard / easy only
    "msp_ens": {("H", 0.0): (38.4, 95.4, None), ("H", 0.25): (42.2, 95.6, None), ("H", 1.0): (47.0, 95.9, None)},
}


def _is_curvbim(records) -> bool:
    recipe = records[0].get("protocol_recipe") or records[0]["recipe"]
    return (records[0]["dataset"].startswith("mnist") and recipe.get("epochs") == 500
            and recipe.get("model_kwargs", {}).get("hidden") == [20, 20]
            and recipe.get("model_kwargs", {}).get("activation") == "tanh" and recipe.get("batch_size") is None)


def _reference_table(records) -> str:
    """Our mean accuracies beside the paper's, for the cells the paper reports."""
    rows = []
    for method, cells in REFERENCE.items():
        for (pathway, r), ref in cells.items():
            ours = [x for x in records if x["method"] == method and x["config"]["pathway"] == pathway
                    and x["config"]["r"] == r]
            if not ours:
                continue
            mine = [format_ci([x["metrics"][k] for x in ours], 1, 100) for k in ("acc_hard", "acc_easy", "acc_full")]
            rows.append([method, pathway, f"{r:g}", *mine, " / ".join("–" if v is None else f"{v:.1f}" for v in ref),
                         len(ours)])
    if not rows:
        return ""
    return ("Beside the reference (docs/protocol.md, Track P; the paper's confidence identifier, the maximum "
            "softmax probability averaged over networks, is compared with `msp_ens`; reference = mean of 100 "
            "networks), test accuracy %:\n\n"
            + tabulate(rows, headers=["method", "pathway", "r", "hard (ours)", "easy (ours)", "full (ours)",
                                      "reference hard / easy / full", "networks"], tablefmt="github"))


def run(engine, settings: Settings, units: list[Unit]) -> None:
    opts = settings.to_dict()
    seeds = protocol_seeds(settings.protocol_seeds)
    todo = sorted({u.method for u in units})
    pool = engine.pool("pooled")
    scores = method_scores(engine, pool)
    y = pool.y.cpu().numpy()
    sets = {(name, seed): pathway_sets(scores[name]["scores"], y, opts["q"], opts["train_ratio"], opts["ratios"],
                                       draw_seed(opts["split_seed"], seed), opts["rounding"])
            for name in todo if name in scores for seed in seeds}
    cells = [Cell(rows, seed, tag={"method": name, "path": key})
             for (name, seed), s in sets.items() for key, rows in s["train"].items()]
    recipe = protocol_recipe(engine, settings.epochs)
    trainer = trainer_for(engine, pool, {"pool": pool.x}, recipe, desc="pathway models")
    for cell, pred in zip(cells, trainer.predict(cells)):
        s, (pathway, r) = sets[(cell.tag["method"], cell.seed)], cell.tag["path"]
        correct = pred["pool"] == y
        full = np.concatenate([s["hard_test"], s["easy_test"]])
        metrics = {"acc_hard": float(correct[s["hard_test"]].mean()), "acc_easy": float(correct[s["easy_test"]].mean()),
                   "acc_full": float(correct[full].mean())}
        config = {"pathway": pathway, "r": float(r), **settings.shared()}
        engine.write_record(NAME, config, cell.tag["method"], cell.seed, metrics, pool=pool.key,
                            train_size=len(cell.indices), hard_test=len(s["hard_test"]),
                            easy_test=len(s["easy_test"]), protocol_recipe=recipe.to_dict(), rounding=opts["rounding"])


def summary(records: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per method, per protocol seed: hard-easy gap, hard dependence, easy dependence and
    the hard-test gain from removing the easy training samples (all in points)."""
    by = {(r["method"], r["config"]["pathway"], r["config"]["r"], r["seed"]): r["metrics"] for r in records}
    out = {}
    for method in sorted({r["method"] for r in records}):
        seeds = sorted({s for (m, _, _, s) in by if m == method})
        rs = sorted({r for (m, _, r, _) in by if m == method})
        lo, hi = rs[0], rs[-1]
        values = {"gap": [], "hard_dep": [], "easy_dep": [], "easy_removal_gain": []}
        for seed in seeds:
            get = lambda p, r, k: 100 * by[(method, p, r, seed)][k] if (method, p, r, seed) in by else math.nan  # noqa: E731
            values["gap"].append(get("E", hi, "acc_easy") - get("E", hi, "acc_hard"))
            values["hard_dep"].append(get("H", hi, "acc_hard") - get("H", lo, "acc_hard"))
            values["easy_dep"].append(get("E", hi, "acc_easy") - get("E", lo, "acc_easy"))
            values["easy_removal_gain"].append(get("E", lo, "acc_hard") - get("E", hi, "acc_hard"))
        out[method] = values
    return out


#: what the verdict ranks by: the hard-easy gap, larger = the identifier separates hard from easy more sharply
#: (docs/protocol.md, "Statistics": why 2 points)
METRIC = Metric("hard-easy gap (points)", higher_is_better=True, delta=2.0)


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, (q, train_ratio), protocol seed, hard-easy gap in points)."""
    return {"split/pathway effect": [
        (m, (q, ratio), i, gap) for (q, ratio), cell in group(records, "config.q", "config.train_ratio").items()
        for m, values in summary(cell).items() for i, gap in enumerate(values["gap"]) if np.isfinite(gap)]}


def report(records: list[dict]) -> Report:
    sections, plots = [], {}
    for (q, ratio), cell in sorted(group(records, "config.q", "config.train_ratio").items()):
        stats = summary(cell)
        gap = {m: mean_ci(v["gap"])[0] for m, v in stats.items()}
        ranks = ranks_by(gap)
        rows = []
        for method in sorted(stats, key=lambda m: -gap[m]):
            v = stats[method]
            raised = sum(g > 0 for g in v["easy_removal_gain"])
            rows.append([method, format_ci(v["gap"], 1), format_ci(v["hard_dep"], 1), format_ci(v["easy_dep"], 1),
                         format_ci(v["easy_removal_gain"], 1), f"{raised}/{len(v['gap'])}", f"{ranks[method]:.1f}"])
        rs = sorted({r["config"]["r"] for r in cell})
        sections.append(
            f"### hard set q = {q}, train_ratio = {ratio}, r ∈ {{{', '.join(f'{r:g}' for r in rs)}}}\n\n"
            + _test_sizes(cell) +
            "All numbers in accuracy points, means ± 95% CI over protocol seeds (each its own split draw and "
            "models). **gap** = acc_easy − acc_hard at "
            f"r = {rs[-1]:g}; **hard dep.** = acc_hard(r = {rs[-1]:g}) − acc_hard(r = {rs[0]:g}) on pathway H (reduce "
            "hard); **easy dep.** = acc_easy(r = 1) − acc_easy(r = 0) on pathway E (reduce easy); **easy-removal "
            "gain** = acc_hard(E, r = 0) − acc_hard(E, r = 1), positive when removing the easy training samples "
            "raises hard-test accuracy (the paper's finding), with the number of seeds where it does. Methods are "
            "ranked by the hard-easy gap (descending): a larger gap means the method separates hard from easy "
            "samples more sharply.\n\n"
            + tabulate(rows, headers=["method", "gap", "hard dep.", "easy dep.", "easy-removal gain", "raised",
                                      "rank"], tablefmt="github")
            + "\n\n" + _curves_table(cell)
            + ("\n\n" + _reference_table(cell) if _is_curvbim(cell) else ""))
        plots[f"pathways_q{q}.png"] = _plot(cell)
    text, verdict_summary = verdict_section("pathway effect", verdict_rows(records)["split/pathway effect"], METRIC,
                                            what="Replicates are protocol seeds, each with its own split draw and models. ")
    return Report("\n\n".join([*sections, text]), ranks if sections else {}, plots,
                  {"split/pathway effect": verdict_summary} if verdict_summary else {})


#: a hard test set this small moves accuracy in steps of over 3 points: the board says so beside the numbers
MIN_HARD_TEST = 30


def _test_sizes(records) -> str:
    """The hard and easy test sets' sizes, and a warning where the hard one is small."""
    hard = sorted({r.get("hard_test") for r in records} - {None})
    easy = sorted({r.get("easy_test") for r in records} - {None})
    if not hard:
        return ""
    text = (f"Test sets per method: hard {'–'.join(map(str, (hard[0], hard[-1]) if len(hard) > 1 else hard))} "
            f"samples, easy {'–'.join(map(str, (easy[0], easy[-1]) if len(easy) > 1 else easy))}, drawn anew for "
            "every protocol seed. ")
    if hard[0] < MIN_HARD_TEST:
        text += (f"**The hard test set has only {hard[0]} samples (below {MIN_HARD_TEST}): its accuracy moves in steps "
                 f"of {100 / hard[0]:.1f} points; read the hard columns with that resolution.** ")
    return text + "\n\n"


def _curves_table(records) -> str:
    """Per method and pathway: hard / easy / full test accuracy (%) at every r."""
    rs = sorted({r["config"]["r"] for r in records})
    rows = []
    for (method, pathway), cell in sorted(group(records, "method", "config.pathway").items()):
        by_r = group(cell, "config.r")
        row = [method, pathway]
        for r in rs:
            rr = by_r.get((r,), [])
            row.append(" / ".join(f"{mean_ci([x['metrics'][k] for x in rr])[0] * 100:.1f}"
                                  for k in ("acc_hard", "acc_easy", "acc_full")) if rr else "–")
        rows.append(row)
    return ("Test accuracy % hard / easy / full (means over seeds) per pathway and kept fraction r:\n\n"
            + tabulate(rows, headers=["method", "pathway", *(f"r = {r:g}" for r in rs)], tablefmt="github"))


def _plot(records):
    def draw(ax, method):
        for pathway, style in (("E", "-"), ("H", "--")):
            cell = [r for r in records if r["method"] == method and r["config"]["pathway"] == pathway]
            by_r = group(cell, "config.r")
            rs = sorted(r for (r,) in by_r)
            for key, color in (("acc_hard", "tab:red"), ("acc_easy", "tab:green"), ("acc_full", "k")):
                ax.plot(rs, [100 * np.mean([x["metrics"][key] for x in by_r[(r,)]]) for r in rs], style,
                        color=color, marker="o", ms=3, label=f"{pathway}: {key[4:]}")

    return method_grid(sorted({r["method"] for r in records}), draw,
                       "pathways: E (solid) reduces easy, H (dashed) reduces hard training samples",
                       "kept fraction r", "test accuracy %", panel_width=3.2)
