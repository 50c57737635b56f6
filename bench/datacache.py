"""A cache of loaded, normalised datasets as plain arrays.

Reading MNIST through torchvision, then scaling, normalising and attaching C-scores, costs
seconds per run (and the torchvision import itself); the result is a few arrays. The cache
keeps them as one uncompressed ``.npz`` and reads them back with no conversion. Its key is
the dataset's name, the size and modification time of every source file, and the source of
``bench/data.py`` (how the arrays are made), so a changed file or loader rebuilds the entry.
"""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import store as st


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hardbench`` (``~/.cache/hardbench``): data folders may be read-only."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hardbench"

ARRAY_FIELDS = ("x_train", "y_train", "x_test", "y_test", "y_clean_train", "hardness_train")


def source_files(data_root: str | Path, folders) -> list[Path]:
    """Every file under ``data_root``/folder for each folder (missing folders: none)."""
    root = Path(data_root)
    return sorted(p for folder in folders for p in (root / folder).rglob("*") if p.is_file())


def cache_key(name: str, sources: list[Path]) -> str:
    from . import cifar_jpeg, data

    h = hashlib.sha256(name.encode())
    for path in sources:
        stat = path.stat()
        h.update(f"|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    for module in (data, cifar_jpeg):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()[:16]


def cached_dataset(name: str, build: Callable[[], "Dataset"], sources: list[Path],  # noqa: F821
                   cache_dir: str | Path) -> "Dataset":  # noqa: F821
    """``build()``'s Dataset, read from ``cache_dir`` when an entry for exactly these sources
    exists, else built and written there (atomically; a cache that cannot be written is skipped)."""
    from .data import Dataset

    path = Path(cache_dir) / f"{name.replace(':', '_').replace('/', '_')}-{cache_key(name, sources)}.npz"
    arrays = st.read_or_none(path, st.read_npz)  # a damaged entry is rebuilt
    if arrays is not None:
        fields = {k: torch.from_numpy(arrays[k]) for k in ARRAY_FIELDS if k in arrays}
        return Dataset(name=str(arrays["name"]), num_classes=int(arrays["num_classes"]),
                       layout_note=str(arrays.get("layout_note", "")), **fields)
    data = build()
    if data.subset is not None:
        raise ValueError("cache the whole dataset; subsample after reading it")
    arrays = {k: getattr(data, k).numpy() for k in ARRAY_FIELDS if getattr(data, k) is not None}
    def write(tmp: Path):
        with open(tmp, "wb") as f:  # uncompressed: read back at disk speed
            np.savez(f, name=np.array(data.name), num_classes=np.array(data.num_classes),
                     layout_note=np.array(data.layout_note), **arrays)

    try:
        st.atomic_write(path, write)
    except OSError:
        pass
    return data
