"""Per-sample scores for users: every stored score vector, ready for another pipeline.

``python -m bench export --scores --out DIR`` writes, per (dataset, pool, recipe):

- ``<dataset>/<pool>/<recipe>/scores.csv`` for pools of at most ``CSV_LIMIT`` samples: one
  row per (method, seed, sample) with columns ``dataset, pool, recipe, method, seed, index,
  score, natural``; ``score`` is oriented (higher = harder), ``natural`` the method's own
  units and orientation, ``index`` the sample's row in the pool (for pool ``train``, its
  row in the train split as loaded, ``--subset`` applied);
- ``scores.npz`` in its place for larger pools: ``index`` (N,), ``method`` (M,), ``seed``
  (M,), ``higher_is_harder`` (M,), ``scores`` and ``natural`` (M, N);

and ``DIR/index.csv``: one line per exported vector (dataset, pool, recipe, method, seed,
higher_is_harder, samples, file).
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from .store import read_npz, read_or_none, slug

CSV_LIMIT = 20_000


def stored_scores(results: str | Path) -> Iterator[tuple[dict, np.ndarray]]:
    """(record, natural scores) of every successful score record under ``results``: the
    JSON ``<label>/<scope>/scores/<pool>/<method>/seed<k>.json`` and the ``scores`` array of
    the .npz beside it (damaged files are skipped, said in one line)."""
    for path in sorted(Path(results).glob("*/*/scores/*/*/seed*.json")):
        record = read_or_none(path)
        arrays = read_or_none(path.with_suffix(".npz"), read_npz)
        if record is not None and record.get("status") == "ok" and arrays is not None:
            yield record, arrays["scores"]


def export_scores(results: str | Path, out: str | Path) -> list[Path]:
    """Write every stored score vector under ``out`` (see the module docstring); returns the files."""
    out = Path(out)
    groups = defaultdict(list)
    for record, natural in stored_scores(results):
        config = record["config"]
        groups[(record["dataset"], config["pool"], config["recipe"])].append((record, np.asarray(natural, float)))
    written, index_rows = [], []
    for (dataset, pool, recipe), items in sorted(groups.items()):
        items.sort(key=lambda item: (item[0]["method"], item[0]["seed"]))
        folder = out / slug(dataset) / slug(pool) / slug(recipe)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(items[0][1])
        if any(len(natural) != n for _, natural in items):
            raise ValueError(f"score vectors of different lengths under {dataset}/{pool}/{recipe}")
        oriented = [natural if rec["higher_is_harder"] else -natural for rec, natural in items]
        if n <= CSV_LIMIT:
            path = folder / "scores.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["dataset", "pool", "recipe", "method", "seed", "index", "score", "natural"])
                for (rec, natural), score in zip(items, oriented):
                    writer.writerows(zip([dataset] * n, [pool] * n, [recipe] * n, [rec["method"]] * n,
                                         [rec["seed"]] * n, range(n), score.tolist(), natural.tolist()))
        else:
            path = folder / "scores.npz"
            np.savez_compressed(path, index=np.arange(n), method=np.array([r["method"] for r, _ in items]),
                                seed=np.array([r["seed"] for r, _ in items]),
                                higher_is_harder=np.array([r["higher_is_harder"] for r, _ in items]),
                                scores=np.stack(oriented), natural=np.stack([nat for _, nat in items]))
        written.append(path)
        index_rows += [[dataset, pool, recipe, rec["method"], rec["seed"], rec["higher_is_harder"], n,
                        str(path.relative_to(out))] for rec, _ in items]
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.csv"
    with open(index, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "pool", "recipe", "method", "seed", "higher_is_harder", "samples", "file"])
        writer.writerows(index_rows)
    return [index, *written]
