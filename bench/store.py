"""The results store: JSON records and .npz arrays under one root, written atomically.

A record is finished once its file exists: every write goes to a temporary file
in the same folder and is renamed into place, so an interrupted run leaves
either the whole record or nothing, and a rerun skips what is there. A temporary
file names its writer (``.<record>.<pid>@<host>.<random>.tmp``), so that the next
run can remove those left by a killed process without touching a live writer's.
"""
from __future__ import annotations

import glob
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = f"{os.getpid()}@{socket.gethostname()}"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{owner}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_TEMP_OWNER = re.compile(r"\.(\d+)@(.+)\.[^.]+\.tmp$")


def remove_orphaned_temps(root: Path) -> int:
    """Delete the temporary files under ``root`` whose writer was a process on this host
    that no longer exists (a killed run); returns how many. Another host's temps and a
    live process's are left alone."""
    host, removed = socket.gethostname(), 0
    for tmp in Path(root).rglob(".*.tmp"):
        owner = _TEMP_OWNER.search(tmp.name)
        if owner and owner[2] == host and not _alive(int(owner[1])):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_plain)))


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def write_npz(path: Path, **arrays) -> None:
    def write(tmp: Path):
        with open(tmp, "wb") as f:  # a file object stops numpy from appending ".npz" to the temp name
            np.savez_compressed(f, **arrays)

    atomic_write(path, write)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {k: arrays[k] for k in arrays.files}


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def slug(value) -> str:
    """A short, filesystem-safe and stable name for a config dict or value."""
    if isinstance(value, dict):
        return "_".join(f"{k}={slug(v)}" for k, v in sorted(value.items())) or "default"
    return str(value).replace("/", "-").replace(" ", "")


class Store:
    """Every path under the results folder:

    - track records: ``<dataset>/<track>/<config>/<method>/seed<k>.json``;
    - score records (track ``scores``): the same, config = pool and recipe, with the
      score vector in ``seed<k>.npz`` beside the JSON;
    - estimation runs: ``<dataset>/_estimation/<pool>/<recipe>/seed<k>[-folds|-early]/``;
    - protocol models: ``<dataset>/_protocol/<pool>/<recipe>/<key[:2]>/<key>.npz``.
    """

    def __init__(self, root: str | Path = "results"):
        self.root = Path(root)

    def record_path(self, dataset: str, track: str, config: dict, method: str, seed: int) -> Path:
        return self.root / slug(dataset) / track / slug(config) / method / f"seed{seed}.json"

    def score_paths(self, dataset: str, pool: str, recipe: str, method: str, seed: int) -> tuple[Path, Path]:
        json_path = self.record_path(dataset, "scores", {"pool": pool, "recipe": recipe}, method, seed)
        return json_path, json_path.with_suffix(".npz")

    def estimation_dir(self, dataset: str, pool: str, recipe: str, seed: int, part: str = "") -> Path:
        """The folder of one estimation run (``part`` "") or of its K-fold ("folds") or early ("early") runs."""
        return self.root / slug(dataset) / "_estimation" / pool / recipe / (f"seed{seed}-{part}" if part else f"seed{seed}")

    def protocol_dir(self, dataset: str, pool: str, recipe: str) -> Path:
        return self.root / slug(dataset) / "_protocol" / pool / recipe

    def records(self, dataset: str | None = None, track: str | None = None) -> Iterator[dict]:
        pattern = f"{glob.escape(slug(dataset)) if dataset else '*'}/{track or '*'}/*/*/seed*.json"
        for path in sorted(self.root.glob(pattern)):
            yield read_json(path)

    def datasets(self) -> list[str]:
        return sorted({r["dataset"] for r in self.records()})
