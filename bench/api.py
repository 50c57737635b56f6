"""The Python API beside the command line: per-sample scores of your own arrays, and the
stored results as a table.

>>> import numpy as np, bench
>>> x, y = np.random.default_rng(0).normal(size=(300, 4)), np.arange(300) % 3
>>> scores = bench.score(x, y, methods=["aum", "loss"], epochs=5)   # doctest: +SKIP
>>> scores.sort_values("aum", ascending=False).head()                # the hardest samples first

``score`` trains exactly as ``bench run`` does (the same recipes, caches and methods);
``results`` reads what any run stored.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np


def score(x, y, methods=("aum", "loss"), recipe: str | None = None, seeds: int = 1, epochs: int | None = None,
          x_test=None, y_test=None, results: str | Path | None = None, device: str = "auto", layout: str = "auto",
          quiet: bool = True):
    """Per-sample scores of ``methods`` on the arrays ``x`` (N, ...) and ``y`` (N,), as a pandas
    DataFrame with one row per sample (index = row of ``x``): a column per method, oriented so
    that higher = harder and averaged over ``seeds``, and ``<method> (natural)`` in the method's
    own units and orientation. ``recipe`` names a recipe of ``bench.recipes.RECIPES`` (default:
    the generic MLP recipe); ``results`` keeps the trained models for the next call (default: a
    temporary folder). Every row of ``x`` is scored; ``x_test``, where given, only serves the
    clean test accuracy stored with the scores. A method that fails is left out, with a warning."""
    import pandas as pd

    from . import registry
    from .data import from_arrays
    from .engine import Engine
    from .recipes import recipe_for
    from .store import Store
    from .train import resolve_device

    dataset = from_arrays(x, y, x_test, y_test, layout=layout)
    chosen = registry.select_methods(list(methods))
    with tempfile.TemporaryDirectory() as scratch:
        engine = Engine(dataset, recipe_for(recipe or "arrays", recipe, epochs=epochs), chosen, list(range(seeds)),
                        resolve_device(device), Store(results or scratch), quiet=quiet)
        pool = engine.pool("train")
        per_seed = [engine.scores(pool, seed) for seed in engine.seeds]
    columns = {}
    for method in chosen:
        runs = [r[method.name] for r in per_seed]
        if any(r.status != "ok" for r in runs):
            warnings.warn(f"{method.name} failed: {next(r.error for r in runs if r.status != 'ok')}", stacklevel=2)
            continue
        columns[method.name] = np.mean([r.scores for r in runs], axis=0)
        columns[f"{method.name} (natural)"] = np.mean([r.natural for r in runs], axis=0)
    return pd.DataFrame(columns, index=pd.Index(pool.rows, name="sample"))


def results(path: str | Path = "results"):
    """Every stored track record under ``path`` as a tidy pandas DataFrame: one row per
    (record, metric) with the configuration's label, the dataset, track, method, seed, metric,
    value and the record's config (a dict)."""
    import pandas as pd

    from .store import Store

    rows = []
    for record in Store(path).records():
        if record["track"] == "scores" or record["method"].startswith("_"):
            continue
        for metric, value in sorted(record.get("metrics", {}).items()):
            rows.append({"dataset": record["dataset"], "track": record["track"], "method": record["method"],
                         "seed": record["seed"], "metric": metric, "value": value, "config": record["config"]})
    return pd.DataFrame(rows, columns=["dataset", "track", "method", "seed", "metric", "value", "config"])
