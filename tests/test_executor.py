"""Executors: inline, --jobs worker processes and submitit give the same records, bit for
bit; a killed run leaves no partial record and a rerun trains only what is missing."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_cli

# cleanlab and el2n make every unit kind appear: estimation run, K-fold models, early runs. One torch
# thread everywhere: CPU results are bit-for-bit the same at a fixed thread count.
RUN = ["run", "--dataset", "digits", "--seeds", "2", "--epochs", "3", "--quiet", "--no-report",
       "--methods", "aum,cleanlab,el2n", "--threads", "1", "--option", "detection.types=label-uniform"]


def _scores(results):
    return {str(p.relative_to(results)): np.load(p)["scores"] for p in sorted(results.glob("digits*/*/scores/*/*/*.npz"))}


def _detections(results):
    return {str(p.relative_to(results)): json.loads(p.read_text())["metrics"]
            for p in sorted(results.glob("digits*/*/detection/*/*/*.json"))}


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    results = tmp_path_factory.mktemp("inline")
    result = run_cli(*RUN, "--results", results)
    assert result.returncode == 0, result.stderr
    return results


@pytest.mark.parametrize("how", [["--jobs", "2"], ["--executor", "local"]], ids=["jobs", "submitit-local"])
def test_executors_give_identical_records(tmp_path, inline, how):
    result = run_cli(*RUN, *how, "--results", tmp_path)
    assert result.returncode == 0, result.stderr
    expected, got = _scores(inline), _scores(tmp_path)
    assert expected.keys() == got.keys() and len(expected) == 6
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert _detections(inline) == _detections(tmp_path)


def test_killed_workers_leave_no_partial_record_and_a_rerun_trains_only_the_missing(tmp_path, inline):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "bench", *RUN, "--jobs", "2", "--results", str(tmp_path)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 600
    while not list(tmp_path.glob("digits*/*/_estimation/*/*/meta.json")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its workers
    process.wait()
    done = {p: p.stat().st_mtime_ns for p in tmp_path.glob("digits*/*/_estimation/*/*/meta.json")}
    assert done, "no unit finished before the kill"
    for path in tmp_path.rglob("*.json"):  # every record present is whole (temporary files are never read)
        json.loads(path.read_text())
    for path in tmp_path.rglob("*.npz"):
        np.load(path).files
    for meta in done:  # a part's meta is written last: where it exists, its arrays are complete
        assert any(p.suffix in (".npz", ".pt") for p in meta.parent.iterdir())

    rerun = run_cli(*RUN, "--jobs", "2", "--results", tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in done.items())  # finished units were not redone
    expected, got = _scores(inline), _scores(tmp_path)
    assert expected.keys() == got.keys() and all(np.array_equal(expected[k], got[k]) for k in expected)
