"""The engine's contract: caches follow the code, `needs` is enforced, seeds never collide."""
import importlib
import inspect
import sys

import numpy as np
import pytest
import torch

from bench import fingerprint, registry
from bench.config import DatasetSpec, RunConfig, build_engine
from bench.context import MissingNeed
from bench.estimation import EARLY_STREAM, FOLD_STREAM, derived_seed
from bench.recipes import recipe_for

METHOD_SOURCE = '''
import numpy as np
from bench import register


@register(higher_is_harder=True, needs={{"dynamics"}}, family="test")
def edited(ctx):
    return ctx.dynamics.loss.mean(axis=1) * {factor}


@register(higher_is_harder=True, needs={{"dynamics"}}, family="test")
def untouched(ctx):
    return ctx.dynamics.loss.max(axis=1)


@register(higher_is_harder=True, needs=(), family="test")
def undeclared(ctx):
    return ctx.dynamics.loss.mean(axis=1)
'''


def _engine(results, methods, epochs=2):
    names = tuple(m.name for m in registry.select_methods(methods))
    return build_engine(RunConfig(DatasetSpec("digits"), recipe_for("digits", epochs=epochs), seeds=1, methods=names,
                                  device="cpu", results=str(results)))


@pytest.fixture
def test_methods(tmp_path, monkeypatch):
    module_dir = tmp_path / "plugins"
    module_dir.mkdir()
    monkeypatch.syspath_prepend(str(module_dir))

    def write(factor):
        (module_dir / "edited_methods.py").write_text(METHOD_SOURCE.format(factor=factor))
        sys.modules.pop("edited_methods", None)
        for name in ("edited", "untouched", "undeclared"):
            registry._METHODS.pop(name, None)
        importlib.invalidate_caches()
        importlib.import_module("edited_methods")

    write(1)
    yield write
    sys.modules.pop("edited_methods", None)


def _mtimes(results, pattern):
    return {p.relative_to(results): p.stat().st_mtime_ns for p in results.glob(pattern)}


def test_editing_a_method_rescores_that_method_only(tmp_path, test_methods):
    results = tmp_path / "res"
    engine = _engine(results, "edited,untouched,random")
    pool = engine.pool("train")
    first = engine.scores(pool, 0)
    before = _mtimes(results, "digits*/*/scores/*/*/seed0.npz")
    training = _mtimes(results, "digits*/*/_estimation/**/*")

    test_methods(3)  # the body of `edited` changes
    engine = _engine(results, "edited,untouched,random")
    second = engine.scores(pool, 0)
    after = _mtimes(results, "digits*/*/scores/*/*/seed0.npz")
    changed = {str(p.parent.name) for p in after if after[p] != before[p]}
    assert changed == {"edited"}
    np.testing.assert_allclose(second["edited"].natural, 3 * first["edited"].natural)
    assert _mtimes(results, "digits*/*/_estimation/**/*") == training  # nothing was retrained


def test_changing_the_training_code_retrains_and_rescores(tmp_path, test_methods, monkeypatch):
    results = tmp_path / "res"
    engine = _engine(results, "untouched,random")
    pool = engine.pool("train")
    engine.scores(pool, 0)
    meta = results.glob("digits*/*/_estimation/*/seed0/meta.json")
    meta = next(meta)
    trained_at = meta.stat().st_mtime_ns
    scores = _mtimes(results, "digits*/*/scores/*/*/seed0.npz")

    source = inspect.getsource

    def edited_trainer(obj):  # the trainer's source as if someone had edited bench/train.py
        text = source(obj)
        return text + "\n# edited\n" if getattr(obj, "__name__", "") == "bench.train" else text

    monkeypatch.setattr(fingerprint.inspect, "getsource", edited_trainer)
    fingerprint.module_fingerprint.cache_clear()
    try:
        engine = _engine(results, "untouched,random")
        engine.scores(pool, 0)
    finally:
        fingerprint.module_fingerprint.cache_clear()
    assert meta.stat().st_mtime_ns != trained_at
    after = _mtimes(results, "digits*/*/scores/*/*/seed0.npz")
    rescored = {p.parent.name for p in after if after[p] != scores[p]}
    assert rescored == {"untouched"}  # `random` reads no trained model: its scores stand


def test_a_track_fingerprint_follows_the_helpers_its_track_calls(monkeypatch):
    source = inspect.getsource

    def edited(name):  # the source of one function as if someone had edited it in its own module
        def getsource(obj):
            text = source(obj)
            return text + "\n# edited\n" if name and getattr(obj, "__qualname__", None) == name else text
        return getsource

    fingerprints = {}
    for name in (None, "detection_metrics", "prune_balanced"):  # unedited; bench/metrics.py; bench/resample.py
        monkeypatch.setattr(fingerprint.inspect, "getsource", edited(name))
        fingerprint.track_fingerprint.cache_clear()
        fingerprints[name] = {t: fingerprint.track_fingerprint(f"bench.tracks.{t}") for t in ("detection", "resampling")}
    fingerprint.track_fingerprint.cache_clear()
    assert fingerprints["detection_metrics"]["detection"] != fingerprints[None]["detection"]
    assert fingerprints["prune_balanced"]["resampling"] != fingerprints[None]["resampling"]
    assert fingerprints["prune_balanced"]["detection"] == fingerprints[None]["detection"]  # detection never prunes


def test_a_method_reading_an_undeclared_part_fails_even_beside_aum(tmp_path, test_methods):
    engine = _engine(tmp_path / "res", "aum,undeclared")
    results = engine.scores(engine.pool("train"), 0)
    assert results["aum"].status == "ok"  # aum made the dynamics exist...
    failed = results["undeclared"]
    assert failed.status == "failed"  # ...but `undeclared` did not declare them
    assert "MissingNeed" in failed.error and "ctx.dynamics" in failed.error and "'dynamics'" in failed.error


def test_missing_need_names_the_need(tmp_path):
    from methods_support import dynamics_from, make_context

    ctx = make_context(np.zeros((3, 2)), [0, 1, 0], 2, dynamics=dynamics_from(p_y=np.full((3, 2), 0.5)), needs=())
    with pytest.raises(MissingNeed, match="needs 'dynamics'"):
        ctx.dynamics
    with pytest.raises(MissingNeed, match="needs 'checkpoints'"):
        ctx.model_at(1)


def test_derived_seeds_do_not_collide():
    seeds = {derived_seed(stream, s, r, f) for stream in (FOLD_STREAM, EARLY_STREAM)
             for s in range(12) for r in range(12) for f in range(12)}
    assert len(seeds) == 2 * 12 ** 3
    assert all(0 <= s < 2 ** 31 for s in seeds)


def test_estimation_reports_the_models_quality(tmp_path):
    engine = _engine(tmp_path, "aum", epochs=10)
    engine.scores(engine.pool("train"), 0)
    quality = engine.estimator.quality(engine.pool("train"), 0)
    assert quality["test_accuracy"] > 0.9 and quality["final_train_accuracy"] > 0.9


def test_a_table_states_the_quality_of_the_estimation_runs_on_its_own_pools():
    from bench.leaderboard import _header

    board = {"dataset": "d", "dataset_fingerprint": "f", "pool_size": None, "recipe": recipe_for("digits").to_dict(),
             "track": "detection", "settings_changed": {}, "profile": "default",
             "provenance": {"command": "c", "commit": "x", "date": "now"}}
    quality = {("planted", 0): {"test_accuracy": 0.99, "final_train_accuracy": 0.9},
               ("planted", 1): {"test_accuracy": 0.97, "final_train_accuracy": 0.8},
               ("small", 0): {"test_accuracy": 0.5, "final_train_accuracy": 0.6}}
    record = {"dataset": "d", "seed": 0, "device": "cpu", "config": {}}
    own = _header("t", board, [{**record, "pool": "planted"}], quality)
    assert "estimation model (2 runs): clean test accuracy 98.0%, final training accuracy 85.0%" in own
    in_config = _header("t", board, [{**record, "config": {"pool": "small"}}], quality)
    assert "estimation model (1 run): clean test accuracy 50.0%, final training accuracy 60.0%" in in_config
    unnamed = _header("t", board, [record], quality)  # a track whose records name no pool: every run of the scope
    assert "estimation model (3 runs): clean test accuracy 82.0%" in unnamed
    quality[("pooled-n200-abc", 0)] = {"test_accuracy": 1.0, "final_train_accuracy": 1.0}
    pooled = _header("t", board, [{**record, "pool": "pooled-n200-abc"}], quality)  # trained on the test split too
    assert ("estimation model (1 run): final training accuracy 100.0% (a clean pass, against the labels it was given); "
            "no clean test accuracy: the pool holds the test split") in pooled
    assert "clean test accuracy 82.0% (3 of them)" in _header("t", board, [record], quality)
    assert "fold_repeats=3" in own and "label_smoothing=0" in own  # every recipe field


def test_early_runs_stop_at_the_early_epoch_with_the_full_schedule():
    from bench.data import load_dataset
    from bench.train import train

    data = load_dataset("digits")
    recipe = recipe_for("digits", epochs=10)
    stopped = train(recipe, data.x_train, data.y_train, 10, 0, record=False, stop_after=1)
    full = train(recipe, data.x_train, data.y_train, 10, 0, record=False, checkpoint_epochs=[1])
    for name, value in stopped.model.state_dict().items():
        torch.testing.assert_close(value, full.checkpoints[1][name])


def test_the_ensemble_part_trains_k_minus_one_more_full_runs(tmp_path):
    """K = recipe.early_runs networks: the estimation run and K - 1 more from fresh seeds, trained
    to the end; the ensemble's first member is the estimation run itself."""
    from bench.data import load_dataset
    from bench.estimation import Estimator, parts_for
    from bench.store import Store

    assert parts_for({"ensemble"}) == ["run", "ensemble"]
    recipe = recipe_for("digits", epochs=3, early_runs=3)
    estimator = Estimator(load_dataset("digits"), recipe, torch.device("cpu"), Store(tmp_path))
    pool = estimator.pool("train")
    run = estimator.run(pool, 0)
    ensemble = run.ensemble
    n = len(pool)
    assert ensemble.aum.shape == (3, n) and tuple(ensemble.final_logits.shape) == (3, n, 10)
    np.testing.assert_allclose(ensemble.aum[0], run.part("dynamics").margin.mean(axis=1))
    torch.testing.assert_close(ensemble.final_logits[0], run.final_logits)
    assert not np.allclose(ensemble.aum[1], ensemble.aum[2])  # fresh, distinct initialisations
    assert estimator.is_ready(pool, 0, "ensemble")


def test_recorded_runs_never_use_bf16_autocast():
    """On CUDA, the runs whose logits methods read are fp32; only unrecorded runs use bf16."""
    from bench.train import bf16_autocast

    assert bf16_autocast(torch.device("cuda"), recorded=False)
    assert not bf16_autocast(torch.device("cuda"), recorded=True)
    assert not bf16_autocast(torch.device("cpu"), recorded=False)
