"""Track R's class-size formula and resampler, on hand-computed cases."""
import numpy as np
import pytest

from bench.resample import class_hardness, class_targets, largest_remainder, resample


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
    rows, ex, ey = resample(y, scores, targets, "duplicate", seed=0)
    assert ex is None and ey is None
    assert np.bincount(y[rows], minlength=3).tolist() == [25, 20, 15]
    class2 = rows[y[rows] == 2]
    assert sorted(class2.tolist()) == list(range(30, 45))  # the 15 highest scores of class 2
    class0 = rows[y[rows] == 0]
    assert set(range(10)) <= set(class0.tolist())  # every original kept, 15 copies added
    assert len(class0) == 25 and set(class0.tolist()) <= set(range(10))


def test_keep_random_and_smote():
    y, scores = _pool()
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    rows, ex, ey = resample(y, scores, np.array([25, 20, 15]), "smote", seed=0, keep="random", x_flat=x)
    assert np.bincount(y[rows], minlength=3).tolist() == [10, 20, 15]
    assert ex.shape == (15, 4) and (ey == 0).all()
    # synthetic samples lie between class-0 samples: inside the class's bounding box
    lo, hi = x[y == 0].min(0), x[y == 0].max(0)
    assert ((ex >= lo - 1e-6) & (ex <= hi + 1e-6)).all()
    again = resample(y, scores, np.array([25, 20, 15]), "smote", seed=0, keep="random", x_flat=x)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], ex)


def test_holdout_draws_reserve_without_replacement():
    y, scores = _pool()
    rows, _, _ = resample(y, scores, np.array([14, 20, 26]), "holdout", seed=1, reserve={0: np.array([100, 101, 102])})
    extra = rows[rows >= 60]
    assert sorted(extra.tolist()) == [100, 101, 102]
    assert len(rows) == 60 and (y[rows[rows < 60]] == 0).sum() == 11  # 10 originals + 1 duplicate


def test_bad_filler():
    y, scores = _pool()
    with pytest.raises(ValueError, match="unknown filler"):
        resample(y, scores, np.array([10, 20, 30]), "mixup", seed=0)
