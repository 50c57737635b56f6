"""Gradient identifiers: GraNd against a per-sample autograd loop; VoG, curvature and
TracIn against closed forms on linear models."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.models import build_model
from bench.recipes import Recipe
from bench.registry import get_method
from methods.gradients import (finite_difference_curvature, hutchinson_curvature, input_hvp, last_layer_grad_sq_norms,
                               linear_grad_norms, normalise_within_class, per_sample_grad_norms, vog_epochs, vog_from_gradients,
                               vog_per_sample, vog_raw)
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


def _mlp_states(n, seed, **kwargs):
    torch.manual_seed(seed)
    return [build_model("mlp", (3,), 2, **kwargs).eval() for _ in range(n)]


def test_grand_averages_the_independent_early_runs():
    runs = _mlp_states(3, 1, hidden=[4])
    final = _mlp_states(1, 2, hidden=[4])[0]
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [4]}, epochs=10, early_runs=3)
    # this run's own early checkpoint holds the final weights: GraNd must not read it
    ctx = make_context(x, y, 2, recipe=recipe, checkpoints={1: final.state_dict(), 10: final.state_dict()},
                       early_runs=[m.state_dict() for m in runs])
    expected = torch.stack([loop_grad_norms(m, x, y) for m in runs]).mean(0).detach()
    np.testing.assert_allclose(get_method("grand").fn(ctx), expected, rtol=1e-4)
    assert get_method("grand").needs == {"early_runs"}
    np.testing.assert_allclose(get_method("grand_final").fn(ctx), loop_grad_norms(final, x, y).detach(), rtol=1e-4)
    assert get_method("grand_final").needs == {"final_model"}


# A hand-built gradient stack (K = 2 checkpoints, N = 4 samples, C = 2 channels, 1 x 2 pixels).
VOG_STACK = torch.tensor([
    [[[[1.0, 3.0]], [[3.0, 5.0]]],      # t = 1, sample 0: channel mean [2, 4]
     [[[1.0, -1.0]], [[-1.0, 1.0]]],    # sample 1: channel mean [0, 0]
     [[[2.0, 2.0]], [[2.0, 2.0]]],      # sample 2: [2, 2]
     [[[6.0, 0.0]], [[6.0, 0.0]]]],     # sample 3: [6, 0]
    [[[[1.0, 3.0]], [[1.0, 1.0]]],      # t = 2, sample 0: channel mean [1, 2]
     [[[-1.0, 1.0]], [[1.0, -1.0]]],    # sample 1: [0, 0] (each channel flips sign, their mean does not move)
     [[[0.0, 0.0]], [[0.0, 0.0]]],      # sample 2: [0, 0]
     [[[0.0, 0.0]], [[0.0, 0.0]]]],     # sample 3: [0, 0]
])


def test_vog_by_hand_is_the_std_of_channel_averaged_gradients():
    # std of two values is |a - b| / 2: sample 0 -> pixels [0.5, 1] -> 0.75; sample 1 -> 0;
    # sample 2 -> [1, 1] -> 1; sample 3 -> [3, 0] -> 1.5
    np.testing.assert_allclose(vog_per_sample(VOG_STACK), [0.75, 0.0, 1.0, 1.5])
    # neither the variance nor the std taken per channel before averaging gives these numbers
    per_pixel = VOG_STACK.mean(dim=2).flatten(2)
    np.testing.assert_allclose(per_pixel.var(dim=0, unbiased=False).mean(dim=1), [0.625, 0.0, 1.0, 4.5])
    np.testing.assert_allclose(VOG_STACK.std(dim=0, unbiased=False).flatten(1).mean(dim=1), [0.75, 1.0, 1.0, 1.5])
    y = torch.tensor([0, 0, 1, 1])
    # class 0: raw [0.75, 0] -> mean 0.375, std 0.375; class 1: [1, 1.5] -> mean 1.25, std 0.25
    np.testing.assert_allclose(vog_from_gradients(VOG_STACK, y, 2), [1.0, -1.0, -1.0, 1.0], rtol=1e-6)


def _numpy_vog(stack, y, num_classes):
    per_pixel = stack.mean(axis=2) if stack.ndim == 5 else stack
    raw = per_pixel.std(axis=0).reshape(stack.shape[1], -1).mean(axis=1)
    out = np.empty_like(raw)
    for c in range(num_classes):
        members = y == c
        spread = raw[members].std()
        out[members] = (raw[members] - raw[members].mean()) / (spread if spread > 0 else 1.0)
    return out


@pytest.mark.parametrize("shape", [(3, 9, 3, 2, 2), (4, 9, 1, 3, 3), (2, 9, 5)])
def test_vog_from_gradients_equals_numpy(shape):
    rng = np.random.default_rng(sum(shape))
    stack = rng.normal(size=shape)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(vog_from_gradients(torch.as_tensor(stack), torch.as_tensor(y), 3),
                               _numpy_vog(stack, y, 3), rtol=1e-5, atol=1e-6)


def test_vog_on_linear_models_is_the_std_of_the_weight_rows():
    # z = W x + b, so d z_y / d x = W[y] whatever x is: VoG = mean_d Std_t(W_t[y, d])
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 4)) for _ in range(4)]
    x, y = torch.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    models = [build_model("mlp", (4,), 3, hidden=[]) for _ in weights]
    for model, w in zip(models, weights):
        model.load_state_dict(linear_state(w, np.zeros(3)))
        model.eval()
    expected = np.stack(weights).std(axis=0).mean(axis=1)[y.numpy()]
    np.testing.assert_allclose(vog_raw(models, x, y), expected, rtol=1e-5)


def test_vog_checkpoints_are_the_evenly_spaced_ones():
    recipe = Recipe(epochs=20, checkpoints=5)
    assert vog_epochs(recipe) == [4, 8, 12, 16, 20] and 2 in recipe.checkpoint_epochs()
    assert vog_epochs(Recipe(epochs=10, checkpoints=3)) == [3, 7, 10]


def _input_grads_by_loop(model, x, y):
    rows = []
    for i in range(len(y)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        model(xi)[0, y[i]].backward()
        rows.append(xi.grad[0])
    return torch.stack(rows)


def test_vog_method_reads_the_spaced_checkpoints_only_and_averages_channels():
    # images with 2 channels through a ReLU MLP: input gradients differ between samples
    torch.manual_seed(5)
    shape, kwargs = (2, 2, 2), {"hidden": [6]}
    states = {e: build_model("mlp", shape, 3, **kwargs).state_dict() for e in (1, 5, 10)}
    x, y = torch.randn(12, *shape), torch.arange(12) % 3
    recipe = Recipe(model="mlp", model_kwargs=kwargs, epochs=10, checkpoints=2)  # spaced {5, 10}, early 1
    assert recipe.checkpoint_epochs() == [1, 5, 10]
    ctx = make_context(x, y, 3, recipe=recipe, checkpoints=states)
    models = {e: build_model("mlp", shape, 3, **kwargs) for e in states}
    for e, model in models.items():
        model.load_state_dict(states[e])
        model.eval()
    stack = torch.stack([_input_grads_by_loop(models[e], x, y) for e in (5, 10)]).detach()
    expected = _numpy_vog(stack.numpy().astype(np.float64), y.numpy(), 3)
    scores = np.asarray(get_method("vog").fn(ctx))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    with_early = torch.stack([_input_grads_by_loop(models[e], x, y) for e in (1, 5, 10)]).detach()
    assert not np.allclose(scores, _numpy_vog(with_early.numpy().astype(np.float64), y.numpy(), 3), atol=1e-3)


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


def _one_dimensional_curvature_context(y):
    weights = {1: np.array([[1.0], [-2.0]]), 2: np.array([[3.0], [0.5]])}
    x = torch.tensor([[0.3], [-1.0], [2.0]])
    ctx = make_context(x, y, 2, checkpoints={e: linear_state(w, np.zeros(2)) for e, w in weights.items()},
                       recipe=Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=2))
    hessians = [_exact_input_hessians(w, np.zeros(2), x)[:, 0, 0].numpy() for w in weights.values()]
    return ctx, hessians


def test_curvature_hvp_is_exact_in_one_dimension_and_averages_checkpoints():
    # with one input dimension v = +-1, so ||H v||^2 = H^2 = Tr(H^2) exactly, for any number of vectors
    ctx, hessians = _one_dimensional_curvature_context(torch.tensor([0, 1, 1]))
    expected = np.mean([h ** 2 for h in hessians], axis=0)
    np.testing.assert_allclose(get_method("curvature_hvp").fn(ctx), expected, rtol=1e-4)


def test_curvature_finite_differences_match_the_hessian_on_a_smooth_model():
    # one input dimension: || g(x + h v) - g(x) || / h = |H| + O(h) for v = +-1; averaged over checkpoints
    ctx, hessians = _one_dimensional_curvature_context(torch.tensor([0, 1, 1]))
    expected = np.mean([np.abs(h) for h in hessians], axis=0)
    np.testing.assert_allclose(get_method("curvature").fn(ctx), expected, rtol=1e-2)


def test_finite_difference_curvature_is_the_mean_norm_over_probes_in_chunks():
    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, hidden=[5]).eval()
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))
    h, n = 1e-2, 4
    ours = finite_difference_curvature(model, x, y, n, h, torch.Generator().manual_seed(3), rows=(n + 1) * 2)

    def loss_grad(points):  # plain autograd, one probe at a time: the reference for the batched pass
        points = points.clone().requires_grad_(True)
        F.cross_entropy(model(points), y, reduction="sum").backward()
        return points.grad

    # the chunks of 2 samples draw their probes in turn: rebuild them chunk by chunk
    v = torch.cat([(torch.randint(0, 2, (n, b - a, 6), generator=g) * 2 - 1).float()
                   for g in [torch.Generator().manual_seed(3)] for a, b in [(0, 2), (2, 4), (4, 6), (6, 7)]], dim=1)
    expected = torch.stack([(loss_grad(x + h * v[j]) - loss_grad(x)).norm(dim=1) for j in range(n)]).mean(0) / h
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


def test_finite_difference_curvature_reads_channels_last_images():
    """Images stored channels-last (an npz of (N, H, W, C) read as a permuted view) score as contiguous ones."""
    torch.manual_seed(0)
    model = build_model("airbench", (3, 16, 16), 3, widths=[4, 4, 4]).eval()
    contiguous = torch.randn(6, 3, 16, 16)
    channels_last = contiguous.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    y = torch.randint(0, 3, (6,))
    a = finite_difference_curvature(model, contiguous, y, 3, 1e-2, torch.Generator().manual_seed(1))
    b = finite_difference_curvature(model, channels_last, y, 3, 1e-2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _kink_context(x0, y):
    """r = relu(x), z = (r + 2, -r): a ReLU kink at x = 0."""
    state = {"blocks.0.1.weight": torch.tensor([[1.0]]), "blocks.0.1.bias": torch.zeros(1),
             "head.weight": torch.tensor([[1.0], [-1.0]]), "head.bias": torch.tensor([2.0, 0.0])}
    return make_context([[x0]], [y], 2, checkpoints={1: state},
                        recipe=Recipe(model="mlp", model_kwargs={"hidden": [1]}, epochs=1))


def test_finite_differences_read_the_label_through_a_kink_where_the_hessian_does_not():
    # 4e-4 from the kink, a probe of -h crosses it: the gradient there drops to 0, and the jump is
    # the gradient at x, -2 p_1 (y = 0) or 2 p_0 (y = 1): 0.24 or 1.76. Far from it, the difference
    # J^T (p' - p) does not depend on y. The exact Hessian never does (a linear piece).
    def score(name, x0, y):
        return float(np.asarray(get_method(name).fn(_kink_context(x0, y)))[0])

    assert score("curvature", 4e-4, 1) > 3 * score("curvature", 4e-4, 0)
    assert score("curvature", 0.5, 1) == pytest.approx(score("curvature", 0.5, 0), rel=1e-2)
    assert score("curvature_hvp", 4e-4, 1) == pytest.approx(score("curvature_hvp", 4e-4, 0), rel=1e-4)


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
    np.testing.assert_allclose(closed, per_sample_grad_norms(mlp, x, y, closed_form=False), rtol=1e-5)
    np.testing.assert_allclose(closed, loop_grad_norms(mlp, x, y).detach(), rtol=1e-5)
    cnn = build_model("cnn", (1, 6, 6), 4, width=2).eval()
    assert linear_grad_norms(cnn, torch.randn(3, 1, 6, 6), torch.tensor([0, 1, 2])) is None


# ---- chunked by the activation budget: the same scores as one unchunked pass --------------------
def _small_airbench(seed=0):
    torch.manual_seed(seed)
    model = build_model("airbench", (3, 16, 16), 4, widths=[4, 4, 4]).eval()
    with torch.no_grad():  # running statistics that move the scores
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model


def _tiny_budget(monkeypatch, budget=1):
    """An activation budget that makes every budgeted pass one sample (or row) long."""
    import bench.context

    monkeypatch.setattr(bench.context, "ACTIVATION_BUDGET", budget)


def test_rademacher_draws_what_int64_draws_converted_did():
    from methods.gradients import rademacher

    for shape in [(2, 9, 3, 4, 4), (10, 7, 5), (1,)]:
        g_old, g_new = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        old = (torch.randint(0, 2, shape, generator=g_old) * 2 - 1).to(dtype=torch.float32)
        new = rademacher(shape, g_new, "cpu")
        assert new.dtype == torch.float32 and torch.equal(new, old)
        assert torch.equal(torch.rand(4, generator=g_old), torch.rand(4, generator=g_new))  # same use of the stream


def test_hutchinson_in_budgeted_chunks_equals_one_pass_per_draw(monkeypatch):
    from methods.gradients import rademacher

    model, x, y = _small_airbench(), torch.randn(11, 3, 16, 16), torch.randint(0, 4, (11,))
    g = torch.Generator().manual_seed(5)
    expected = []
    for a, b in [(0, 4), (4, 8), (8, 11)]:  # the previous code: one product per draw of 4 samples
        v = rademacher((2, b - a, 3, 16, 16), g, "cpu")
        expected.append(input_hvp(model, x[a:b], y[a:b], v).pow(2).flatten(2).sum(2).mean(0))
    expected = torch.cat(expected)
    _tiny_budget(monkeypatch)
    got = hutchinson_curvature(model, x, y, 2, torch.Generator().manual_seed(5), batch_size=4)  # chunks of 1
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    got = hutchinson_curvature(model, x, y, 2, torch.Generator().manual_seed(5), batch_size=4, chunk=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_finite_difference_curvature_in_budgeted_passes_equals_one_pass(monkeypatch):
    model, x, y = _small_airbench(1), torch.randn(9, 3, 16, 16), torch.randint(0, 4, (9,))
    whole = finite_difference_curvature(model, x, y, 3, 1e-2, torch.Generator().manual_seed(2), rows=16)
    _tiny_budget(monkeypatch)  # passes of one row
    chunked = finite_difference_curvature(model, x, y, 3, 1e-2, torch.Generator().manual_seed(2), rows=16)
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)


def test_vog_in_budgeted_chunks_equals_the_whole_stack(monkeypatch):
    models = [_small_airbench(seed) for seed in range(3)]
    x, y = torch.randn(10, 3, 16, 16), torch.randint(0, 4, (10,))
    with torch.no_grad():
        stack = torch.stack([torch.func.grad(lambda xb: m(xb).gather(1, y[:, None]).sum())(x) for m in models])
    expected = vog_per_sample(stack)
    _tiny_budget(monkeypatch)
    np.testing.assert_allclose(vog_raw(models, x, y), expected, rtol=1e-5)
    np.testing.assert_allclose(vog_raw(models, x, y, batch_size=4), expected, rtol=1e-5)


def test_last_layer_grads_in_budgeted_passes_equal_one_pass(monkeypatch):
    model, x, y = _small_airbench(2), torch.randn(9, 3, 16, 16), torch.randint(0, 4, (9,))
    whole = last_layer_grad_sq_norms(model, x, y, batch_size=9)
    _tiny_budget(monkeypatch)
    np.testing.assert_allclose(last_layer_grad_sq_norms(model, x, y), whole, rtol=1e-5)


def test_budgeted_chunks_follow_the_activation_size():
    from methods._common import BACKWARD_COPIES, activation_budget, activation_values, sample_chunk

    mlp = build_model("mlp", (6,), 3, hidden=[5, 4])
    # input 6, Flatten 6, Linear 5, ReLU 5, Linear 4, ReLU 4, head 3
    assert activation_values(mlp, torch.randn(2, 6)) == 33
    mlp.train()
    assert sample_chunk(mlp, torch.randn(2, 6), BACKWARD_COPIES, budget=660) == 10 and mlp.training
    assert sample_chunk(mlp, torch.randn(2, 6), 1, extra=33, budget=660) == 10
    assert sample_chunk(mlp, torch.randn(2, 6), budget=1) == 1  # at least one sample
    small, wide = (build_model("airbench", (3, 32, 32), 10, widths=w).eval() for w in ([8, 8, 8], [32, 64, 64]))
    x = torch.randn(2, 3, 32, 32)
    assert sample_chunk(wide, x) < sample_chunk(small, x)  # a wider network, fewer samples a pass
    assert activation_budget("cpu") < activation_budget("cuda")
