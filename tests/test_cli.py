"""End-to-end runs of the command line on tiny settings."""
import csv
import io
import json
from pathlib import Path
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_cli

PLUGIN = '''
import time
import numpy as np
from bench import register

@register(higher_is_harder=True, needs={"dynamics"}, family="plugin", citation="test plugin")
def plugin_max_loss(ctx):
    """Largest per-epoch loss."""
    return ctx.dynamics.loss.max(axis=1)

@register(higher_is_harder=True, needs=(), family="plugin")
def crashes(ctx):
    raise RuntimeError("boom")

@register(higher_is_harder=True, needs=(), family="plugin")
def returns_nan(ctx):
    return np.full(len(ctx), np.nan)

@register(higher_is_harder=True, needs={"dynamics"}, family="plugin")
def slow(ctx):
    time.sleep(0.4)
    return ctx.dynamics.loss[:, 0]
'''

TINY = ["--dataset", "digits", "--seeds", "1", "--epochs", "3", "--quiet", "--option", "detection.types=label-uniform"]
BOARD = Path("digits-epochs3") / "detection-seeds1-types-label-uniform"  # the board TINY makes


@pytest.fixture
def plugin(tmp_path):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    return {"PYTHONPATH": str(tmp_path)}


def test_unknown_method_and_dataset_exit_2_with_valid_names(tmp_path, capsys):
    from bench.cli import main

    assert main(["run", "--methods", "aumm", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'aumm'" in err and "Did you mean aum" in err and "forgetting" in err
    assert main(["run", "--dataset", "cifar11", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cifar10" in err and "Valid datasets" in err
    assert main(["run", "--tracks", "detect", "--results", str(tmp_path)]) == 2
    assert "Valid tracks: detection" in capsys.readouterr().err


def test_plugin_method_is_listed_run_and_on_the_leaderboard(tmp_path, plugin):
    listed = run_cli("list", "--plugin", "my_plugin", env=plugin)
    assert listed.returncode == 0 and "plugin_max_loss" in listed.stdout.split()
    board = tmp_path / "lb"
    result = run_cli("run", *TINY, "--methods", "aum,plugin_max_loss", "--plugin", "my_plugin",
                     "--results", tmp_path / "res", "--leaderboards", board, env=plugin)
    assert result.returncode == 0, result.stderr
    records = list((tmp_path / "res").glob("digits-epochs3/*/detection/*/plugin_max_loss/seed0.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["metrics"]["auprc"] > 0.5
    table = (board / f"{BOARD}.md").read_text()
    assert "| plugin_max_loss" in table and "| aum" in table
    assert "plugin_max_loss" in (board / "README.md").read_text()


def test_failing_methods_are_reported_and_the_others_finish(tmp_path, plugin):
    result = run_cli("run", *TINY, "--methods", "loss,crashes,returns_nan", "--plugin", "my_plugin",
                     "--results", tmp_path / "res", "--leaderboards", tmp_path / "lb", env=plugin)
    assert result.returncode == 1
    assert "crashes: RuntimeError: boom" in result.stderr
    assert "returns_nan: MethodFailed" in result.stderr and "non-finite" in result.stderr
    table = (tmp_path / "lb" / f"{BOARD}.md").read_text()
    assert "| loss" in table and "Failed methods" in table and "`crashes`" in table


def _metrics(results):
    out = {}
    for path in sorted(results.glob("digits*/*/detection/*/*/seed*.json")):
        record = json.loads(path.read_text())
        out[str(path.relative_to(results))] = record["metrics"]
    return out


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_results(tmp_path, plugin):
    args = ["run", "--dataset", "digits", "--seeds", "4", "--epochs", "3", "--quiet", "--no-report",
            "--methods", "aum,loss,slow", "--plugin", "my_plugin", "--option", "detection.types=label-uniform"]
    clean = run_cli(*args, "--results", tmp_path / "clean", env=plugin)
    assert clean.returncode == 0, clean.stderr

    interrupted = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), plugin["PYTHONPATH"]])}
    process = subprocess.Popen([sys.executable, "-m", "bench", *args, "--results", str(interrupted)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(interrupted.glob("digits*/*/detection/*/*/seed*.json")) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    finished = {p: p.stat().st_mtime_ns for p in interrupted.rglob("*") if p.is_file()}
    assert 0 < len(_metrics(interrupted)) < len(_metrics(tmp_path / "clean"))

    resumed = run_cli(*args, "--results", interrupted, env=plugin)
    assert resumed.returncode == 0, resumed.stderr
    assert _metrics(interrupted) == _metrics(tmp_path / "clean")
    for path in (tmp_path / "clean").glob("digits*/*/scores/*/*/seed*.npz"):  # same seed, same scores, bit for bit
        twin = interrupted / path.relative_to(tmp_path / "clean")
        assert np.array_equal(np.load(path)["scores"], np.load(twin)["scores"])
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())  # nothing finished was redone
    assert not list(interrupted.rglob("*.tmp"))


def test_export_writes_a_tidy_csv(tmp_path):
    result = run_cli("run", *TINY, "--methods", "loss,random", "--results", tmp_path, "--no-report")
    assert result.returncode == 0, result.stderr
    exported = run_cli("export", "--results", tmp_path)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {"dataset", "track", "method", "metric", "seed", "value"} <= set(rows[0])
    auprc = {r["method"]: float(r["value"]) for r in rows if r["metric"] == "auprc"}
    assert set(auprc) == {"loss", "random"} and auprc["loss"] > auprc["random"]


def test_overview_keeps_boards_not_regenerated_and_answers_per_question(tmp_path):
    board = tmp_path / "lb"
    other = board / "otherdata" / "detection.ranks.json"
    other.parent.mkdir(parents=True)
    verdict = {"metric": "AUPRC", "higher_is_better": True, "best": "random", "evidence": "1 setting(s) × 3 seed(s)",
               "methods": {"loss": {"value": 0.5, "rank": 2.0, "not_worse": False, "standalone_s": 1.0},
                           "random": {"value": 0.6, "rank": 1.0, "not_worse": True, "standalone_s": 0.0}}}
    other.write_text(json.dumps({"board": "otherdata/detection", "track": "detection", "ranks": {"loss": 2.0},
                                 "verdicts": {"label noise": verdict}}))
    result = run_cli("run", *TINY, "--methods", "loss,random", "--results", tmp_path / "res", "--leaderboards", board)
    assert result.returncode == 0, result.stderr
    overview = (board / "README.md").read_text()
    assert "[otherdata/detection](otherdata/detection.md)" in overview and f"[{BOARD}]({BOARD}.md)" in overview
    assert "## Which identifier to trust" in overview and "## label noise" in overview
    assert "mean rank" not in overview  # no single rank across questions
    trust = next(line for line in overview.splitlines() if line.startswith("| label noise"))
    assert "unanswered" in trust.split("|")[2] and "random" not in trust.split("|")[2]  # the control: never
    assert "[otherdata/detection](otherdata/detection.md): not counted: made before the equivalence rule" in overview
    assert f"[{BOARD}]({BOARD}.md): not counted: 1 seed" in overview  # and 1 method besides the control
    ranks = json.loads((board / f"{BOARD}.ranks.json").read_text())
    assert ranks["ranks"]["loss"] < ranks["ranks"]["random"] and "label noise" in ranks["verdicts"]
