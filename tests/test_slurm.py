"""`--executor slurm` end to end on a real SLURM (``scripts/slurm-local.sh`` starts a one-node
cluster on this host): the records equal an inline run's, bit for bit, at one torch thread.
Skipped, with the reason, where no slurmctld answers."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

LOCAL_CONF = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/slurm-local")) / "slurm.conf"
RUN = ["run", "--dataset", "digits", "--seeds", "1", "--epochs", "3", "--quiet", "--no-report",
       "--methods", "aum,loss,random,el2n", "--threads", "1", "--option", "detection.types=label-uniform"]


def _slurm_env() -> dict:
    env = {}
    if "SLURM_CONF" not in os.environ and LOCAL_CONF.exists():
        env["SLURM_CONF"] = str(LOCAL_CONF)
    return env


def _cluster_unavailable() -> str | None:
    """Why no job can run here, or None when a node is up."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch) on PATH: run scripts/slurm-local.sh"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20,
                              env={**os.environ, **_slurm_env()})
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld does not answer"
    if done.returncode != 0:
        return f"no slurmctld reachable (sinfo: {done.stderr.strip()[:200]}); run scripts/slurm-local.sh"
    states = done.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"no SLURM node is up (states: {states or 'none'})"
    return None


def _scores(results):
    return {str(p.relative_to(results)): np.load(p)["scores"] for p in sorted(results.glob("digits*/*/scores/*/*/*.npz"))}


@pytest.mark.skipif(_cluster_unavailable() is not None, reason=str(_cluster_unavailable()))
def test_slurm_executor_gives_the_inline_records(tmp_path):
    inline, slurm = tmp_path / "inline", tmp_path / "slurm"
    done = run_cli(*RUN, "--results", inline)
    assert done.returncode == 0, done.stderr
    done = run_cli(*RUN, "--executor", "slurm", "--slurm-time", "10", "--results", slurm, env=_slurm_env(),
                   timeout=600)
    assert done.returncode == 0, done.stderr
    logs = list((slurm / "_submitit").glob("*_log.out"))
    assert logs, "no SLURM job ran: the units were trained elsewhere"
    expected, got = _scores(inline), _scores(slurm)
    assert expected.keys() == got.keys() and len(expected) == 4
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
