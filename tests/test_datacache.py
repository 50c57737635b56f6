"""The dataset cache returns the loader's arrays, and rebuilds when a source file changes."""
import dataclasses

import numpy as np
import torch

from bench.data import Dataset, load_dataset
from bench.datacache import ARRAY_FIELDS, cached_dataset, source_files


def test_cache_round_trip_and_invalidation(tmp_path):
    source = tmp_path / "raw" / "labels.bin"
    source.parent.mkdir()
    source.write_bytes(b"1")
    digits = load_dataset("digits")
    data = dataclasses.replace(digits, hardness_train=torch.rand(len(digits.y_train)))
    calls = []

    def build():
        calls.append(1)
        return data

    sources = source_files(tmp_path, ["raw", "missing"])
    first = cached_dataset("digits", build, sources, tmp_path / "cache")
    second = cached_dataset("digits", build, sources, tmp_path / "cache")
    assert len(calls) == 1 and first is data
    for field in ARRAY_FIELDS:
        a, b = getattr(data, field), getattr(second, field)
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype and torch.equal(a, b)
    assert (second.name, second.num_classes, second.subset) == (data.name, data.num_classes, None)
    source.write_bytes(b"22")  # a changed source file: built again
    cached_dataset("digits", build, source_files(tmp_path, ["raw"]), tmp_path / "cache")
    assert len(calls) == 2


def test_every_dataset_field_is_cached():
    names = {f.name for f in dataclasses.fields(Dataset)}
    assert names - set(ARRAY_FIELDS) == {"name", "num_classes", "subset", "layout_note"}
