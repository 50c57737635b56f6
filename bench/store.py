"""The results store: JSON records and .npz arrays under one root, written atomically.

A record is finished once its file exists: every write goes to a temporary file
in the same folder and is renamed into place, so an interrupted run leaves
either the whole record or nothing, and a rerun skips what is there. Two runs
writing the same record at once each rename a whole file into place; the last
one stays. A temporary file names its writer (``.<record>.<pid>@<host>.<random>.tmp``),
so that the next run can remove those left by a killed process without touching a
live writer's. A record that cannot be read (truncated or damaged by something
else) is reported in one line and treated as missing, so it is computed again.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

log = logging.getLogger("bench")
#: what reading a damaged file raises: bad JSON or text, a truncated zip (npz) or pickle (torch)
DAMAGED = (ValueError, UnicodeDecodeError, zipfile.BadZipFile, EOFError, KeyError, OSError, RuntimeError)


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


def read_or_none(path: Path, read: Callable = read_json):
    """``read(path)``, or None when the file is missing or damaged (said once, in one line);
    the caller then computes it again."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path)
    except DAMAGED as error:
        log.warning("damaged record %s (%s: %s); computing it again", path, type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "")
        return None


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


def config_slug(config: dict) -> str:
    """A record's config as a folder name: readable where short, else readable head plus a hash."""
    text = slug(config)
    if len(text) <= 120:
        return text
    import hashlib

    return f"{text[:80]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class Store:
    """Every path under the results folder. A *scope* is one configuration: a dataset as
    loaded (its content hash), a recipe and a pool size, as ``<label>/<id>`` (the board
    folder's name, and a hash of everything that defines it). Under a scope:

    - track records: ``<track>/<config>/<method>/seed<k>.json``;
    - score records: ``scores/<pool>/<method>/seed<k>.json`` with the vector in ``.npz`` beside it;
    - estimation runs: ``_estimation/<pool>/seed<k>[-folds|-early]/``;
    - protocol models: ``_protocol/<pool>/<recipe>/<key[:2]>/<key>.npz``;
    - boards: ``_boards/<track>-<hash>.json``, what one run of a track planned (settings,
      seeds, the record paths) and the command that ran it: ``bench report`` makes one
      board of each.
    """

    def __init__(self, root: str | Path = "results"):
        self.root = Path(root)

    def scope(self, label: str, scope_id: str) -> Path:
        return self.root / label / scope_id

    @staticmethod
    def record_path(scope: Path, track: str, config: dict, method: str, seed: int) -> Path:
        return scope / track / config_slug(config) / method / f"seed{seed}.json"

    @staticmethod
    def score_paths(scope: Path, pool: str, method: str, seed: int) -> tuple[Path, Path]:
        json_path = scope / "scores" / pool / method / f"seed{seed}.json"
        return json_path, json_path.with_suffix(".npz")

    @staticmethod
    def estimation_dir(scope: Path, pool: str, seed: int, part: str = "") -> Path:
        """The folder of one estimation run (``part`` "") or of its K-fold ("folds") or early ("early") runs."""
        return scope / "_estimation" / pool / (f"seed{seed}-{part}" if part else f"seed{seed}")

    @staticmethod
    def protocol_dir(scope: Path, pool: str, recipe: str) -> Path:
        return scope / "_protocol" / pool / recipe

    def boards(self) -> list[Path]:
        """Every board manifest in the store."""
        return sorted(self.root.glob("*/*/_boards/*.json"))

    def records(self, track: str | None = None) -> Iterator[dict]:
        """Every readable record of a track (or of every track), in every scope."""
        pattern = f"*/*/{track}/*/*/seed*.json" if track else "*/*/*/*/*/seed*.json"
        for path in sorted(self.root.glob(pattern)):
            if not path.parent.parent.parent.name.startswith("_"):
                record = read_or_none(path)
                if record is not None:
                    yield record
