"""Known answers for the training-dynamics identifiers (no training: hand-made Dynamics)."""
import numpy as np
import pytest

from bench.dynamics import Dynamics
from bench.registry import get_method
from methods.training_dynamics import learned_epochs, settled_epochs
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


def _eval_score(name, train_p_y, eval_p_y):
    """Scores when the training forward pass and the clean per-epoch pass differ."""
    ctx = make_context(np.zeros((3, 2)), [0, 1, 0], 2, dynamics=dynamics_from(p_y=train_p_y),
                       eval_dynamics=dynamics_from(p_y=eval_p_y), needs=get_method(name).needs)
    return np.asarray(get_method(name).fn(ctx), dtype=float)


def test_variability_is_the_population_std_of_p_y():
    expected = [np.sqrt(np.mean((row - row.mean()) ** 2)) for row in P_Y]
    np.testing.assert_allclose(_score("variability", p_y=P_Y), expected, rtol=1e-6)
    assert get_method("variability").higher_is_harder


@pytest.mark.parametrize("name", ["variability", "dataiq_aleatoric"])
def test_ambiguity_measures_are_their_own_family(name):
    method = get_method(name)
    assert method.family == "ambiguity" and method.higher_is_harder
    assert "ambiguous" in method.fn.__doc__ and "LOW" in method.fn.__doc__


def test_correctness_is_the_fraction_of_correct_epochs():
    np.testing.assert_allclose(_score("correctness", p_y=P_Y, correct=CORRECT), [0.75, 0.0, 0.5])
    assert not get_method("correctness").higher_is_harder


def test_dataiq_aleatoric_is_mean_p_times_one_minus_p_of_the_clean_pass():
    # row 0: (0.09 + 0.25 + 0.09 + 0.09) / 4 = 0.13; row 1: 0.16; row 2: 0.09; the training pass
    # (here constant 0.5, which would give 0.25 everywhere) is not read
    np.testing.assert_allclose(_eval_score("dataiq_aleatoric", np.full_like(P_Y, 0.5), P_Y), [0.13, 0.16, 0.09],
                               rtol=1e-6)
    assert get_method("dataiq_aleatoric").needs == {"eval_dynamics"}


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


def test_iteration_learned_label_ranks_never_learned_last():
    scores = _score("iteration_learned_label", p_y=P_Y, correct=CORRECT)
    np.testing.assert_array_equal(scores, [2, 5, 5])
    assert get_method("iteration_learned_label").higher_is_harder


@pytest.mark.parametrize("trajectory, expected", [
    ([3, 3, 3, 3], 1),  # the final prediction from the start
    ([0, 3, 3, 3], 2),
    ([3, 1, 3, 3], 3),  # left the final prediction once: counts from its return
    ([3, 3, 3, 0], 4),  # changed at the last epoch: settled only there
    ([1, 2, 1, 2], 4),
    ([2, 2, 1, 1], 3),
])
def test_settled_epoch_is_against_the_final_prediction(trajectory, expected):
    assert settled_epochs(np.array([trajectory]))[0] == expected


# four samples, label 0 each; the network predicts (rows = samples, columns = epochs 1..5)
PRED = np.array([[0, 0, 0, 0, 0],   # the label from the start
                 [1, 1, 0, 0, 0],   # the label from epoch 3
                 [1, 1, 1, 1, 1],   # a mislabelled-looking sample never fitted: always its own class
                 [1, 0, 1, 0, 2]])  # never settles until the end, and ends on neither
LABELS = np.array([0, 0, 0, 0])


def _pred_ctx(labels=LABELS):
    correct = PRED == labels[:, None]
    dynamics = Dynamics(margin=np.where(correct, 1.0, -1.0).astype(np.float32),
                        p_y=np.where(correct, 0.9, 0.1).astype(np.float32),
                        loss=np.where(correct, 0.1, 2.3).astype(np.float32), correct=correct, pred=PRED)
    return make_context(np.zeros((4, 2)), labels, 3, dynamics=dynamics)


def test_iteration_learned_follows_baldock_against_the_final_prediction():
    scores = np.asarray(get_method("iteration_learned").fn(_pred_ctx()))
    # sample 2 never matches its label, but its prediction never changes: settled at epoch 1
    np.testing.assert_array_equal(scores, [1, 3, 1, 5])
    assert get_method("iteration_learned").higher_is_harder


def test_iteration_learned_label_compares_with_the_label():
    scores = np.asarray(get_method("iteration_learned_label").fn(_pred_ctx()))
    # E = 5: never correct at the end = 6
    np.testing.assert_array_equal(scores, [1, 3, 6, 6])


def test_the_two_variants_agree_where_the_final_prediction_is_the_label():
    final = PRED[:, -1]
    a = np.asarray(get_method("iteration_learned").fn(_pred_ctx(final)))
    b = np.asarray(get_method("iteration_learned_label").fn(_pred_ctx(final)))
    np.testing.assert_array_equal(a, b)
