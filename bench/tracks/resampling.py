"""Track R: hardness-based resampling at class level (PROTOCOL.md, "Track R").

On the train split, a method's class hardness h_c (mean natural-unit score of the
class, averaged over estimation seeds) gives target class sizes S_c
(``bench.resample.class_targets``, total kept); undersampled classes keep their
hardest (or random) samples, oversampled ones are filled by ``duplicate``,
``smote`` or ``holdout``. Fresh protocol models train on the resampled set and are
evaluated by per-class recall on the dataset's test split. α = 0 is no resampling:
the plain train split, one set of models shared by every method (protocol cache);
each method's α = 0 record still uses its own hard classes for ``hard_easy``.

The resampled set is drawn once per (method, α, filler) with ``split_seed``;
protocol seeds vary the models. Paired t-tests (scipy ``ttest_rel``) over protocol
seeds compare each α > 0 configuration with α = 0.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.stats import ttest_rel
from tabulate import tabulate

from ..metrics import format_ci
from ..protocol import Cell, method_scores, protocol_seeds, track_options, trainer_for
from ..resample import class_hardness, class_targets, resample
from .base import Report, group, method_grid, ranks_by

NAME = "resampling"
DEFAULTS = {"alphas": [0, 1, 3], "fillers": ["duplicate", "smote"], "keep": "hardest", "seeds": 3, "split_seed": 0,
            "epochs": None}
PROFILES = {"smoke": {"seeds": 2, "alphas": [0, 1], "fillers": ["duplicate"]}, "default": {"seeds": 3, "epochs": 10},
            "full": {"seeds": 5}}
METRICS = ("mean_recall", "recall_gap", "recall_std", "worst_recall", "hard_easy")


def options(engine) -> dict:
    return track_options(engine, NAME, DEFAULTS, PROFILES)


def recall_metrics(pred: np.ndarray, y: np.ndarray, num_classes: int, hard_classes: np.ndarray) -> tuple[dict, np.ndarray]:
    counts = np.bincount(y, minlength=num_classes)
    recall = np.bincount(y, weights=(pred == y), minlength=num_classes) / np.maximum(counts, 1)
    present = counts > 0
    rec = recall[present]
    hard = hard_classes & present
    easy = ~hard_classes & present
    hard_easy = float(recall[easy].mean() - recall[hard].mean()) if hard.any() and easy.any() else math.nan
    return ({"mean_recall": float(rec.mean()), "recall_gap": float(rec.max() - rec.min()),
             "recall_std": float(rec.std()), "worst_recall": float(rec.min()), "hard_easy": hard_easy}, recall)


def configs(opts) -> list[dict]:
    out = []
    for alpha in opts["alphas"]:
        for filler in (["none"] if alpha == 0 else opts["fillers"]):
            out.append({"alpha": float(alpha), "filler": filler, "keep": opts["keep"]})
    return out


def run(engine) -> None:
    opts = options(engine)
    seeds = protocol_seeds(opts["seeds"])
    todo_configs = configs(opts)
    todo = [m.name for m in engine.methods
            if not all(engine.record_path(NAME, cf, m.name, s).exists() for cf in todo_configs for s in seeds)]
    if not todo:
        return
    if "holdout" in opts["fillers"]:
        raise ValueError("filler 'holdout' needs spare real samples, which the train-split pool does not have; "
                         "use duplicate or smote")
    pool = engine.pool("train")
    scores = method_scores(engine, pool)
    y = pool.y.cpu().numpy()
    n, c = len(y), pool.num_classes
    x_flat = pool.x.reshape(n, -1).cpu().numpy() if "smote" in opts["fillers"] else None
    y_test = engine.dataset.y_test.numpy()
    cells, meta = [], {}
    for name in todo:
        if name not in scores:
            continue
        s = scores[name]
        h = class_hardness(s["natural"], y, c)
        base_targets = class_targets(h, n, 1.0, s["higher_is_harder"])
        hard_classes = base_targets > base_targets.mean()
        for config in todo_configs:
            if config["alpha"] == 0:
                rows, ex, ey, targets = np.arange(n), None, None, np.bincount(y, minlength=c)
            else:
                targets = class_targets(h, n, config["alpha"], s["higher_is_harder"])
                rows, ex, ey = resample(y, s["scores"], targets, config["filler"], opts["split_seed"],
                                        config["keep"], x_flat)
            key = (name, tuple(sorted(config.items())))
            meta[key] = {"config": config, "targets": targets, "hard_classes": hard_classes, "h": h}
            cells += [Cell(rows, seed, ex, ey, tag={"key": key}) for seed in seeds]
    recipe = engine.recipe if opts["epochs"] is None else replace(engine.recipe, epochs=opts["epochs"])
    evals = {"test": engine.dataset.x_test.to(engine.device)}
    trainer = trainer_for(engine, pool, evals, recipe, desc="resampling models")
    for cell, pred in zip(cells, trainer.predict(cells)):
        m = meta[cell.tag["key"]]
        metrics, recall = recall_metrics(pred["test"], y_test, c, m["hard_classes"])
        engine.write_record(NAME, m["config"], cell.tag["key"][0], cell.seed, metrics, recall=recall,
                            targets=m["targets"], hard_classes=m["hard_classes"], class_hardness=m["h"],
                            train_size=cell.size, pool=pool.key, protocol_recipe=recipe.to_dict())


def compare(records: list[dict]) -> dict:
    """Per (method, alpha, filler): metric values over seeds, and the paired t-test p-value
    against alpha = 0 of the same method on the same seeds."""
    base = {(r["method"], r["seed"]): r["metrics"] for r in records if r["config"]["alpha"] == 0}
    out = {}
    for (method, alpha, filler), rs in group(records, "method", "config.alpha", "config.filler").items():
        rs = sorted(rs, key=lambda r: r["seed"])
        entry = {k: [r["metrics"][k] for r in rs] for k in METRICS}
        paired = [r for r in rs if (method, r["seed"]) in base]
        for k in METRICS:
            a = np.array([r["metrics"][k] for r in paired])
            b = np.array([base[(method, r["seed"])][k] for r in paired])
            p = ttest_rel(a, b).pvalue if alpha != 0 and len(paired) > 1 and np.ptp(a - b) > 0 else math.nan
            entry[f"p_{k}"] = float(p)
            entry[f"delta_{k}"] = (a - b).tolist()
        out[(method, alpha, filler)] = entry
    return out


def report(records: list[dict]) -> Report:
    table = compare(records)
    # rank: relative reduction of the recall gap at the smallest alpha > 0, averaged over fillers
    reduction = {}
    alphas = sorted({a for (_, a, _) in table if a > 0})
    for (method, alpha, filler), e in table.items():
        if alphas and alpha == alphas[0]:
            base_gap = np.mean(table[(method, 0.0, "none")]["recall_gap"]) if (method, 0.0, "none") in table else math.nan
            reduction.setdefault(method, []).append(-np.mean(e["delta_recall_gap"]) / base_gap if base_gap else math.nan)
    reduction = {m: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for m, v in reduction.items()}
    ranks = ranks_by({m: (v if np.isfinite(v) else -np.inf) for m, v in reduction.items()}) if reduction else {}
    rows = []
    order = sorted(table, key=lambda k: (-(reduction.get(k[0], -np.inf) if np.isfinite(reduction.get(k[0], np.nan))
                                            else -np.inf), k[0], k[1], k[2]))
    for key in order:
        method, alpha, filler = key
        e = table[key]
        p = lambda k: "–" if math.isnan(e[f"p_{k}"]) else f"{e[f'p_{k}']:.3f}"  # noqa: E731
        rows.append([method, f"{alpha:g}", filler, format_ci(e["mean_recall"], 1, 100),
                     format_ci(e["recall_gap"], 1, 100), p("recall_gap"), format_ci(e["recall_std"], 1, 100),
                     format_ci(e["worst_recall"], 1, 100), p("worst_recall"), format_ci(e["hard_easy"], 1, 100),
                     p("hard_easy"), f"{ranks[method]:.1f}" if method in ranks else "–", len(e["recall_gap"])])
    keep = sorted({r["config"]["keep"] for r in records})
    text = ("Per-class recall (%) on the test split after resampling the training set by class hardness "
            f"(undersampled classes keep their {'/'.join(keep)} samples). α = 0 is the plain training set "
            "(the same models for every method). **gap** = max − min class recall, **std** over classes, **worst** "
            "class recall, **hard−easy** = mean recall of the method's easy classes − of its hard classes "
            "(hard: target size above the mean). p: paired t-test (scipy `ttest_rel`) over protocol seeds against "
            f"α = 0. Methods are ranked by the relative recall-gap reduction at α = {alphas[0] if alphas else '–'} "
            "(mean over fillers; larger = better). Means ± 95% CI over protocol seeds.\n\n"
            + tabulate(rows, headers=["method", "α", "filler", "mean recall", "gap", "p(gap)", "std", "worst",
                                      "p(worst)", "hard−easy", "p(h−e)", "rank", "seeds"], tablefmt="github"))
    return Report(text, ranks, {"resampling_recall.png": _plot(records)})


def _plot(records):
    configs_ = sorted({(r["config"]["alpha"], r["config"]["filler"]) for r in records})
    width = 0.8 / len(configs_)

    def draw(ax, method):
        for i, (alpha, filler) in enumerate(configs_):
            rs = [r for r in records if r["method"] == method and r["config"]["alpha"] == alpha
                  and r["config"]["filler"] == filler]
            if not rs:
                continue
            recall = 100 * np.mean([r["recall"] for r in rs], axis=0)
            ax.bar(np.arange(len(recall)) + (i - (len(configs_) - 1) / 2) * width, recall, width,
                   label=f"α={alpha:g} {filler}" if alpha else "α=0 (before)")
        ax.set_ylim(bottom=max(0, ax.get_ylim()[0]))

    return method_grid(sorted({r["method"] for r in records}), draw,
                       "per-class recall before (α = 0) and after resampling", "class", "test recall %",
                       panel_width=3.4)
