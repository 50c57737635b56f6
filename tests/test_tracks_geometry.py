"""Track G: the exact ground truth on hand-made networks, the ReLU check, packing, and the
track end to end on moons through the CLI (records, leaderboard, plots), digits skipped."""
import contextlib
import io
import json
import logging

import numpy as np
import pytest
import torch
from methods_support import run_cli_in_process, single_thread
from torch import nn

from bench.cli import main
from bench.errors import UsageError
from bench.metrics import agreement_metrics
from bench.recipes import RECIPES, Recipe
from bench.tracks import TRACKS
from bench.tracks import geometry as track
from compare_support import assert_compare_agrees_with_the_board


def _linear_net(weight, bias) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        net[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return net


def test_ground_truth_is_minus_the_signed_distance_to_the_boundary():
    """Logits (x, -x): class 0 wins for x > 0, the boundary is the line x = 0."""
    net = _linear_net([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.0])
    points = np.array([[0.5, 0.0], [-1.0, 1.0], [1.5, -1.0], [-0.25, 0.5]])
    labels = np.array([0, 1, 1, 0])  # correct, correct, wrong, wrong
    truth = track.ground_truth(net, points, labels, (-3.0, 3.0, -3.0, 3.0))
    np.testing.assert_allclose(truth["hardness"], [-0.5, -1.0, 1.5, 0.25], atol=1e-12)
    facts = truth["facts"]
    assert facts["regions"] == 1 and facts["regions_per_layer"] == [] and facts["boundary_segments"] == 1
    assert facts["boundary_length"] == pytest.approx(6.0) and facts["misclassified"] == 0.5
    assert facts["certified"] == 1.0  # every point is nearer the boundary than the box border
    assert track.ground_truth(net, points, labels, (1.0, 3.0, -3.0, 3.0)) is None  # no boundary in that box


def test_certified_share_counts_points_nearer_the_border_than_the_boundary():
    net = _linear_net([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.0])
    points = np.array([[2.9, 0.0], [0.1, 0.0]])  # 0.1 from the border but 2.9 from the boundary; then 0.1 from both
    truth = track.ground_truth(net, points, np.array([0, 0]), (-3.0, 3.0, -3.0, 3.0))
    assert truth["facts"]["certified"] == 0.5


def test_metrics_against_the_ground_truth():
    rng = np.random.default_rng(0)
    hardness = rng.normal(size=200)
    perfect = agreement_metrics(hardness, hardness, 0.1)
    assert perfect == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "auprc": pytest.approx(1.0),
                       "baseline": 0.1}
    reverse = agreement_metrics(-hardness, hardness, 0.1)
    assert reverse["spearman"] == pytest.approx(-1.0) and reverse["auprc"] < 0.1  # never flipped


def test_check_relu_mlp():
    track.check_relu_mlp(RECIPES["moons"])
    track.check_relu_mlp(RECIPES["skelex"], 3)
    for recipe in (RECIPES["curvbim"], Recipe(model="mlp", model_kwargs={"activation": "gelu"}), Recipe(model="cnn")):
        with pytest.raises(UsageError, match="needs a ReLU MLP") as error:
            track.check_relu_mlp(recipe)
        assert "\n" not in str(error.value)


def test_recipes_and_datasets_for_the_track():
    from bench.data import load_dataset

    assert RECIPES["skelex"].model_kwargs == {"hidden": [25, 5]}
    for name in ("moons", "spirals", "blobs2d", "spirals3"):
        assert RECIPES[name].model == "mlp" and "activation" not in RECIPES[name].model_kwargs
    data = load_dataset("spirals3")
    assert data.key == "spirals3" and data.num_classes == 3 and data.input_shape == (2,)
    assert "geometry" in TRACKS


def test_pack_and_network_from_layers_are_exact():
    rng = np.random.default_rng(1)
    layers = [(rng.normal(size=(5, 2)), rng.normal(size=5)), (rng.normal(size=(3, 5)).astype(np.float32), np.zeros(3))]
    packed = json.loads(json.dumps([[track.pack(w), track.pack(b)] for w, b in layers]))
    assert packed[1][0]["dtype"] == "<f4" and packed[0][0]["dtype"] == "<f8"  # float32-exact values stored as float32
    restored = [(track.unpack(w), track.unpack(b)) for w, b in packed]
    from bench.relu_geometry import network_layers

    for (w, b), (w2, b2) in zip(layers, network_layers(track.network_from_layers(restored))):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)


METHODS = "aum,random,loss,margin_final"


def _records(root, dataset="moons"):
    paths = sorted(root.glob(f"{dataset}*/*/geometry/*/*/seed*.json"))
    return [json.loads(p.read_text()) for p in paths if p.parent.name != track.NETWORK]


def test_moons_end_to_end(tmp_path):
    results, boards = tmp_path / "results", tmp_path / "leaderboards"
    with single_thread():
        run_cli_in_process("run", "--dataset", "moons", "--tracks", "geometry", "--methods", METHODS,
                           "--seeds", "2", "--epochs", "15", "--results", str(results), "--leaderboards", str(boards),
                           "--quiet")
    records = _records(results)
    assert sorted({(r["method"], r["seed"]) for r in records}) == [
        (m, s) for m in ("aum", "loss", "margin_final", "random") for s in (0, 1)]
    for record in records:
        assert {"spearman", "auprc", "baseline"} <= set(record["metrics"])
        assert record["geometry"]["regions"] > 1 and record["geometry"]["boundary_length"] > 0
        assert ("hard_set" in record) == (record["seed"] == 0) and "drawing" not in record
    (network,) = results.glob(f"moons*/*/geometry/*/{track.NETWORK}/seed0.json")  # the track's own record
    assert "drawing" in json.loads(network.read_text())
    sizes = [p.stat().st_size for p in results.glob("moons*/*/geometry/*/*/seed*.json")]
    assert max(sizes) < 200_000
    assert_compare_agrees_with_the_board(results, track, records)
    rho = {(r["method"], r["seed"]): r["metrics"]["spearman"] for r in records}
    assert all(abs(rho[("random", s)]) < 0.2 for s in (0, 1))
    assert all(rho[(m, s)] > 0.5 for m in ("aum", "margin_final") for s in (0, 1))
    folder = boards / "moons-epochs15"
    text = (folder / "geometry-seeds2.md").read_text()
    assert "| aum" in text and "regions per layer" in text and "certified" in text
    pngs = {p.name.split("_train")[0] for p in folder.glob("geometry*.png")}
    assert pngs == {"geometry-seeds2_hard_sets", "geometry-seeds2_regions", "geometry-seeds2_regions_per_layer"}
    assert f"![{next(folder.glob('geometry-seeds2_hard_sets*.png')).name}]" in text
    assert json.loads((folder / "geometry-seeds2.ranks.json").read_text())["ranks"]["random"] == 4.0
    without = track.report(records)  # no _network record: tables and the layer plot only
    assert "No current `_network` record" in without.markdown and len(without.plots) == 1
    import matplotlib.pyplot as plt

    plt.close(next(iter(without.plots.values())))
    ambiguous = track.report([{**r, "method": "variability"} for r in records if r["method"] == "aum"])
    assert "as above" in ambiguous.markdown and not ambiguous.plots  # the leaderboard's second table
    stamps = {p: p.stat().st_mtime_ns for p in results.glob("moons*/*/geometry/*/*/seed*.json")}
    with single_thread():  # a rerun finds every record done and writes none
        run_cli_in_process("run", "--dataset", "moons", "--tracks", "geometry", "--methods", METHODS,
                           "--seeds", "2", "--epochs", "15", "--results", str(results), "--no-report", "--quiet")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_non_relu_recipe_is_one_line_error(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--dataset", "moons", "--recipe", "curvbim", "--tracks", "geometry", "--methods", "random",
                     "--seeds", "1", "--results", str(tmp_path / "r"), "--leaderboards", str(tmp_path / "l")])
    assert code == 2
    assert err.getvalue().count("\n") == 1 and "needs a ReLU MLP" in err.getvalue()
    assert not (tmp_path / "r").exists()  # refused before any training


def test_digits_is_skipped_with_one_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="bench"):
        run_cli_in_process("run", "--dataset", "digits", "--tracks", "geometry", "--methods", "random", "--seeds", "1",
                           "--results", str(tmp_path / "r"), "--leaderboards", str(tmp_path / "l"), "--quiet")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "2-D data only" in lines[0]
    assert not list((tmp_path / "r").glob("**/geometry/**/*.json"))
