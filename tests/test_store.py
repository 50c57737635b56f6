"""The results store's atomic writes and the clean-up of what a killed writer left."""
import os
import socket
import subprocess
import sys

import pytest

from bench.store import atomic_write, read_json, remove_orphaned_temps, write_json


def test_a_failed_write_leaves_neither_record_nor_temp(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "seed0.json", fail)
    assert list(tmp_path.iterdir()) == []
    write_json(tmp_path / "seed0.json", {"auprc": 0.5})
    assert read_json(tmp_path / "seed0.json") == {"auprc": 0.5} and len(list(tmp_path.iterdir())) == 1


def test_only_temps_of_dead_writers_on_this_host_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    folder = tmp_path / "digits" / "detection" / "aum"
    folder.mkdir(parents=True)
    orphan = folder / f".seed0.json.{int(dead.stdout)}@{host}.ab12_x.tmp"
    live = folder / f".seed1.json.{os.getpid()}@{host}.cd34_y.tmp"
    elsewhere = folder / f".seed2.json.{int(dead.stdout)}@not-{host}.ef56_z.tmp"
    record = folder / "seed3.json"
    for path in (orphan, live, elsewhere, record):
        path.write_text("{}")

    assert remove_orphaned_temps(tmp_path) == 1
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, elsewhere.name, record.name])
