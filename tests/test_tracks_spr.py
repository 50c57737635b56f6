"""Tracks S, P and R end to end on a tiny digits setting: records, resume, model
sharing between methods with identical hard sets, reports and plots."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.cli import parse_options
from bench.data import load_dataset
from bench.engine import Engine
from bench.recipes import RECIPES
from bench.registry import Method, get_method
from bench.store import Store
from bench.tracks import TRACKS, pathways, resampling, split
from compare_support import assert_compare_agrees_with_the_board


def _loss(ctx):
    return ctx.dynamics.loss.mean(axis=1)


def _engine(tmp_path, methods, pool_size=None, settings=None):
    data = load_dataset("digits")
    recipe = replace(RECIPES["digits"], model_kwargs={"hidden": [32]}, epochs=2)
    return Engine(data, recipe, methods, [0], torch.device("cpu"), Store(tmp_path / "results"),
                  settings=settings or SETTINGS, quiet=True, pool_size=pool_size)


def _models(tmp_path):
    return len(list((tmp_path / "results").glob("*/*/_protocol/**/*.npz")))


LOSS = Method("loss_a", _loss, True, frozenset({"dynamics"}))
LOSS_TWICE = Method("loss_b", lambda ctx: 2 * _loss(ctx) + 1, True, frozenset({"dynamics"}))  # same ranking
SETTINGS = {"pathways": pathways.Settings(protocol_seeds=2, ratios=(0.0, 0.5, 1.0)),
            "split": split.Settings(protocol_seeds=2),
            "resampling": resampling.Settings(protocol_seeds=2, alphas=(0.0, 1.0), fillers=("duplicate",),
                                              control_methods=None)}


def test_identical_hard_sets_share_models(tmp_path):
    engine = _engine(tmp_path / "one", [LOSS])
    engine.run_track(pathways)
    alone = _models(tmp_path / "one")
    assert alone == 5 * 2  # E0, E.5, H0, H.5, and r = 1 shared by E and H; 2 seeds
    engine = _engine(tmp_path / "two", [LOSS, LOSS_TWICE])
    engine.run_track(pathways)
    assert _models(tmp_path / "two") == alone  # the second method trained nothing new
    records = list(engine.store.records("pathways"))
    assert len(records) == 2 * 6 * 2
    a = {(r["config"]["pathway"], r["config"]["r"], r["seed"]): r["metrics"] for r in records if r["method"] == "loss_a"}
    b = {(r["config"]["pathway"], r["config"]["r"], r["seed"]): r["metrics"] for r in records if r["method"] == "loss_b"}
    assert a == b


def test_split_track(tmp_path):
    engine = _engine(tmp_path, [LOSS, get_method("random")])
    engine.run_track(split)
    records = list(engine.store.records("split"))
    assert len(records) == 2 * 2
    by = {(r["method"], r["seed"]): r["metrics"] for r in records}
    # the random split is method-independent: one baseline for both methods
    assert by[("loss_a", 1000)]["acc_random"] == by[("random", 1000)]["acc_random"]
    loss = by[("loss_a", 1000)]
    assert loss["swing"] == pytest.approx(100 * (loss["acc_easiest"] - loss["acc_hardest"]))
    assert loss["swing"] > 20  # the highest-loss fifth is much harder to predict than the lowest
    assert -1 <= loss["class_r"] <= 1
    trained = _models(tmp_path)
    assert trained == (1 + 2 + 2) * 2  # random once; hardest + easiest per method
    engine.run_track(split)  # resume: nothing left to do
    assert _models(tmp_path) == trained
    assert_compare_agrees_with_the_board(engine.store.root, split, records)
    report = split.report(records)
    assert "swing" in report.markdown and set(report.ranks) == {"loss_a", "random"}
    assert report.ranks["loss_a"] == 1.0
    assert all(name.endswith(".png") for name in report.plots)


def test_pathways_report(tmp_path):
    engine = _engine(tmp_path, [LOSS])
    engine.run_track(pathways)
    records = list(engine.store.records("pathways"))
    stats = pathways.summary(records)["loss_a"]
    by = {(r["config"]["pathway"], r["config"]["r"], r["seed"]): r["metrics"] for r in records}
    m = by[("E", 1.0, 1000)]
    assert stats["gap"][0] == pytest.approx(100 * (m["acc_easy"] - m["acc_hard"]))
    assert stats["hard_dep"][0] == pytest.approx(100 * (by[("H", 1.0, 1000)]["acc_hard"] - by[("H", 0.0, 1000)]["acc_hard"]))
    assert_compare_agrees_with_the_board(engine.store.root, pathways, records)
    report = pathways.report(records)
    assert "hard dep." in report.markdown and "r = 0.5" in report.markdown
    assert list(report.plots) == ["pathways_q0.1.png"]


def test_resampling_track(tmp_path):
    engine = _engine(tmp_path, [get_method("aum"), LOSS])
    engine.run_track(resampling)
    records = list(engine.store.records("resampling"))
    # (alpha 0, alpha 1 duplicate with hardness, permuted and inverse sizes) x methods x seeds
    assert len(records) == 4 * 2 * 2
    base = [r for r in records if r["config"]["alpha"] == 0]
    # alpha = 0 trains on the plain train split: the same models (recall) for every method
    assert len({tuple(r["recall"]) for r in base if r["seed"] == 1000}) == 1
    for r in records:
        assert sum(r["targets"]) == len(engine.dataset.y_train)
        assert r["metrics"]["recall_gap"] == pytest.approx(max(r["recall"]) - min(r["recall"]))
    table = resampling.compare(records)
    key = ("aum", 0.0, 1.0, "duplicate", "hardness")  # (method, prune, alpha, filler, assignment)
    assert key in table and "p_recall_gap" in table[key] and "p_perm_recall_gap" in table[key]
    assert_compare_agrees_with_the_board(engine.store.root, resampling, records)
    report = resampling.report(records)
    assert "p(gap)" in report.markdown and "resampling_recall.png" in report.plots


def test_tracks_registered_and_options():
    assert {"split", "pathways", "resampling"} <= set(TRACKS)
    opts = parse_options(["pathways.ratios=0,0.25,1", "pathways.protocol_seeds=10",
                          "resampling.fillers=smote,duplicate", "split.epochs=none"])
    assert opts == {"pathways": {"ratios": [0, 0.25, 1], "protocol_seeds": 10},
                    "resampling": {"fillers": ["smote", "duplicate"]}, "split": {"epochs": None}}
    settings = pathways.Settings.build(opts["pathways"])
    assert settings.ratios == (0.0, 0.25, 1.0) and settings.protocol_seeds == 10


def test_pool_size_keeps_a_stratified_subset_of_every_pool(tmp_path):
    engine = _engine(tmp_path, [LOSS], pool_size=500)
    pool = engine.pool("pooled")
    assert len(pool) == 500 and pool.key.startswith("pooled-n500-")
    counts = np.bincount(pool.y.numpy(), minlength=10)
    assert counts.min() >= 45 and counts.max() <= 55
    planted = engine.pool("train", ("label-uniform", 0.1), 0)  # planted pools are cut too
    assert len(planted) == 500 and "-n500-" in planted.key and planted.planted.sum() == 50


def test_curvbim_report_shows_the_reference():
    recipe = dict(RECIPES["curvbim"].to_dict())
    records = [{"dataset": "mnist", "method": "stragglers", "seed": s, "recipe": recipe, "protocol_recipe": recipe,
                "config": {"pathway": p, "r": r, "q": 0.1, "train_ratio": 0.9},
                "metrics": {"acc_hard": 0.3 + 0.01 * s, "acc_easy": 0.97, "acc_full": 0.92}}
               for p in ("E", "H") for r in (0.0, 0.25, 1.0) for s in (1000, 1001)]
    text = pathways.report(records).markdown
    assert "51.4 / 52.3 / 52.2" in text and "30.5 ± 6.4" in text
    for record in records:
        record["dataset"] = "digits"
    assert "reference" not in pathways.report(records).markdown


def test_every_protocol_seed_draws_its_own_split(tmp_path, monkeypatch):
    """Split, pathways and resampling redraw their split (subsets, resampled set) per protocol seed,
    so their intervals over protocol seeds cover the draw; the same seed always draws the same."""
    from bench.tracks.base import draw_seed
    from bench.tracks.resampling import study

    seen = {"split": [], "pathways": [], "resampling": []}

    def spy(track, function, position):
        def wrapped(*args, **kwargs):
            seen[track].append(args[position])
            return function(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(split, "stratified_test", spy("split", split.stratified_test, 2))
    monkeypatch.setattr(pathways, "pathway_sets", spy("pathways", pathways.pathway_sets, 5))
    monkeypatch.setattr(study, "prune_balanced", spy("resampling", study.prune_balanced, 2))
    engine = _engine(tmp_path, [LOSS])
    for track in (split, pathways, resampling):
        engine.run_track(track)
    expected = {draw_seed(0, 1000), draw_seed(0, 1001)}
    assert len(expected) == 2
    for track, draws in seen.items():
        assert set(draws) == expected, track
    a = pathways.pathway_sets(np.arange(200.0), np.arange(200) % 4, 0.2, 0.5, (1.0,), draw_seed(0, 1000))
    b = pathways.pathway_sets(np.arange(200.0), np.arange(200) % 4, 0.2, 0.5, (1.0,), draw_seed(0, 1001))
    assert len(a["hard_test"]) == len(b["hard_test"]) and not np.array_equal(a["hard_test"], b["hard_test"])
