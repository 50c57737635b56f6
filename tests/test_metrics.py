import math

import numpy as np
import pytest

from bench.metrics import detection_metrics, friedman_nemenyi, hard_set, mean_ci


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
    assert mean_ci([0.7]) == (0.7, 0.0)


def test_friedman_nemenyi_against_demsar_table():
    # identical ordering in every block: ranks 1..k exactly
    matrix = np.tile([0.9, 0.5, 0.1], (10, 1))
    result = friedman_nemenyi(matrix)
    assert list(result["mean_ranks"]) == [1.0, 2.0, 3.0]
    assert result["p"] < 0.001
    # Demšar (2006) Table 5: q_0.05 = 2.343 for k = 3 -> CD = 2.343 * sqrt(3*4 / (6*10))
    assert result["cd"] == pytest.approx(2.343 * math.sqrt(12 / 60), abs=2e-3)
