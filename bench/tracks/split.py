"""Track S: train/test split effects (docs/protocol.md, "Track S").

On the pooled pool (train + test merged), for each method, test sets of T = 20% of
the pool: ``random`` (stratified), ``hardest`` and ``easiest`` by the method's
scores (averaged over the estimation seeds); fresh protocol models train on the
rest, R protocol seeds. The split swing = acc(easiest) - acc(hardest), in points.
Also Pearson r between each class's share of the hard set H(q) and the class's
test error under the random split.

Each protocol seed (``protocol_seeds`` of them) draws its own ``random`` split and its
own tie-breaking order (``draw_seed(split_seed, seed)``) and its own models'
initialisation and batch order, so intervals cover the split draw as well as the
models. The hardest and easiest test sets are fixed by the scores up to ties. The
``random`` split does not depend on the method: its models are trained once per
seed and every method's record carries the same baseline accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import pearsonr
from sklearn.model_selection import train_test_split
from tabulate import tabulate

from ..metrics import format_ci, mean_ci, top_k
from ..protocol import Cell
from .base import (Metric, Report, TrackSettings, Unit, group, method_scores, per_method_units, protocol_recipe,
                   protocol_seeds, ranks_by, trainer_for, verdict_section, draw_seed)

NAME = "split"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "split"
    ENUMERATED = ("protocol_seeds",)
    RENAMED = {"seeds": "protocol_seeds"}
    test: float = 0.2
    q: float = 0.1
    protocol_seeds: int = 3
    split_seed: int = 0
    epochs: int | None = None  # protocol models' epochs (None: the recipe's protocol_epochs, else its epochs)

    def validate(self) -> None:
        self.check_range("test", 0.0, 1.0)
        self.check_range("q", 0.0, 1.0)
        self.check_range("protocol_seeds", 1, 10_000, inclusive=True)


def plan(engine, settings: Settings) -> list[Unit]:
    return per_method_units(engine, [settings.shared()], protocol_seeds(settings.protocol_seeds))


def stratified_test(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    _, test = train_test_split(np.arange(len(y)), test_size=size, stratify=y, random_state=seed)
    return np.sort(test)


def run(engine, settings: Settings, units: list[Unit]) -> None:
    opts = settings.to_dict()
    config = settings.shared()
    seeds = protocol_seeds(settings.protocol_seeds)
    todo = sorted({u.method for u in units})
    pool = engine.pool("pooled")
    scores = method_scores(engine, pool)
    y = pool.y.cpu().numpy()
    n, c = len(y), pool.num_classes
    size = round(opts["test"] * n)
    every = np.arange(n)
    draws = {seed: draw_seed(opts["split_seed"], seed) for seed in seeds}
    tests = {}  # (method or "(random)", which, seed) -> test rows
    for seed, draw in draws.items():
        tests[("(random)", "random", seed)] = stratified_test(y, size, draw)
        for name in todo:
            if name in scores:
                s = scores[name]["scores"]
                tests[(name, "hardest", seed)] = top_k(s, size, draw)
                tests[(name, "easiest", seed)] = top_k(-s, size, draw)
    cells = [Cell(np.setdiff1d(every, test), key[2], tag={"key": key}) for key, test in tests.items()]
    recipe = protocol_recipe(engine, settings.epochs)
    trainer = trainer_for(engine, pool, {"pool": pool.x}, recipe, desc="split models")
    preds = {cell.tag["key"]: p["pool"] for cell, p in zip(cells, trainer.predict(cells))}

    def accuracy(key):
        return float((preds[key][tests[key]] == y[tests[key]]).mean())

    for seed, draw in draws.items():
        random_test = tests[("(random)", "random", seed)]
        correct = preds[("(random)", "random", seed)][random_test] == y[random_test]
        class_error = 1 - np.bincount(y[random_test], weights=correct, minlength=c) / np.maximum(
            np.bincount(y[random_test], minlength=c), 1)
        for name in todo:
            if name not in scores:
                continue
            hard = top_k(scores[name]["scores"], math.ceil(opts["q"] * n), draw)
            share = np.bincount(y[hard], minlength=c) / len(hard)
            r = pearsonr(share, class_error).statistic if np.ptp(share) > 0 and np.ptp(class_error) > 0 else math.nan
            acc_h, acc_e = accuracy((name, "hardest", seed)), accuracy((name, "easiest", seed))
            metrics = {"acc_random": accuracy(("(random)", "random", seed)), "acc_hardest": acc_h,
                       "acc_easiest": acc_e, "swing": 100 * (acc_e - acc_h), "class_r": float(r)}
            engine.write_record(NAME, config, name, seed, metrics, test_size=size, pool=pool.key,
                                protocol_recipe=recipe.to_dict(), class_share=share, class_error=class_error)


#: what the verdict ranks by (docs/protocol.md, "Statistics": why 2 points)
METRIC = Metric("swing (points)", higher_is_better=True, delta=2.0)


def verdict_rows(records: list[dict]) -> dict[str, list]:
    """The rows the verdict ranks: (method, (test share, q), protocol seed, swing in points)."""
    return {"split/pathway effect": [(r["method"], (r["config"]["test"], r["config"]["q"]), r["seed"],
                                      r["metrics"]["swing"]) for r in records]}


def report(records: list[dict]) -> Report:
    sections, ranks, plots = [], {}, {}
    for (test, q), cell in sorted(group(records, "config.test", "config.q").items()):
        by_method = group(cell, "method")
        swing = {m: mean_ci([r["metrics"]["swing"] for r in rs])[0] for (m,), rs in by_method.items()}
        ranks = ranks_by(swing)
        baseline = [r["metrics"]["acc_random"] for r in next(iter(by_method.values()))]
        rows = []
        for (method,), rs in sorted(by_method.items(), key=lambda item: -swing[item[0][0]]):
            metric = lambda k: [r["metrics"][k] for r in rs]  # noqa: E731
            rows.append([method, format_ci(metric("acc_hardest"), 1, 100), format_ci(metric("acc_easiest"), 1, 100),
                         format_ci(metric("swing"), 1), format_ci(metric("class_r"), 2), f"{ranks[method]:.1f}", len(rs)])
        sizes = sorted({r.get("test_size") for r in cell})
        sections.append(
            f"### test = {test:.0%} of the pool ({', '.join(map(str, sizes))} samples), hard set q = {q}\n\n"
            f"`random` (stratified) test accuracy, the same for every method: **{format_ci(baseline, 1, 100)} %**.\n\n"
            "Test accuracy (%) when the test set is the method's hardest or easiest samples; fresh models train on "
            "the rest. **Swing** = acc(easiest) − acc(hardest) in points: a method that finds truly hard samples "
            "moves test accuracy more; methods are ranked by swing (descending). **class r**: Pearson r over classes "
            "between the class's share of the hard set H(q) and its test error under the random split. "
            "Means ± 95% CI over protocol seeds, each with its own random split and models.\n\n"
            + tabulate(rows, headers=["method", "acc hardest", "acc easiest", "swing (pts)", "class r", "rank",
                                      "seeds"], tablefmt="github"))
        plots[f"split_swing_test{test}_q{q}.png"] = _swing_plot(by_method, swing)
    text, summary = verdict_section("split effect", verdict_rows(records)["split/pathway effect"], METRIC,
                                    what="Replicates are protocol seeds, each with its own split draw and models. ")
    return Report("\n\n".join([*sections, text]), ranks, plots, {"split/pathway effect": summary} if summary else {})


def _swing_plot(by_method, swing):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(swing, key=lambda m: -swing[m])
    cis = [mean_ci([r["metrics"]["swing"] for r in by_method[(m,)]])[1] for m in names]
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * len(names) + 1), 3.5))
    ax.bar(range(len(names)), [swing[m] for m in names], yerr=np.nan_to_num(cis), capsize=3, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel("split swing (points)")
    ax.set_title("acc(easiest test) − acc(hardest test)")
    ax.axhline(0, color="k", lw=0.5)
    return fig
