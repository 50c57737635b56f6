"""Results keyed by everything that made them; one run configuration, checked before anything
trains; one board per configuration; image layouts; concurrent and damaged stores; no import circle."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import estimation, fingerprint
from bench.cli import main
from conftest import ROOT

BASE = ["run", "--dataset", "digits", "--methods", "loss,random", "--tracks", "detection", "--seeds", "1",
        "--epochs", "2", "--quiet", "--option", "detection.types=label-uniform"]


def _run(tmp_path, *extra, base=BASE):
    code = main([*base, *extra, "--results", str(tmp_path / "res"), "--leaderboards", str(tmp_path / "lb")])
    assert code == 0


def _computed(results: Path) -> dict:
    """Every computed file (trained parts, scores, records) with its mtime; board manifests aside."""
    return {p.relative_to(results): p.stat().st_mtime_ns for p in results.rglob("*")
            if p.is_file() and "_boards" not in p.parts}


def _scopes(results: Path) -> set[str]:
    return {p.parent.name for p in results.glob("*/*/_estimation")}


def test_each_input_recomputes_exactly_what_it_affects(tmp_path):
    res = tmp_path / "res"
    _run(tmp_path)
    first = _computed(res)
    _run(tmp_path)
    assert _computed(res) == first  # unchanged: nothing recomputed
    boards = {}
    for flag, folder in ((["--epochs", "3"], "digits-epochs3"), (["--model", "mlp"], "digits-modelkwargs-none-epochs2"),
                         (["--recipe", "blobs"], "digits-blobs-epochs2"), (["--subset", "500"], "digits-n500-epochs2")):
        before = _computed(res)
        _run(tmp_path, *flag)
        after = _computed(res)
        assert {p: m for p, m in after.items() if p in before} == before, flag  # nothing of the others touched
        new = {p.parts[0] for p in after if p not in before}
        assert new == {folder}, flag  # trained, scored and recorded anew, in its own configuration
        boards[folder] = (tmp_path / "lb" / folder / "detection-seeds1-types-label-uniform.md").read_text()
    assert "epochs=3," in boards["digits-epochs3"] and "model_kwargs={}" in boards["digits-modelkwargs-none-epochs2"]
    assert "subset: 500 samples" in boards["digits-n500-epochs2"]


def test_a_rerun_that_computes_nothing_rewrites_no_manifest_or_board(tmp_path, monkeypatch):
    """A board stays credited to the run that made its records: a second run at a later commit
    that finds everything cached leaves the manifest and the board (whose table it renders again)
    as they were."""
    from bench import engine, leaderboard

    _run(tmp_path)
    (manifest,) = (tmp_path / "res").glob("*/*/_boards/*.json")
    (board,) = (tmp_path / "lb").glob("*/detection*.md")
    first_manifest, first_board = manifest.read_text(), board.read_text()
    later = {**engine.provenance(), "commit": "later0000000", "command": "python -m bench run (again)"}
    monkeypatch.setattr(engine, "provenance", lambda: later)
    monkeypatch.setattr(leaderboard, "provenance", lambda: later)
    _run(tmp_path)
    assert manifest.read_text() == first_manifest
    assert board.read_text() == first_board
    record = next((tmp_path / "res").glob("*/*/detection/**/*.json"))
    record.unlink()  # one record to compute again: the manifest and the board now name the run that did
    _run(tmp_path)
    assert json.loads(manifest.read_text())["provenance"]["commit"] == "later0000000"
    assert "at commit later0000000" in board.read_text()


def test_new_npz_contents_under_the_same_name_train_again(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    base = ["run", "--dataset", f"npz:{path}", "--methods", "loss,random", "--tracks", "detection", "--seeds", "1",
            "--epochs", "2", "--quiet", "--option", "detection.types=label-uniform"]
    np.savez(path, x=rng.normal(size=(200, 5)), y=np.arange(200) % 2)
    _run(tmp_path, base=base)
    np.savez(path, x=rng.normal(size=(200, 5)) + 1, y=np.arange(200) % 2)
    _run(tmp_path, base=base)
    assert len(_scopes(tmp_path / "res")) == 2  # the second file's models are its own
    (board,) = (tmp_path / "lb").glob("*/detection*.md")
    hashes = {p.parent.parent.name for p in (tmp_path / "res").glob("*/*/_boards/*.json")}
    assert len(hashes) == 2 and board.read_text().count("content hash") == 1


def _engine(tmp_path):
    from bench.config import DatasetSpec, RunConfig, build_engine
    from bench.recipes import recipe_for

    return build_engine(RunConfig(DatasetSpec("digits"), recipe_for("digits", epochs=2), seeds=1,
                                  methods=("loss",), device="cpu", results=str(tmp_path / "res")))


@pytest.mark.parametrize("code, planted_only", [(estimation.PLANTING_CODE, True), (estimation.LOADING_CODE, False)])
def test_an_edit_to_the_planter_or_loader_changes_the_pools_it_made(tmp_path, monkeypatch, code, planted_only):
    engine = _engine(tmp_path)
    planted, clean = engine.pool("train", ("label-uniform", 0.1), 0), engine.pool("train")
    engine.scores(planted, 0)
    real = fingerprint.module_fingerprint
    monkeypatch.setattr(estimation, "module_fingerprint",
                        lambda names: real(names) + ("-edited" if names == code else ""))
    edited_planted, edited_clean = engine.pool("train", ("label-uniform", 0.1), 0), engine.pool("train")
    assert edited_planted.key != planted.key
    assert (edited_clean.key == clean.key) is planted_only  # the planter makes no unplanted pool
    assert engine.estimator.is_ready(planted, 0, "run") and not engine.estimator.is_ready(edited_planted, 0, "run")


def test_a_run_never_overwrites_a_board_of_another_configuration(tmp_path):
    _run(tmp_path)
    first = tmp_path / "lb" / "digits-epochs2" / "detection-seeds1-types-label-uniform.md"
    text = first.read_text()
    _run(tmp_path, "--seeds", "2")
    _run(tmp_path, "--option", "detection.rates=0.2")
    assert first.read_text() == text
    names = sorted(p.name for p in (tmp_path / "lb" / "digits-epochs2").glob("*.md"))
    assert names == ["detection-seeds1-rates-0.2-types-label-uniform.md", "detection-seeds1-types-label-uniform.md",
                     "detection-seeds2-types-label-uniform.md"]
    assert "rates=0.2" in (tmp_path / "lb" / "digits-epochs2" / names[0]).read_text()


def test_the_report_removes_plots_no_board_names(tmp_path):
    _run(tmp_path)
    folder = tmp_path / "lb" / "digits-epochs2"
    plots = sorted(folder.glob("*.png"))
    (folder / "detection-seeds1-types-label-uniform_old-pool.png").write_bytes(b"")  # a board's old plot name
    assert main(["report", "--results", str(tmp_path / "res"), "--leaderboards", str(tmp_path / "lb")]) == 0
    assert plots and sorted(folder.glob("*.png")) == plots


def test_bad_settings_stop_before_anything_is_trained_or_written(tmp_path, capsys):
    code = main(["run", "--tracks", "detection,resampling", "--option", "resampling.fillers=smot",
                 "--results", str(tmp_path / "res"), "--leaderboards", str(tmp_path / "lb")])
    assert code == 2 and not (tmp_path / "res").exists() and not (tmp_path / "lb").exists()
    assert "The 'fillers' parameter of resampling must be a subset of" in capsys.readouterr().err
    assert main(["run", "--rates", "1.5", "--results", str(tmp_path / "res")]) == 2  # --rates: the same checks
    assert not (tmp_path / "res").exists()


def test_channels_last_images_are_read_as_such_and_score_the_same(tmp_path):
    from bench.data import load_dataset

    digits = load_dataset("digits")
    x = np.concatenate([digits.x_train.numpy(), digits.x_test.numpy()])[:600]
    y = np.concatenate([digits.y_train.numpy(), digits.y_test.numpy()])[:600]
    np.savez(tmp_path / "first.npz", x=x, y=y)
    np.savez(tmp_path / "last.npz", x=x.transpose(0, 2, 3, 1), y=y)
    first, last = load_dataset(f"npz:{tmp_path / 'first.npz'}"), load_dataset(f"npz:{tmp_path / 'last.npz'}")
    assert torch.equal(first.x_train, last.x_train) and first.fingerprint == last.fingerprint
    assert "channels-last" in last.layout_note and first.layout_note == ""
    scores = {}
    for name in ("first", "last"):
        base = ["run", "--dataset", f"npz:{tmp_path / (name + '.npz')}", "--methods", "loss,random", "--seeds", "1",
                "--epochs", "2", "--quiet", "--option", "detection.types=label-uniform", "--threads", "1"]
        _run(tmp_path / name, base=base)
        scores[name] = {p.parent.name: np.load(p)["scores"] for p in (tmp_path / name).glob("res/*/*/scores/*/*/*.npz")}
        header = next((tmp_path / name / "lb").glob("*/detection*.md")).read_text()
        assert ("read channels-last" in header) is (name == "last")
    assert scores["first"].keys() == scores["last"].keys() == {"loss", "random"}
    for method in scores["first"]:
        np.testing.assert_array_equal(scores["first"][method], scores["last"][method])


def test_two_runs_at_once_on_one_store_both_finish_with_every_record_whole(tmp_path):
    args = [sys.executable, "-m", "bench", *BASE, "--seeds", "2", "--threads", "1", "--results", str(tmp_path / "res"),
            "--leaderboards", str(tmp_path / "lb")]
    runs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    records = list((tmp_path / "res").rglob("seed*.json"))
    assert len(records) == 2 * 2 * 2  # (scores, detection) x 2 methods x 2 seeds: none lost
    assert all(isinstance(json.loads(p.read_text()), dict) for p in records)
    assert not list((tmp_path / "res").rglob("*.tmp"))


def test_a_damaged_record_is_reported_and_computed_again(tmp_path, caplog):
    _run(tmp_path)
    res = tmp_path / "res"
    (record,) = res.glob("*/*/detection/*/loss/seed0.json")
    (scores,) = res.glob("*/*/scores/*/loss/seed0.npz")
    (dynamics,) = res.glob("*/*/_estimation/*/seed0/dynamics.npz")
    metrics = json.loads(record.read_text())["metrics"]
    for path in (record, scores, dynamics):
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    with caplog.at_level("WARNING", logger="bench"):
        _run(tmp_path)
    damaged = [m for m in caplog.messages if m.startswith("damaged record")]
    assert len(damaged) >= 3 and all("\n" not in m for m in damaged)
    assert json.loads(record.read_text())["metrics"] == pytest.approx(metrics)
    assert len(np.load(scores)["scores"]) > 0


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules a file imports, at any depth of its code: ``from a import b`` counts
    as importing the module ``a.b`` where that is one, else ``a``."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    parent = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parent
            for _ in range(max(0, node.level - 1)):
                base = base.rpartition(".")[0]
            source = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found |= {f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names}
    return found & modules


def test_no_import_circle():
    files = [*ROOT.glob("bench/**/*.py"), *ROOT.glob("methods/*.py")]
    names = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in files}
    graph = {name: _imports(path, set(names)) - {name} for name, path in names.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "import circle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    assert not any(m.startswith("methods") for m in set().union(*(graph[n] for n in graph if n.startswith("bench"))))


def test_report_names_stale_records_and_the_boards_it_cannot_refresh(tmp_path, caplog):
    """A record made by other code is left out and named under the table; a board none of whose
    records is current is left as it was, and ``report`` says which and how to refresh it."""
    _run(tmp_path)
    board = tmp_path / "lb" / "digits-epochs2" / "detection-seeds1-types-label-uniform.md"
    records = sorted((tmp_path / "res").glob("digits-epochs2/*/detection/*/*/seed*.json"))
    by_method = {json.loads(p.read_text())["method"]: p for p in records}

    def make_stale(path):
        record = json.loads(path.read_text())
        record["fingerprint"] = "made-by-other-code"
        path.write_text(json.dumps(record))

    make_stale(by_method["random"])
    assert main(["report", "--results", str(tmp_path / "res"), "--leaderboards", str(tmp_path / "lb")]) == 0
    text = board.read_text()
    assert "Left out, made by other code" in text and "`random`" in text.split("Left out")[1]
    make_stale(by_method["loss"])
    before = board.read_bytes()
    with caplog.at_level("WARNING"):
        assert main(["report", "--results", str(tmp_path / "res"), "--leaderboards", str(tmp_path / "lb")]) == 0
    assert board.read_bytes() == before
    assert any(board.name in m and "none of its 2 records is current" in m and "rerun `" in m for m in caplog.messages)
