"""Track R's study: the resampled training sets, their protocol models and per-class metrics (see ``bench.tracks.resampling``)."""
from __future__ import annotations

import math
import numpy as np

from ...protocol import Cell
from ...resample import (Resampled, assign_sizes, class_hardness, class_recall_precision, class_targets,
                         prune_balanced, resample, spread)
from ..base import Unit, draw_seed, method_scores, protocol_recipe, trainer_for
from .settings import NAME, Settings, options, setting


RECALL = {"mean": "mean_recall", "gap": "recall_gap", "std": "recall_std", "mad": "recall_mad",
          "quant_diff": "recall_quant_diff", "hard_easy": "hard_easy"}
PRECISION = {"mean": "mean_precision", "gap": "precision_gap", "std": "precision_std", "mad": "precision_mad",
             "quant_diff": "precision_quant_diff", "hard_easy": "precision_hard_easy"}
METRICS = (*RECALL.values(), "worst_recall", *PRECISION.values())
HEADS = {"mean": "mean", "gap": "gap", "std": "std", "mad": "MAD", "quant_diff": "q-diff", "hard_easy": "hard−easy"}
SIGNIFICANT = 0.05


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
                 opts: dict, x_flat: np.ndarray | None, draw: int) -> dict:
    """One method's training set for one configuration, from its scores ``s`` and the pruning
    ``split`` = (kept, pruned) pool rows, drawn with the seed ``draw``; plus what the record keeps
    about it."""
    kept, pruned = split
    _, alpha, filler, assignment = setting(config)
    h = class_hardness(s["natural"][kept], y[kept], num_classes)
    base = class_targets(h, len(kept), 1.0, s["higher_is_harder"])
    if alpha == 0:
        targets = np.bincount(y[kept], minlength=num_classes)
        res = Resampled(kept, None, None, np.zeros(num_classes, dtype=np.int64))
    else:
        targets = assign_sizes(class_targets(h, len(kept), alpha, s["higher_is_harder"]), assignment, draw)
        res = resample(y, s["scores"], targets, filler, draw, config["keep"], x_flat, kept, pruned)
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
    # every protocol seed draws its own pruning split and resampled sets (draw_seed)
    draws = {seed: draw_seed(opts["split_seed"], seed) for _, _, seed in todo}
    splits = {(p, seed): prune_balanced(y, p, draws[seed], c) for _, cf, seed in todo for p in [setting(cf)[0]]}
    plans, cells = {}, []
    for name, config, seed in todo:
        if name not in scores:
            continue
        key = (name, tuple(sorted(config.items())), seed)
        plans[key] = training_set(config, scores[name], y, c, splits[(setting(config)[0], seed)], opts, x_flat,
                                  draws[seed])
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
