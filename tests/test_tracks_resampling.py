"""Track R's settings, metrics, comparisons and report text on hand-made records, and the
pruning case study end to end on a tiny digits setting."""
from dataclasses import replace

import numpy as np
import pytest

from bench.errors import UsageError
from bench.metrics import holm
from scipy.stats import ttest_rel

from bench.tracks import resampling
from bench.config import PROFILES
from bench.tracks.resampling import METRICS, Settings, class_metrics, compare, configs, findings, options, report, setting

EVERY_CONTROL = {"control_alphas": None, "control_fillers": None, "control_methods": None}


def _opts(**over):
    return options(Settings.build(EVERY_CONTROL, over))


def _profile(name):
    return options(Settings.build(PROFILES[name].get("resampling", {})))


def _settings(opts):
    return [setting(c) for c in configs(opts)]


def test_default_configs_run_every_control_for_every_alpha():
    got = _settings(_opts())
    assert got[0] == (0.0, 0.0, "none", "hardness")
    assert len(got) == 1 + 2 * 2 * 3  # alpha 0; alphas 1, 3 x fillers duplicate, smote x 3 assignments
    assert {a for *_, a in got} == {"hardness", "permuted", "inverse"}


def test_profiles_restrict_the_controls():
    default = _profile("default")
    controls = [s for s in _settings(default) if s[3] != "hardness"]
    assert controls == [(0.0, 1.0, "duplicate", "permuted"), (0.0, 1.0, "duplicate", "inverse")]
    assert [setting(c) for c in configs(default, "aum")] == _settings(default)
    assert all(setting(c)[3] == "hardness" for c in configs(default, "el2n"))  # controls for two methods only
    smoke = _profile("smoke")
    assert [setting(c) for c in configs(smoke, "loss")] == [
        (0.0, 0.0, "none", "hardness"), (0.0, 1.0, "duplicate", "hardness"), (0.0, 1.0, "duplicate", "permuted")]
    full = _settings(_profile("full"))
    assert (0.5, 3.0, "holdout", "inverse") in full and not any(s[2] == "holdout" and s[0] == 0 for s in full)


def test_config_keys_appear_only_where_not_the_default():
    cfgs = configs(_opts(alphas=[0, 1], fillers=["duplicate", "holdout"], prune=0.5, controls=["permuted"]))
    shared = {"split_seed": 0, "epochs": None}  # the settings every record's key holds
    assert {"alpha": 0.0, "filler": "none", "keep": "hardest", **shared} in cfgs
    assert {"alpha": 1.0, "filler": "duplicate", "keep": "hardest", "assignment": "permuted", **shared} in cfgs
    assert {"alpha": 0.0, "filler": "none", "keep": "hardest", "prune": 0.5, **shared} in cfgs
    assert {"alpha": 1.0, "filler": "holdout", "keep": "hardest", "prune": 0.5, **shared} in cfgs
    assert not any(c["filler"] == "holdout" and "prune" not in c for c in cfgs)


def test_option_values_from_the_command_line():
    opts = _opts(prune=0.5, fillers="duplicate", controls="none", control_alphas=1)
    assert opts["prune"] == [0.5] and opts["fillers"] == ["duplicate"] and opts["controls"] == []
    assert opts["control_alphas"] == [1.0] and opts["control_fillers"] is None


def test_bad_settings_are_refused_clearly():
    with pytest.raises(UsageError, match="holdout.*prun"):
        Settings.build({"fillers": ["duplicate", "holdout"]}).validate()
    with pytest.raises(UsageError, match=r"The 'fillers' parameter of resampling must be a subset of "
                                         r"\{duplicate, smote, holdout\}. Got 'smot' instead."):
        Settings.build({"fillers": "smot"}).validate()
    with pytest.raises(UsageError, match="renamed: use resampling.protocol_seeds"):
        Settings.build({"seeds": 2})
    with pytest.raises(UsageError, match=r"The 'prune' parameter of resampling must lie in \(0.0, 1.0\). Got 1.5"):
        Settings.build({"prune": [1.5]}).validate()
    with pytest.raises(UsageError, match="The 'controls' parameter of resampling must be a subset of "
                                         "{permuted, inverse}. Got 'reversed' instead."):
        Settings.build({"controls": ["reversed"]}).validate()


def test_class_metrics_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 1])
    hard = np.array([False, False, True])
    m, recall, precision = class_metrics(pred, y, 3, hard)
    assert set(m) == set(METRICS)
    # recall .75 .6667 0; precision .75 .3333 0
    assert m["recall_gap"] == pytest.approx(0.75) and m["worst_recall"] == 0
    assert m["mean_precision"] == pytest.approx((0.75 + 1 / 3) / 3)
    assert m["hard_easy"] == pytest.approx((0.75 + 2 / 3) / 2)
    assert m["precision_hard_easy"] == pytest.approx((0.75 + 1 / 3) / 2)
    assert m["recall_quant_diff"] == pytest.approx(0.75)  # k = 1 for 3 classes
    mean = (0.75 + 2 / 3) / 3
    assert m["recall_mad"] == pytest.approx(np.mean(np.abs(recall - mean)))


SEEDS = (1000, 1001, 1002)
GAPS = {(0.0, 0.0, "none", "hardness"): [0.10, 0.12, 0.14], (0.0, 1.0, "duplicate", "hardness"): [0.05, 0.06, 0.08],
        (0.0, 1.0, "duplicate", "permuted"): [0.09, 0.12, 0.13], (0.0, 1.0, "duplicate", "inverse"): [0.2, 0.2, 0.3],
        (0.5, 0.0, "none", "hardness"): [0.2, 0.2, 0.25], (0.5, 1.0, "holdout", "hardness"): [0.1, 0.15, 0.2]}


def _records():
    records = []
    for (prune, alpha, filler, assignment), gaps in GAPS.items():
        config = {"alpha": alpha, "filler": filler, "keep": "hardest", **({"prune": prune} if prune else {}),
                  **({"assignment": assignment} if assignment != "hardness" else {})}
        for seed, gap in zip(SEEDS, gaps):
            metrics = {k: 0.9 for k in METRICS}
            metrics.update(recall_gap=gap, precision_gap=gap / 2, mean_recall=0.9 - gap / 10)
            recall = np.linspace(0.9, 0.9 - gap, 4)
            records.append({"dataset": "toy", "method": "m", "seed": seed, "config": config, "metrics": metrics,
                            "recall": recall.tolist(), "class_hardness": [1.0, 2.0, 3.0, 4.0],
                            "higher_is_harder": True, "train_size": 100 if prune else 200,
                            "duplicated": [3, 0, 0, 0] if filler == "holdout" else [0, 0, 0, 0]})
    return records


def test_compare_pairs_against_alpha_zero_and_permuted():
    table = compare(_records())
    hardness = table[("m", 0.0, 1.0, "duplicate", "hardness")]
    base, perm = GAPS[(0.0, 0.0, "none", "hardness")], GAPS[(0.0, 1.0, "duplicate", "permuted")]
    ours = GAPS[(0.0, 1.0, "duplicate", "hardness")]
    assert hardness["praw_recall_gap"] == pytest.approx(ttest_rel(ours, base).pvalue)
    assert hardness["praw_perm_recall_gap"] == pytest.approx(ttest_rel(ours, perm).pvalue)
    family = [e["praw_recall_gap"] for e in table.values() if "praw_recall_gap" in e]  # Holm over the comparison
    assert hardness["p_recall_gap"] == pytest.approx(holm(family)[family.index(hardness["praw_recall_gap"])])
    assert hardness["p_recall_gap"] >= hardness["praw_recall_gap"]
    assert "p_perm_recall_gap" not in table[("m", 0.0, 1.0, "duplicate", "permuted")]
    pruned = table[("m", 0.5, 1.0, "holdout", "hardness")]  # against the pruned alpha = 0, not the full one
    assert pruned["delta_recall_gap"] == pytest.approx([-0.1, -0.05, -0.05])
    assert np.isnan(hardness["p_mean_precision"])  # constant metric: no test


def test_findings_are_the_numbers_of_the_table():
    records = _records()
    table = compare(records)
    text = findings(table, records, ["m"])
    base, ours = np.array(GAPS[(0.0, 0.0, "none", "hardness")]), np.array(GAPS[(0.0, 1.0, "duplicate", "hardness")])
    change = 100 * (ours - base).mean() / base.mean()
    p = table[("m", 0.0, 1.0, "duplicate", "hardness")]["p_recall_gap"]  # Holm-corrected over the 4 such tests
    assert f"α = 1 (duplicate) changes the recall gap by {change:+.1f}% (p_Holm = {p:.3f} of 4 tests)" in text
    perm = np.array(GAPS[(0.0, 1.0, "duplicate", "permuted")])
    assert f"the permuted control by {100 * (perm - base).mean() / base.mean():+.1f}%" in text
    assert "smaller recall gap than the same sizes permuted for 1 of 1 methods" in text
    assert "Pruning 50% of the train split" in text and "needed up to 3 duplicates (at α = 1)" in text
    out = report(records)
    assert "**What we found.** " + text in out.markdown
    for section in ("### Recall", "### Precision", "### Controls", "### Case study 1"):
        assert section in out.markdown
    assert "p(q-diff)" in out.markdown and "p(hard. vs perm.)" in out.markdown
    assert list(out.plots) == ["resampling_recall.png"]


def test_pruning_case_study_end_to_end(tmp_path):
    import torch

    from bench.data import load_dataset
    from bench.engine import Engine
    from bench.recipes import RECIPES
    from bench.registry import get_method
    from bench.resample import prune_balanced
    from bench.store import Store

    data = load_dataset("digits")
    recipe = replace(RECIPES["digits"], model_kwargs={"hidden": [32]}, epochs=2)
    settings = Settings.build({"protocol_seeds": 2, "alphas": [0, 3], "fillers": ["holdout", "duplicate"],
                               "prune": 0.5, "controls": "permuted", "control_fillers": "holdout", "control_alphas": None,
                               "control_methods": None})
    engine = Engine(data, recipe, [get_method("loss")], [0], torch.device("cpu"), Store(tmp_path / "results"),
                    settings={"resampling": settings}, quiet=True)
    engine.run_track(resampling)
    records = list(engine.store.records("resampling"))
    # unpruned: alpha 0, alpha 3 duplicate; pruned: alpha 0, holdout (hardness, permuted), duplicate; x 2 seeds
    assert len(records) == 6 * 2
    y = data.y_train.numpy()
    kept, _ = prune_balanced(y, 0.5, 0, data.num_classes)
    for r in records:
        size = len(kept) if r["config"].get("prune") else len(y)
        assert sum(r["targets"]) == size and r["train_size"] == size
        assert set(r["metrics"]) >= set(METRICS) and len(r["precision"]) == data.num_classes
    holdout = [r for r in records if r["config"]["filler"] == "holdout"]
    assert holdout and all(len(r["duplicated"]) == data.num_classes for r in holdout)
    text = report(records).markdown
    assert "Case study 1" in text and "holdout" in text
    engine.run_track(resampling)  # resume: every record is there
    assert len(list(engine.store.records("resampling"))) == len(records)


def test_degenerate_sizes_are_named_with_their_cause():
    def record(method, targets, hardness, higher_is_harder, alpha=1.0):
        return {"method": method, "config": {"alpha": alpha, "filler": "duplicate", "keep": "hardest"},
                "targets": targets, "class_hardness": hardness, "higher_is_harder": higher_is_harder}

    shifted = record("aum", [1, 1, 998], [2.0, 1.0, -0.2], False)  # lower = harder, one class mean below 0
    stretched = record("loss", [100, 100, 800], [0.1, 0.2, 0.9], True, alpha=3.0)
    balanced = record("el2n", [300, 300, 400], [0.1, 0.2, 0.3], True)
    text = resampling.degenerate_sizes([shifted, stretched, balanced])
    assert "`aum` (α = 1) gives class 2 up to 99.8% of the training set: its class hardness is negative" in text
    assert "`loss` (α = 3) gives class 2 up to 80.0%" in text and "el2n" not in text
    assert resampling.degenerate_sizes([balanced]) == ""
