import math

import numpy as np
import pytest

from scipy import stats

from bench.metrics import (AS_GOOD, UNDECIDED, WORSE, beats_control, compact_letters, compare_with_best,
                           detection_metrics, equal_halves, format_ci, friedman_nemenyi, hard_set, holm, mean_ci,
                           paired_test, pairs_to_settle, seed_averaged_matrix, significance_letters)


def test_auprc_on_a_known_ranking():
    # positives ranked 1st and 3rd of 4: AP = (1/1 + 2/3) / 2
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    planted = np.array([True, False, True, False])
    m = detection_metrics(scores, planted)
    assert m["auprc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["auroc"] == pytest.approx(3 / 4)  # 3 of the 4 positive-negative pairs ordered right
    assert m["precision_at_m"] == pytest.approx(0.5)
    assert m["baseline"] == pytest.approx(0.5)


def test_reversed_scores_are_not_flipped_back():
    planted = np.array([True, True, False, False, False])
    scores = np.array([0.0, 0.1, 0.5, 0.6, 0.7])  # planted samples scored easiest
    m = detection_metrics(scores, planted)
    assert m["auroc"] == 0.0 and m["precision_at_m"] == 0.0


def test_hard_set_takes_ceil_q_n_and_breaks_ties_by_seed():
    scores = np.array([5, 1, 5, 5, 0, 2, 3, 4, 9, 1.0])
    assert len(hard_set(scores, 0.25)) == 3  # ceil(2.5)
    assert set(hard_set(scores, 0.1)) == {8}
    tied = np.zeros(100)
    draws = {tuple(hard_set(tied, 0.1, seed=s)) for s in range(5)}
    assert len(draws) > 1 and all(len(d) == 10 for d in draws)
    assert np.array_equal(hard_set(tied, 0.1, seed=3), hard_set(tied, 0.1, seed=3))


def test_hard_set_per_class():
    scores = np.array([1, 2, 3, 4, 10, 20, 30, 40.0])
    classes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert list(hard_set(scores, 0.25, classes=classes)) == [3, 7]


def test_mean_ci_matches_student_t():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1 / math.sqrt(3), rel=1e-5)
    assert mean_ci([0.7])[0] == 0.7 and math.isnan(mean_ci([0.7])[1])  # one value: no interval


def test_format_ci_prints_no_interval_for_one_value():
    assert format_ci([0.9991]) == "0.999 (n=1)"
    assert format_ci([0.5, float("nan")], 1, 100) == "50.0 (n=1)"  # non-finite values do not count
    assert format_ci([1.0, 2.0, 3.0], 2) == f"2.00 ± {4.302653 / math.sqrt(3):.2f}"
    assert format_ci([]) == "–"


def test_precision_at_m_breaks_ties_by_a_seeded_random_order():
    # 4 tied top scores, 2 planted among them, |M| = 2: by index the first two (both planted) would
    # always be taken; a seeded random order takes each tied sample equally often over seeds
    scores = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    planted = np.array([True, True, False, False, False, False])
    values = [detection_metrics(scores, planted, seed=s)["precision_at_m"] for s in range(200)]
    assert set(values) <= {0.0, 0.5, 1.0} and np.mean(values) == pytest.approx(0.5, abs=0.08)
    assert detection_metrics(scores, planted, seed=7) == detection_metrics(scores, planted, seed=7)


def test_friedman_nemenyi_against_demsar_table():
    # identical ordering in every block: ranks 1..k exactly
    matrix = np.tile([0.9, 0.5, 0.1], (10, 1))
    result = friedman_nemenyi(matrix)
    assert list(result["mean_ranks"]) == [1.0, 2.0, 3.0]
    assert result["p"] < 0.001
    # Demšar (2006) Table 5: q_0.05 = 2.343 for k = 3 -> CD = 2.343 * sqrt(3*4 / (6*10))
    assert result["cd"] == pytest.approx(2.343 * math.sqrt(12 / 60), abs=2e-3)


def _rows(means, blocks=(("a", 0.1), ("a", 0.2), ("b", 0.1)), seeds=(0, 1, 2), noise=0.01, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    return [(m, b, s, mu + rng.normal(0, noise)) for m, mu in means.items() for b in blocks for s in seeds]


def test_seed_averaged_matrix_has_one_row_per_setting():
    rows = [("A", "x", 0, 1.0), ("A", "x", 1, 3.0), ("B", "x", 0, 5.0), ("B", "x", 1, 7.0),
            ("A", "y", 0, 2.0), ("B", "y", 0, 1.0), ("A", "z", 0, 1.0)]  # z lacks B: dropped
    matrix, blocks, methods = seed_averaged_matrix(rows)
    assert blocks == ["x", "y"] and methods == ["A", "B"]
    np.testing.assert_allclose(matrix, [[2.0, 6.0], [2.0, 1.0]])
    # Friedman over 2 settings, not 3 (setting, seed) blocks
    assert friedman_nemenyi(np.hstack([matrix, matrix[:, :1] - 1]))["blocks"] == 2


def test_paired_test_chooses_wilcoxon_only_with_enough_pairs():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert paired_test(a, b) == (pytest.approx(stats.wilcoxon(a - b).pvalue), "wilcoxon")
    assert paired_test(a[:5], b[:5]) == (pytest.approx(stats.ttest_rel(a[:5], b[:5]).pvalue), "t")
    assert paired_test(a, a) == (1.0, "none")
    assert paired_test(a[:2] + 1, a[:2]) == (0.5, "sign")  # two equal differences are no evidence
    assert math.isnan(paired_test(a[:1], b[:1])[0])


def test_holm_matches_the_step_down_by_hand_and_keeps_nan():
    # sorted p: 0.01 * 3, 0.03 * 2, 0.04 * 1 -> 0.03, 0.06, max(0.06, 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, np.nan, 0.03]), [0.03, 0.06, np.nan, 0.06])


def _tie_and_loser():
    """"same" differs from "good" by -0.01 and +0.008 in turn (mean -0.002: a tie), "bad" by -0.4."""
    good = _rows({"good": 0.9})
    shifts = np.resize([-0.01, 0.008], len(good))
    same = [("same", b, s, v + d) for (_, b, s, v), d in zip(good, shifts)]
    bad = [("bad", b, s, v - 0.4) for _, b, s, v in good]
    return good + same + bad


def test_compare_with_best_separates_a_tie_from_a_clear_loser():
    result = compare_with_best(_tie_and_loser(), delta=0.02)
    assert list(result) == ["good", "same", "bad"] and result["good"]["test"] == "best"
    assert result["same"]["state"] == AS_GOOD and result["same"]["n"] == 9 and result["same"]["test"] == "t"
    assert result["same"]["diff"] == pytest.approx(-0.018 / 9)
    assert result["bad"]["state"] == WORSE and result["bad"]["diff"] == pytest.approx(-0.4)
    # constant differences: the exact sign test, 2 / 2^9, Holm-doubled as the smaller of two p-values
    assert result["bad"]["test"] == "sign" and result["bad"]["p_holm"] == pytest.approx(4 / 2 ** 9)
    # lower is better: the roles turn around
    flipped = compare_with_best(_tie_and_loser(), delta=0.02, higher_is_better=False)
    assert list(flipped)[0] == "bad" and flipped["good"]["state"] == WORSE and flipped["good"]["diff"] < 0
    # no margin: a tie whose interval reaches below 0 is no longer shown as good
    assert compare_with_best(_tie_and_loser(), delta=0.0)["same"]["state"] == UNDECIDED


def _known_verdict_rows():
    """Differences to "best" per (setting, seed), by construction: "close" within the margin 0.02 with a
    tight interval, "near" a little further but still inside, "loser" 0.1 below on every pair, "unsure"
    0.03 below on average with a spread too wide to say, "random" the control far below."""
    blocks, seeds = ("x", "y", "z"), (0, 1, 2)
    pairs = [(b, s) for b in blocks for s in seeds]
    wobble = np.resize([-0.002, 0.002, 0.0], len(pairs))
    swing = np.resize([0.05, -0.11, 0.03], len(pairs))
    rows = []
    for i, (b, s) in enumerate(pairs):
        base = 0.8 + 0.01 * i
        rows += [("best", b, s, base), ("close", b, s, base - 0.004 + wobble[i]), ("near", b, s, base - 0.01 + wobble[i]),
                 ("loser", b, s, base - 0.1 + wobble[i]), ("unsure", b, s, base + swing[i]),
                 ("random", b, s, 0.1 + wobble[i])]
    return rows


def test_three_states_on_a_synthetic_verdict():
    result = compare_with_best(_known_verdict_rows(), delta=0.02, control="random")
    assert list(result)[0] == "best"
    assert result["close"]["state"] == AS_GOOD and result["near"]["state"] == AS_GOOD
    assert result["loser"]["state"] == WORSE and result["random"]["state"] == WORSE
    unsure = result["unsure"]
    assert unsure["state"] == UNDECIDED and unsure["diff"] == pytest.approx(-0.01)
    # at the observed spread, more pairs would settle it: as good (diff + delta = 0.01 of room)
    need = unsure["pairs_needed"]
    assert need > 9 and stats.t.ppf(0.975, need - 1) * unsure["sd"] / np.sqrt(need) < 0.01
    assert stats.t.ppf(0.975, need - 2) * unsure["sd"] / np.sqrt(need - 1) >= 0.01
    control = beats_control(_known_verdict_rows(), "best", "random", delta=0.02)
    assert control["beats"] and control["diff"] == pytest.approx(0.7 + 0.04, abs=0.01) and control["n"] == 9


def test_the_control_is_never_the_best_and_is_beaten_only_beyond_the_margin():
    rows = [(m, "x", s, v + 0.001 * s) for s in range(4) for m, v in (("a", 0.50), ("b", 0.49), ("random", 0.505))]
    result = compare_with_best(rows, delta=0.02, control="random")
    assert list(result)[0] == "a"  # random has the highest mean, but a control is never the best
    assert not beats_control(rows, "a", "random", delta=0.02)["beats"]
    assert beats_control(rows, "a", "random", delta=0.02)["diff"] == pytest.approx(-0.005)
    assert beats_control(rows, "a", "absent", delta=0.02) is None


def test_pairs_to_settle_by_hand():
    # t(0.975, 4) * 1 / sqrt(5) = 1.242 < 1.3 while t(0.975, 3) / 2 = 1.591 is not: five pairs
    assert pairs_to_settle(diff=-0.7, sd=1.0, delta=2.0) == 5
    assert pairs_to_settle(diff=-0.7, sd=math.nan, delta=2.0) is None


def test_compact_letters_by_hand():
    # A-C, A-D and B-D differ: groups {A, B}, {B, C}, {C, D}
    letters = compact_letters(["A", "B", "C", "D"], [("A", "C"), ("A", "D"), ("B", "D")])
    assert letters == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    assert compact_letters(["A", "B"], []) == {"A": "a", "B": "a"}


def test_significance_letters_group_methods_that_do_not_differ():
    rows = _tie_and_loser()
    rows += [("worst", b, s, v - 0.8 + 0.01 * s) for m, b, s, v in rows if m == "good"]
    letters = significance_letters(rows)
    assert letters["good"] == letters["same"] == "a" and letters["bad"] == "b" and letters["worst"] == "c"


def test_equal_halves_drop_the_odd_seed_out():
    assert equal_halves([2, 0, 1]) == ([0], [1])
    assert equal_halves(range(6)) == ([0, 2, 4], [1, 3, 5])
    assert equal_halves([5]) == ([], [])
