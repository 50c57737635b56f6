"""Per-sample scores as a release: every method's scores in the dataset's own order, beside its board.

A board whose records all score one whole train split, unplanted (the real-noise detection of
CIFAR-10N or ``cifar10-jpeg``, the C-score reference track; no ``--subset``), gets
``<board>.scores.npz`` next to its markdown when ``bench report`` writes it: per method, the
oriented scores (higher = harder) averaged over the board's estimation seeds, float32,
compressed, row i the dataset's train sample i in canonical order. A planted pool is the train
split with a different corruption per seed, so its scores have no one order to release.

``bench.load_scores(board)`` reads one back as a DataFrame: a column per method, indexed by sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import atomic_write, read_npz, read_or_none


def release_path(board: str | Path) -> Path:
    """``leaderboards/x/reference.md`` (or without ``.md``) -> ``leaderboards/x/reference.scores.npz``."""
    board = Path(board)
    return board.with_name(board.name.removesuffix(".md") + ".scores.npz")


def released_pool(board: dict, records: list[dict]) -> str | None:
    """The one whole, unplanted train pool all of a board's records scored, or None."""
    pools = {r.get("pool") or r["config"].get("pool") for r in records}
    if board.get("pool_size") or len(pools) != 1:
        return None
    (pool,) = pools
    return pool if pool and pool.startswith("train-") else None


def write_release(scope: Path, board: dict, records: list[dict], path: Path) -> Path | None:
    """Write the board's per-sample scores (module docstring) from the score records of ``scope``;
    None where the board scores no single whole train split or a method's vectors are missing."""
    pool = released_pool(board, records)
    if pool is None:
        return None
    methods = sorted({r["method"] for r in records if not r["method"].startswith("_")})
    seeds = sorted({r["seed"] for r in records})
    columns = []
    for method in methods:
        vectors = []
        for seed in seeds:
            json_path = scope / "scores" / pool / method / f"seed{seed}.json"
            record, arrays = read_or_none(json_path), read_or_none(json_path.with_suffix(".npz"), read_npz)
            if record is None or arrays is None:
                return None
            vectors.append(arrays["scores"] if record["higher_is_harder"] else -arrays["scores"])
        columns.append(np.mean(vectors, axis=0))
    scores = np.stack(columns).astype(np.float32)

    def write(tmp: Path):
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, method=np.array(methods), seeds=np.array(seeds), dataset=np.array(board["dataset"]),
                                scores=scores)

    atomic_write(path, write)
    return path


def load_scores(board: str | Path):
    """A board's released per-sample scores (``release_path``) as a pandas DataFrame: one column per
    method (oriented: higher = harder; the mean over the board's estimation seeds), indexed by the
    sample's row in the dataset's train split, canonical order."""
    import pandas as pd

    path = release_path(board)
    if not path.exists():
        raise FileNotFoundError(f"no released scores for {board}: expected {path} (boards that score a whole, "
                                "unplanted train split have one)")
    with np.load(path) as arrays:
        frame = pd.DataFrame(arrays["scores"].T, columns=[str(m) for m in arrays["method"]])
    frame.index.name = "sample"
    return frame
