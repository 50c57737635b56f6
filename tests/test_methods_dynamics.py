"""Known answers for the training-dynamics identifiers (no training: hand-made Dynamics)."""
import numpy as np
import pytest

from bench.registry import get_method
from methods.training_dynamics import learned_epochs
from methods_support import dynamics_from, make_context

P_Y = np.array([[0.1, 0.5, 0.9, 0.9],
                [0.2, 0.2, 0.2, 0.2],
                [0.9, 0.1, 0.9, 0.1]])
CORRECT = np.array([[0, 1, 1, 1],
                    [0, 0, 0, 0],
                    [1, 0, 1, 0]], dtype=bool)


def _score(name, **dyn):
    ctx = make_context(np.zeros((3, 2)), [0, 1, 0], 2, dynamics=dynamics_from(**dyn))
    return np.asarray(get_method(name).fn(ctx), dtype=float)


def test_variability_is_the_population_std_of_p_y():
    expected = [np.sqrt(np.mean((row - row.mean()) ** 2)) for row in P_Y]
    np.testing.assert_allclose(_score("variability", p_y=P_Y), expected, rtol=1e-6)
    assert get_method("variability").higher_is_harder


def test_correctness_is_the_fraction_of_correct_epochs():
    np.testing.assert_allclose(_score("correctness", p_y=P_Y, correct=CORRECT), [0.75, 0.0, 0.5])
    assert not get_method("correctness").higher_is_harder


def test_dataiq_aleatoric_is_mean_p_times_one_minus_p():
    # row 0: (0.09 + 0.25 + 0.09 + 0.09) / 4 = 0.13; row 1: 0.16; row 2: 0.09
    np.testing.assert_allclose(_score("dataiq_aleatoric", p_y=P_Y), [0.13, 0.16, 0.09], rtol=1e-6)


@pytest.mark.parametrize("trajectory, expected", [
    ([1, 1, 1, 1], 1),  # learned from the start
    ([0, 1, 1, 1], 2),
    ([1, 0, 1, 1], 3),  # forgotten once: counts from the last relearning
    ([1, 1, 1, 0], 5),  # wrong at the end: never learned = E + 1
    ([0, 0, 0, 0], 5),
    ([0, 0, 0, 1], 4),
])
def test_learned_epoch(trajectory, expected):
    assert learned_epochs(np.array([trajectory], dtype=bool))[0] == expected


def test_iteration_learned_ranks_never_learned_last():
    scores = _score("iteration_learned", p_y=P_Y, correct=CORRECT)
    np.testing.assert_array_equal(scores, [2, 5, 5])
    assert get_method("iteration_learned").higher_is_harder
