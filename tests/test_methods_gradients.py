"""Gradient identifiers: GraNd against a per-sample autograd loop; VoG, curvature and
TracIn against closed forms on linear models."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.models import build_model
from bench.recipes import Recipe
from bench.registry import get_method
from methods.gradients import (hutchinson_curvature, input_hvp, last_layer_grad_sq_norms, linear_grad_norms,
                               normalise_within_class, per_sample_grad_norms, vog_raw)
from methods_support import linear_state, loop_grad_norms, make_context


@pytest.mark.parametrize("name, shape, kwargs", [("mlp", (1, 8, 8), {"hidden": [16, 12]}),
                                                  ("cnn", (1, 8, 8), {"width": 4})])
def test_grand_equals_a_per_sample_autograd_loop(name, shape, kwargs):
    torch.manual_seed(0)
    model = build_model(name, shape, 5, **kwargs).eval()
    x, y = torch.randn(7, *shape), torch.randint(0, 5, (7,))
    expected = loop_grad_norms(model, x, y)
    np.testing.assert_allclose(per_sample_grad_norms(model, x, y), expected.detach(), rtol=1e-4)
    # chunking does not change the answer
    np.testing.assert_allclose(per_sample_grad_norms(model, x, y, chunk_size=3), expected.detach(), rtol=1e-4)


def test_grand_method_reads_the_early_checkpoint():
    torch.manual_seed(1)
    early, final = (build_model("mlp", (3,), 2, hidden=[4]) for _ in range(2))
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [4]}, epochs=10)
    ctx = make_context(x, y, 2, recipe=recipe, checkpoints={1: early.state_dict(), 10: final.state_dict()})
    np.testing.assert_allclose(get_method("grand").fn(ctx), loop_grad_norms(early.eval(), x, y).detach(), rtol=1e-4)


def test_vog_on_linear_models_is_the_variance_of_the_weight_rows():
    # z = W x + b, so d z_y / d x = W[y] whatever x is: VoG = mean_d Var_t(W_t[y, d])
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 4)) for _ in range(4)]
    x, y = torch.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    models = [build_model("mlp", (4,), 3, hidden=[]) for _ in weights]
    for model, w in zip(models, weights):
        model.load_state_dict(linear_state(w, np.zeros(3)))
        model.eval()
    expected = np.stack(weights).var(axis=0).mean(axis=1)[y.numpy()]
    np.testing.assert_allclose(vog_raw(models, x, y), expected, rtol=1e-5)

    ctx = make_context(x, y, 3, checkpoints={i + 1: linear_state(w, np.zeros(3)) for i, w in enumerate(weights)},
                       recipe=Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=4))
    scores = np.asarray(get_method("vog").fn(ctx))
    # every sample of a class has the same raw VoG, so the within-class z-score is 0
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)


def test_within_class_normalisation():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, 30.0])
    y = torch.tensor([0, 0, 0, 1, 1])
    z = normalise_within_class(values, y, 2).numpy()
    np.testing.assert_allclose(z[:3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_allclose(z[3:], [-1.0, 1.0], rtol=1e-6)


def _linear_model(w, b):
    model = build_model("mlp", (w.shape[1],), w.shape[0], hidden=[])
    model.load_state_dict(linear_state(w, b))
    return model.eval()


def _exact_input_hessians(w, b, x):
    """H_i = W^T (diag(p_i) - p_i p_i^T) W for softmax cross-entropy of a linear model
    (it does not depend on the label)."""
    p = torch.softmax(torch.as_tensor(x) @ torch.as_tensor(w).T.float() + torch.as_tensor(b).float(), dim=1).double()
    w = torch.as_tensor(w).double()
    return torch.stack([w.T @ (torch.diag(pi) - torch.outer(pi, pi)) @ w for pi in p])


def test_input_hvp_is_exact_on_a_linear_model():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 5)), rng.normal(size=4)
    x, y = torch.randn(6, 5), torch.randint(0, 4, (6,))
    v = torch.randn(3, 6, 5)
    hv = input_hvp(_linear_model(w, b), x, y, v)
    hessians = _exact_input_hessians(w, b, x)
    expected = torch.einsum("ide,kie->kid", hessians, v.double())
    np.testing.assert_allclose(hv, expected, rtol=1e-4, atol=1e-6)


def test_hutchinson_estimates_trace_of_h_squared():
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    exact = torch.einsum("ide,ied->i", *(2 * [_exact_input_hessians(w, b, x)]))  # Tr(H^2)
    estimate = hutchinson_curvature(_linear_model(w, b), x, y, 4000, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(estimate, exact, rtol=0.1)


def test_curvature_method_is_exact_in_one_dimension_and_averages_checkpoints():
    # with one input dimension v = +-1, so ||H v||^2 = H^2 = Tr(H^2) exactly, for any number of vectors
    weights = {1: np.array([[1.0], [-2.0]]), 2: np.array([[3.0], [0.5]])}
    x, y = torch.tensor([[0.3], [-1.0], [2.0]]), torch.tensor([0, 1, 1])
    ctx = make_context(x, y, 2, checkpoints={e: linear_state(w, np.zeros(2)) for e, w in weights.items()},
                       recipe=Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=2))
    expected = np.mean([_exact_input_hessians(w, np.zeros(2), x)[:, 0, 0].numpy() ** 2 for w in weights.values()],
                       axis=0)
    np.testing.assert_allclose(get_method("curvature").fn(ctx), expected, rtol=1e-4)


def test_tracin_self_closed_form():
    # last layer of a linear model: ||grad_W||^2 + ||grad_b||^2 = ||p - e_y||^2 (||x||^2 + 1)
    rng = np.random.default_rng(3)
    weights = {2: rng.normal(size=(3, 4)), 4: rng.normal(size=(3, 4))}
    biases = {2: rng.normal(size=3), 4: rng.normal(size=3)}
    lrs = [0.1, 0.05, 0.02, 0.01]
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    ctx = make_context(x, y, 3, checkpoints={e: linear_state(weights[e], biases[e]) for e in weights}, lrs=lrs,
                       recipe=Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=4))
    expected = 0
    for epoch in weights:
        p = torch.softmax(x.double() @ torch.as_tensor(weights[epoch]).T + torch.as_tensor(biases[epoch]), dim=1)
        expected = expected + lrs[epoch - 1] * ((p - F.one_hot(y, 3)) ** 2).sum(1) * ((x.double() ** 2).sum(1) + 1)
    np.testing.assert_allclose(get_method("tracin_self").fn(ctx), expected, rtol=1e-5)


def test_last_layer_grads_equal_autograd_on_an_mlp():
    torch.manual_seed(4)
    model = build_model("mlp", (6,), 3, hidden=[5]).eval()
    x, y = torch.randn(4, 6), torch.randint(0, 3, (4,))
    expected = []
    for i in range(4):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        expected.append(sum(p.grad.pow(2).sum() for p in model.head.parameters()).item())
    np.testing.assert_allclose(last_layer_grad_sq_norms(model, x, y), expected, rtol=1e-5)


def test_closed_form_linear_norms_equal_vmap_grad_and_fall_back_for_convolutions():
    torch.manual_seed(3)
    mlp = build_model("mlp", (6,), 4, hidden=[8, 5]).eval()
    x, y = torch.randn(11, 6), torch.randint(0, 4, (11,))
    closed = per_sample_grad_norms(mlp, x, y)
    np.testing.assert_allclose(closed, per_sample_grad_norms(mlp, x, y, exact_linear=False), rtol=1e-5)
    np.testing.assert_allclose(closed, loop_grad_norms(mlp, x, y).detach(), rtol=1e-5)
    cnn = build_model("cnn", (1, 6, 6), 4, width=2).eval()
    assert linear_grad_norms(cnn, torch.randn(3, 1, 6, 6), torch.tensor([0, 1, 2])) is None
