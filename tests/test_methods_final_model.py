"""EL2N and the final-model identifiers against hand computation on a linear model."""
import numpy as np
import torch

from bench.recipes import Recipe
from bench.registry import get_method
from methods_support import linear_state, make_context

X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 2.0]])
Y = np.array([0, 1, 2, 0])
W_EARLY, B_EARLY = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([0.0, 0.0, 0.1])
W_FINAL, B_FINAL = np.array([[2.0, -1.0], [0.0, 3.0], [1.0, 1.0]]), np.array([0.5, 0.0, -0.5])


def _ctx():
    # 10 epochs: early epoch = round(0.1 * 10) = 1; the final model is the epoch-10 state
    checkpoints = {1: linear_state(W_EARLY, B_EARLY), 10: linear_state(W_FINAL, B_FINAL)}
    recipe = Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=10)
    return make_context(X, Y, 3, recipe=recipe, checkpoints=checkpoints)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(name):
    return np.asarray(torch.as_tensor(get_method(name).fn(_ctx())), dtype=float)


def test_el2n_uses_the_early_checkpoint():
    p = _softmax(X @ W_EARLY.T + B_EARLY)
    expected = np.linalg.norm(p - np.eye(3)[Y], axis=1)
    np.testing.assert_allclose(_run("el2n"), expected, rtol=1e-5)


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
