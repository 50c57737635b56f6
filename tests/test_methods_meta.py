"""The methods meta-measures track: stability, agreement, cost, and its report."""
import numpy as np
import pytest
import torch

from bench.data import make_blobs
from bench.engine import Engine
from bench.recipes import Recipe
from bench.registry import select_methods
from bench.store import Store
from bench.tracks import TRACKS, meta
from compare_support import assert_compare_agrees_with_the_board
from methods_support import single_thread


def test_stability_of_identical_seeds_is_perfect_and_of_noise_is_not():
    rng = np.random.default_rng(0)
    same = rng.random(500)
    perfect = meta.stability({0: same, 1: same, 2: same})
    assert perfect["rho"] == pytest.approx(1.0) and perfect["jaccard"] == 1.0
    assert perfect["halves"] == [[0], [1]]  # equal halves: the odd seed out
    assert perfect["pair_rho"] == pytest.approx({"0-1": 1.0, "0-2": 1.0, "1-2": 1.0})
    noise = meta.stability({s: rng.random(500) for s in range(4)})
    assert abs(noise["rho"]) < 0.2 and noise["jaccard"] < 0.3
    assert meta.stability({0: same}) is None


def test_stability_uses_the_means_of_the_halves():
    base = np.arange(100.0)
    # seeds 0 and 2 are noisy copies whose mean is exactly `base`; so are 1 and 3
    wiggle = np.tile([5.0, -5.0], 50)
    result = meta.stability({0: base + wiggle, 1: base + 2 * wiggle, 2: base - wiggle, 3: base - 2 * wiggle})
    assert result["halves"] == [[0, 2], [1, 3]] and result["rho"] == pytest.approx(1.0)


def test_agreement_of_a_method_with_its_negation():
    rng = np.random.default_rng(1)
    s = rng.random(200)
    table = meta.agreement({"a": s, "minus_a": -s, "b": rng.random(200)})
    assert table["a"]["minus_a"]["spearman"] == pytest.approx(-1.0)
    assert table["a"]["minus_a"]["jaccard"] == 0.0
    assert table["a"]["a"]["jaccard"] == 1.0 and table["a"]["a"]["spearman"] == pytest.approx(1.0)
    assert table["b"]["a"]["spearman"] == table["a"]["b"]["spearman"]
    two = meta.agreement({"a": s, "minus_a": -s})
    assert two["minus_a"]["a"]["spearman"] == pytest.approx(-1.0)


def test_track_is_registered():
    assert TRACKS["meta"] is meta


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory):
    data = make_blobs(n=300, dim=4, classes=3)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [16]}, epochs=4, batch_size=64, checkpoints=2)
    engine = Engine(data, recipe, select_methods("loss,aum,random"), [0, 1, 2], torch.device("cpu"),
                    Store(tmp_path_factory.mktemp("results")), quiet=True)
    with single_thread():
        engine.run_track(meta)
    return engine


def test_run_writes_a_record_per_method_and_seed(meta_run):
    records = list(meta_run.store.records("meta"))
    assert sorted((r["method"], r["seed"]) for r in records) == sorted(
        (m, s) for m in ("aum", "loss", "random") for s in (0, 1, 2))
    loss = next(r for r in records if r["method"] == "loss")
    assert loss["metrics"]["total_s"] == pytest.approx(loss["metrics"]["scoring_s"] + loss["metrics"]["shared_s"])
    assert loss["metrics"]["shared_s"] > 0  # it needed the estimation run
    assert loss["stability"]["rho"] > 0.5  # the same data, three trainings: loss is stable
    assert abs(next(r for r in records if r["method"] == "random")["stability"]["rho"]) < 0.3
    assert loss["agreement"]["aum"]["spearman"] > 0.5  # high loss goes with low margin: both oriented


def test_compare_ranks_what_the_stability_verdict_ranks(meta_run):
    assert_compare_agrees_with_the_board(meta_run.store.root, meta, list(meta_run.store.records("meta")))


def test_report_tables_ranks_and_heatmap(meta_run):
    report = meta.report(list(meta_run.store.records("meta")))
    assert "stability ρ" in report.markdown and "Jaccard" in report.markdown
    assert report.ranks["random"] == 3.0 and set(report.ranks) == {"aum", "loss", "random"}
    assert set(report.plots) == {"meta_agreement.png"}
    import matplotlib.pyplot as plt

    plt.close(report.plots["meta_agreement.png"])


def test_tied_scores_do_not_agree_by_construction():
    # 50 clear hard samples and 950 ties: H(0.1) takes 100, so 50 of them come from the ties,
    # and two halves must not pick the same tied samples just because they share a tie order
    scores = np.zeros(1000)
    scores[:50] = 1.0
    result = meta.stability({0: scores, 1: scores})
    assert result["rho"] == pytest.approx(1.0)
    assert 0.3 < result["jaccard"] < 0.6
    assert meta.agreement({"a": scores, "b": scores.copy(), "c": -scores})["a"]["b"]["jaccard"] < 0.6
