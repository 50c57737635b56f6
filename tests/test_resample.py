"""Track R's class-size formula and resampler, on hand-computed cases."""
import numpy as np
import pytest

from bench.resample import (assign_sizes, class_hardness, class_recall_precision, class_targets, confusion,
                            holdout_fill, largest_remainder, mad, prune_balanced, quant_diff, quant_k, resample, spread)


def test_proportional_to_hardness():
    # r = h (higher = harder): shares .1 .2 .3 .4 of 100
    assert class_targets(np.array([1.0, 2.0, 3.0, 4.0]), 100).tolist() == [10, 20, 30, 40]


def test_higher_is_easier_uses_inverse():
    # AUM-like, all positive: r = 1/h = 1, .5, .25; sum 1.75 -> 400, 200, 100
    assert class_targets(np.array([1.0, 2.0, 4.0]), 700, higher_is_harder=False).tolist() == [400, 200, 100]


def test_rounding_keeps_the_total():
    # plain rounding gives 33 + 33 + 33 = 99; largest remainder gives the lost sample to class 0
    assert class_targets(np.array([1.0, 1.0, 1.0]), 100).tolist() == [34, 33, 33]
    assert largest_remainder(np.array([0.5, 1.7, 2.8]), 5).tolist() == [0, 2, 3]
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, n = rng.uniform(0.1, 5, size=7), int(rng.integers(50, 5000))
        assert class_targets(h, n).sum() == n


def test_negative_aum_is_shifted_then_inverted():
    # h = -1, 1, 3 -> + (1 + 1e-4) -> 1e-4, 2.0001, 4.0001; r = 1/h -> 10000, .499975, .249994
    # shares of 1000: 999.925, 0.0500, 0.0250 -> largest remainder 1000, 0, 0
    # clip to >= 1: 1000, 1, 1 (total 1002) -> rescale the part above 1 to 997: 998, 1, 1
    assert class_targets(np.array([-1.0, 1.0, 3.0]), 1000, higher_is_harder=False).tolist() == [998, 1, 1]


def test_alpha_amplifies_around_the_mean():
    # alpha = 1: 10, 20, 30, 40; m = int(25) = 25; d = -15, -5, 5, 15; 3|d| = 45, 15, 15, 45
    # -> -20, 10, 40, 70 -> clip 1, 10, 40, 70 (total 121)
    # -> 1 + LR((0, 9, 39, 69) * 96 / 117 = 0, 7.385, 32, 56.615; total 96) = 1 + (0, 7, 32, 57)
    assert class_targets(np.array([1.0, 2.0, 3.0, 4.0]), 100, alpha=3).tolist() == [1, 8, 33, 58]
    # without clipping: 2 classes, 40/60 of 100, m = 50, d = -10, 10 -> 50 -/+ 30 = 20, 80 (total kept)
    assert class_targets(np.array([2.0, 3.0]), 100, alpha=3).tolist() == [20, 80]
    # int() truncation: 3 classes (n = 100): 17, 33, 50 -> m = 33; d = -16, 0, 17; 1.5|d| = 24, 0, 25.5 -> 25
    # -> 9, 33, 58 (total 100)
    assert class_targets(np.array([1.0, 2.0, 3.0]), 100).tolist() == [17, 33, 50]
    assert class_targets(np.array([1.0, 2.0, 3.0]), 100, alpha=1.5).tolist() == [9, 33, 58]


def test_class_hardness_is_the_class_mean():
    y = np.array([0, 0, 1, 1, 1])
    assert class_hardness(np.array([1.0, 3.0, 0.0, 3.0, 6.0]), y, 3).tolist() == [2.0, 3.0, 0.0]


def _pool():
    y = np.repeat([0, 1, 2], [10, 20, 30])
    scores = np.arange(60, dtype=float)[::-1].copy()  # lower index = harder
    return y, scores


def test_undersampling_keeps_the_hardest_and_duplicate_fills():
    y, scores = _pool()
    targets = np.array([25, 20, 15])
    rows, ex, ey, duplicated = resample(y, scores, targets, "duplicate", seed=0)
    assert ex is None and ey is None and not duplicated.any()
    assert np.bincount(y[rows], minlength=3).tolist() == [25, 20, 15]
    class2 = rows[y[rows] == 2]
    assert sorted(class2.tolist()) == list(range(30, 45))  # the 15 highest scores of class 2
    class0 = rows[y[rows] == 0]
    assert set(range(10)) <= set(class0.tolist())  # every original kept, 15 copies added
    assert len(class0) == 25 and set(class0.tolist()) <= set(range(10))


def test_keep_random_and_smote():
    y, scores = _pool()
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    rows, ex, ey, _ = resample(y, scores, np.array([25, 20, 15]), "smote", seed=0, keep="random", x_flat=x)
    assert np.bincount(y[rows], minlength=3).tolist() == [10, 20, 15]
    assert ex.shape == (15, 4) and (ey == 0).all()
    # synthetic samples lie between class-0 samples: inside the class's bounding box
    lo, hi = x[y == 0].min(0), x[y == 0].max(0)
    assert ((ex >= lo - 1e-6) & (ex <= hi + 1e-6)).all()
    again = resample(y, scores, np.array([25, 20, 15]), "smote", seed=0, keep="random", x_flat=x)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], ex)


def test_bad_filler():
    y, scores = _pool()
    with pytest.raises(ValueError, match="unknown filler"):
        resample(y, scores, np.array([10, 20, 30]), "mixup", seed=0)


def test_resample_within_a_subset_uses_only_its_rows():
    y, scores = _pool()
    subset = np.array([0, 1, 2, 3, 10, 11, 12, 13, 14, 30, 31, 32, 33, 34, 35])
    rows, _, _, _ = resample(y, scores, np.array([6, 5, 4]), "duplicate", seed=3, subset=subset)
    assert set(rows.tolist()) <= set(subset.tolist())
    assert np.bincount(y[rows], minlength=3).tolist() == [6, 5, 4]
    assert sorted(rows[y[rows] == 2].tolist()) == [30, 31, 32, 33]  # the 4 hardest of class 2's six


def _split():
    """A train pool of 3 classes (rows 0..59) and a test split of rows 60..89 outside it."""
    y = np.repeat([0, 1, 2], [20, 20, 20])
    test_rows = np.arange(60, 90)
    return y, test_rows


def test_holdout_never_reuses_a_sample_nor_touches_the_test_split():
    y, test_rows = _split()
    scores = np.random.default_rng(0).normal(size=60)
    for seed in range(20):
        kept, pruned = prune_balanced(y, 0.5, seed, 3)
        targets = np.array([18, 8, 4])  # class 0 needs 8 of its 10 pruned samples
        rows, _, _, duplicated = resample(y, scores, targets, "holdout", seed, subset=kept, reserve=pruned)
        assert np.bincount(y[rows], minlength=3).tolist() == [18, 8, 4]
        assert len(np.unique(rows)) == len(rows) and not duplicated.any()  # no sample twice
        assert set(rows.tolist()) <= set(kept.tolist()) | set(pruned.tolist())
        assert not np.isin(rows, test_rows).any() and rows.max() < 60
        fill = np.setdiff1d(rows, kept)
        assert set(fill.tolist()) <= set(pruned.tolist()) and (y[fill] == 0).all() and len(fill) == 8


def test_holdout_falls_back_to_duplicates_and_counts_them():
    y, _ = _split()
    kept, pruned = prune_balanced(y, 0.5, 0, 3)
    rows, _, _, duplicated = resample(y, np.zeros(60), np.array([25, 3, 2]), "holdout", 1, subset=kept, reserve=pruned)
    assert duplicated.tolist() == [5, 0, 0]  # 10 kept + 10 pruned + 5 duplicates
    class0 = rows[y[rows] == 0]
    assert len(class0) == 25 and set(pruned[y[pruned] == 0].tolist()) <= set(class0.tolist())
    assert len(class0) - len(np.unique(class0)) == 5
    assert set(class0.tolist()) - set(pruned.tolist()) <= set(kept.tolist())


def test_holdout_fill_rejects_overlap_and_needs_a_reserve():
    y, _ = _split()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="overlaps"):
        holdout_fill(y, np.arange(10), np.arange(5, 15), np.array([3, 0, 0]), rng)
    with pytest.raises(ValueError, match="reserve"):
        resample(y, np.zeros(60), np.array([30, 15, 15]), "holdout", 0)


def test_prune_balanced_removes_the_same_fraction_of_every_class():
    y = np.repeat([0, 1, 2, 3], [100, 50, 40, 10])
    kept, pruned = prune_balanced(y, 0.5, 7, 4)
    assert np.bincount(y[pruned], minlength=4).tolist() == [50, 25, 20, 5]
    assert np.array_equal(np.sort(np.concatenate([kept, pruned])), np.arange(200))
    again, _ = prune_balanced(y, 0.5, 7, 4)
    other, _ = prune_balanced(y, 0.5, 8, 4)
    assert np.array_equal(again, kept) and not np.array_equal(other, kept)
    # 0.75 of 10 = 7.5: largest remainder keeps the total round(0.75 * 200) = 150
    _, pruned = prune_balanced(y, 0.75, 0, 4)
    assert len(pruned) == 150 and np.bincount(y[pruned], minlength=4).tolist() == [75, 38, 30, 7]
    assert len(prune_balanced(y, 0.0, 0, 4)[1]) == 0


@pytest.mark.parametrize("assignment", ["hardness", "permuted", "inverse"])
def test_assignments_keep_the_sizes_and_the_total(assignment):
    rng = np.random.default_rng(0)
    for seed in range(10):
        sizes = class_targets(rng.uniform(0.1, 5, size=10), 1000, alpha=3)
        out = assign_sizes(sizes, assignment, seed)
        assert out.sum() == 1000 and sorted(out.tolist()) == sorted(sizes.tolist())


def test_inverse_and_permuted_assignments():
    sizes = np.array([10, 30, 20, 40])
    # hardness order (by S_c): 0 < 2 < 1 < 3; inverse gives the largest size to the easiest class
    assert assign_sizes(sizes, "inverse").tolist() == [40, 20, 30, 10]
    assert assign_sizes(sizes, "hardness").tolist() == [10, 30, 20, 40]
    perm = np.random.default_rng(5).permutation(4)
    assert assign_sizes(sizes, "permuted", 5).tolist() == sizes[perm].tolist()
    with pytest.raises(ValueError, match="unknown assignment"):
        assign_sizes(sizes, "reversed")


def test_mad_and_quant_diff_by_hand():
    v = np.array([0.2, 0.4, 0.6, 1.0])
    # mean 0.55; |dev| = .35 .15 .05 .45 -> mean .25
    assert mad(v) == pytest.approx(0.25)
    # k = 2 for 4 classes: (1.0 + 0.6) / 2 - (0.2 + 0.4) / 2 = 0.5
    assert quant_diff(v) == pytest.approx(0.5)
    assert quant_diff(v, k=1) == pytest.approx(0.8)
    assert [quant_k(c) for c in (2, 3, 10, 20, 100)] == [1, 1, 2, 2, 10]
    ten = np.arange(10) / 10  # top 2: .9 .8, bottom 2: 0 .1 -> .85 - .05 = .8
    assert quant_diff(ten) == pytest.approx(0.8)
    hundred = np.arange(100) / 100  # top 10 mean .945, bottom 10 mean .045
    assert quant_diff(hundred) == pytest.approx(0.9)
    s = spread(v)
    assert s["gap"] == pytest.approx(0.8) and s["mean"] == pytest.approx(0.55)
    assert s["std"] == pytest.approx(np.sqrt((0.35 ** 2 + 0.15 ** 2 + 0.05 ** 2 + 0.45 ** 2) / 4))


def test_recall_and_precision_from_a_hand_computed_confusion():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 1])
    # confusion rows = true: [[3, 1, 0], [1, 2, 0], [0, 3, 0]]
    assert confusion(pred, y, 3).tolist() == [[3, 1, 0], [1, 2, 0], [0, 3, 0]]
    recall, precision = class_recall_precision(pred, y, 3)
    assert recall.tolist() == pytest.approx([3 / 4, 2 / 3, 0.0])
    # predicted 0: 4 times (3 right); predicted 1: 6 times (2 right); never predicted 2 -> 0
    assert precision.tolist() == pytest.approx([3 / 4, 2 / 6, 0.0])
