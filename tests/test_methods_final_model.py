"""EL2N and the final-model identifiers against hand computation on linear models."""
import numpy as np
import pytest
import torch

from bench.recipes import Recipe
from bench.registry import get_method
from methods_support import linear_state, make_context

X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]])
Y = np.array([0, 1, 2, 0])
W_EARLY, B_EARLY = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([0.0, 0.0, 0.1])
W_FINAL, B_FINAL = np.array([[2.0, -1.0], [0.0, 3.0], [1.0, 1.0]]), np.array([0.5, 0.0, -0.5])
# two independent early runs (fresh initialisations trained to the early epoch)
W_RUN2, B_RUN2 = np.array([[-1.0, 0.5], [0.0, 2.0], [1.0, -1.0]]), np.array([0.2, -0.3, 0.0])
EARLY_RUNS = [(W_EARLY, B_EARLY), (W_RUN2, B_RUN2)]


def _ctx():
    # 10 epochs: early epoch = round(0.1 * 10) = 1; the final model is the epoch-10 state. The
    # checkpoint at epoch 1 of this run must not be what EL2N reads: it is the final-model weights.
    checkpoints = {1: linear_state(W_FINAL, B_FINAL), 10: linear_state(W_FINAL, B_FINAL)}
    recipe = Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=10, early_runs=2)
    return make_context(X, Y, 3, recipe=recipe, checkpoints=checkpoints,
                        early_runs=[linear_state(w, b) for w, b in EARLY_RUNS])


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(name):
    return np.asarray(torch.as_tensor(get_method(name).fn(_ctx())), dtype=float)


def _el2n(w, b):
    return np.linalg.norm(_softmax(X @ w.T + b) - np.eye(3)[Y], axis=1)


def test_el2n_averages_the_independent_early_runs():
    expected = np.mean([_el2n(w, b) for w, b in EARLY_RUNS], axis=0)
    np.testing.assert_allclose(_run("el2n"), expected, rtol=1e-5)
    # sample 0 by hand on run 1: z = [1, 0, 0.6]
    e = np.exp([1.0, 0.0, 0.6])
    p = e / e.sum()
    assert _el2n(W_EARLY, B_EARLY)[0] == pytest.approx(np.sqrt((p[0] - 1) ** 2 + p[1] ** 2 + p[2] ** 2))
    assert get_method("el2n").needs == {"early_runs"}


def test_el2n_final_reads_the_final_model():
    np.testing.assert_allclose(_run("el2n_final"), _el2n(W_FINAL, B_FINAL), rtol=1e-5)
    assert get_method("el2n_final").needs == {"final_model"} and get_method("el2n_final").higher_is_harder


def test_margin_final_by_hand():
    z = X @ W_FINAL.T + B_FINAL
    # sample 0: z = [2.5, 0, 0.5], y=0 -> 2.5 - 0.5 = 2; computed generally:
    others = np.where(np.eye(3)[Y].astype(bool), -np.inf, z).max(axis=1)
    expected = z[np.arange(4), Y] - others
    assert expected[0] == 2.0
    np.testing.assert_allclose(_run("margin_final"), expected, rtol=1e-6)
    assert (expected < 0).any(), "the case should include a misclassified sample"


def test_max_logit_and_energy_by_hand():
    z = X @ W_FINAL.T + B_FINAL
    np.testing.assert_allclose(_run("max_logit"), z.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(_run("energy"), -np.log(np.exp(z).sum(axis=1)), rtol=1e-6)
    assert get_method("energy").higher_is_harder and not get_method("max_logit").higher_is_harder


def test_msp_is_the_largest_softmax_probability():
    z = X @ W_FINAL.T + B_FINAL
    np.testing.assert_allclose(_run("msp"), _softmax(z).max(axis=1), rtol=1e-6)
    # sample 0: z = [2.5, 0, 0.5] -> e^2.5 / (e^2.5 + 1 + e^0.5)
    assert _run("msp")[0] == pytest.approx(np.exp(2.5) / (np.exp(2.5) + 1 + np.exp(0.5)), rel=1e-6)
    assert not get_method("msp").higher_is_harder and get_method("msp").needs == {"final_model"}


def _ensemble_ctx(dynamics=None):
    """The final model of ``_ctx`` plus two more full runs (the ensemble part's extra runs)."""
    checkpoints = {1: linear_state(W_FINAL, B_FINAL), 10: linear_state(W_FINAL, B_FINAL)}
    recipe = Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=10, early_runs=3)
    extra = np.stack([X @ w.T + b for w, b in EARLY_RUNS]).astype(np.float32)
    return make_context(X, Y, 3, recipe=recipe, checkpoints=checkpoints, dynamics=dynamics,
                        ensemble={"aum": np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, -4.0]]), "logits": extra})


def test_msp_ens_averages_the_maximum_softmax_probability_over_the_k_networks():
    logits = [X @ W_FINAL.T + B_FINAL] + [X @ w.T + b for w, b in EARLY_RUNS]
    expected = np.mean([_softmax(z).max(axis=1) for z in logits], axis=0)
    np.testing.assert_allclose(np.asarray(get_method("msp_ens").fn(_ensemble_ctx())), expected, rtol=1e-6)
    method = get_method("msp_ens")
    assert method.needs == {"ensemble"} and method.label_blind and not method.higher_is_harder


def test_aum_ens_averages_aum_over_the_estimation_run_and_the_extra_runs():
    from methods_support import dynamics_from

    margin = np.array([[2.0, 4.0], [1.0, 1.0], [0.0, 6.0], [-2.0, 0.0]])  # AUM of this run: 3, 1, 3, -1
    scores = get_method("aum_ens").fn(_ensemble_ctx(dynamics_from(margin=margin)))
    np.testing.assert_allclose(scores, [(3 + 1 + 0) / 3, (1 + 2 + 0) / 3, (3 + 3 + 0) / 3, (-1 + 4 - 4) / 3])
    assert get_method("aum_ens").needs == {"ensemble"} and not get_method("aum_ens").higher_is_harder
