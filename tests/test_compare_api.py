"""``bench compare`` and the Python API (``bench.score``, ``bench.results``) on tiny runs."""
import contextlib
import io
import json
import shutil

import numpy as np
import pytest

import bench
from bench.cli import main

RUN = ["run", "--dataset", "digits", "--methods", "aum,loss,random", "--seeds", "2", "--epochs", "3", "--quiet",
       "--option", "detection.types=label-uniform", "--threads", "1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    assert main([*RUN, "--results", str(root / "res"), "--leaderboards", str(root / "lb")]) == 0
    return root


def _compare(*args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compare", *map(str, args)]) == 0
    return out.getvalue()


def test_a_method_against_the_field(store):
    text = _compare("random", "--results", store / "res")
    rows = [line for line in text.splitlines() if line.startswith("| digits-epochs3/detection | label noise")]
    (row,) = rows
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "AUPRC" and cells[5] == "3 of 3" and cells[6].startswith("-")  # last, below the best
    assert cells[6].endswith(("vs loss", "vs aum")) and cells[8] == "2"  # one cell, two seeds: two pairs


def test_compare_ranks_what_the_board_ranks(store):
    from compare_support import assert_compare_agrees_with_the_board

    from bench.store import Store
    from bench.tracks import detection

    records = list(Store(store / "res").records("detection"))
    assert_compare_agrees_with_the_board(store / "res", detection, records)


def test_two_result_folders_and_two_board_trees(store, tmp_path):
    after = tmp_path / "after"
    shutil.copytree(store / "res", after)
    (record,) = after.glob("*/*/detection/*/aum/seed0.json")
    data = json.loads(record.read_text())
    data["metrics"]["auprc"] -= 0.5
    record.write_text(json.dumps(data))
    text = _compare(store / "res", after)
    aum = next(line for line in text.splitlines() if "| aum" in line)
    assert "-0.250" in aum and aum.split("|")[-3].strip() == "no"  # two pairs (-0.5, 0): within seed noise
    assert "| label noise |" in aum and "AUPRC" in aum  # the verdict's own metric
    boards = tmp_path / "boards"
    shutil.copytree(store / "lb", boards)
    (board,) = boards.glob("*/detection*.md")
    lines = board.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| aum "))
    cells = lines[row].split("|")
    cells[2] = " 0.100 ± 0.010 "  # the AUPRC column
    lines[row] = "|".join(cells)
    board.write_text("\n".join(lines))
    (changed,) = [line for line in _compare(store / "lb", boards).splitlines() if "| aum " in line]
    assert "AUPRC" in changed and changed.rstrip(" |").endswith("yes")


def test_compare_unknown_method_is_a_usage_error(store, capsys):
    assert main(["compare", "aumm", "--results", str(store / "res")]) == 2
    assert "unknown method 'aumm'" in capsys.readouterr().err


def test_score_returns_per_sample_scores_of_the_users_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(240, 5)), np.arange(240) % 3
    x[np.arange(240), y] += 3.0  # learnable
    flipped = np.arange(0, 240, 12)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + 1) % 3
    scores = bench.score(x, y_noisy, methods=["aum", "loss"], epochs=15, results=tmp_path / "res")
    assert list(scores.columns) == ["aum", "aum (natural)", "loss", "loss (natural)"]
    assert len(scores) == 240 and scores.index.tolist() == list(range(240))
    np.testing.assert_allclose(scores["aum"], -scores["aum (natural)"])  # aum: lower = harder, flipped
    top = set(scores["aum"].nlargest(len(flipped)).index)
    assert len(top & set(flipped)) >= 0.6 * len(flipped)  # chance: 20 / 240 of them
    table = bench.results(tmp_path / "res")
    assert table.empty  # score() writes score records only, no track records


def test_results_is_a_tidy_table_of_the_stored_records(store):
    table = bench.results(store / "res")
    assert set(table["track"]) == {"detection"} and set(table["method"]) == {"aum", "loss", "random"}
    auprc = table[table.metric == "auprc"].groupby("method")["value"].mean()
    assert auprc["loss"] > auprc["random"] and len(table[table.metric == "auprc"]) == 3 * 2


def test_export_writes_parquet(store, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    assert main(["export", "--results", str(store / "res"), "--out", str(tmp_path / "r.parquet")]) == 0
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert len(table) == len(bench.results(store / "res")) and set(table["method"]) == {"aum", "loss", "random"}


def test_the_readmes_python_example_runs(tmp_path, monkeypatch):
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    example = readme.split("## From Python\n\n```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - the documented example, as a user runs it
    assert list(namespace["scores"].columns[:2]) == ["aum", "aum (natural)"] and len(namespace["scores"]) == 300
    assert namespace["table"].empty  # no results folder there yet
