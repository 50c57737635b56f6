"""Representations streamed chunk by chunk (by the distance and the activation budgets) equal the
whole-array computations."""
import numpy as np
import pytest
import torch

from bench.models import build_model
from methods._common import layer_representations
from methods import representation as rep


SUPPORT = np.sort(np.random.default_rng(0).choice(300, 120, replace=False))


def _tiny_budget(monkeypatch, budget=1):
    """An activation budget that makes every budgeted forward pass one sample long."""
    import bench.context

    monkeypatch.setattr(bench.context, "ACTIVATION_BUDGET", budget)


@pytest.mark.parametrize("activation_budget", [None, 5000])
@pytest.mark.parametrize("support", [None, SUPPORT])
def test_streamed_prediction_depths_equal_whole_arrays(monkeypatch, support, activation_budget):
    monkeypatch.setattr(rep, "DISTANCE_BUDGET", 120 * 37)  # several query chunks
    if activation_budget is not None:
        _tiny_budget(monkeypatch, activation_budget)  # query chunks smaller than the distance budget's
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 3, width=2).eval()
    x = torch.randn(300, 1, 8, 8)
    y = np.random.default_rng(1).integers(0, 3, 300)
    with torch.no_grad():
        final_pred = model(x).argmax(1).numpy()
    layers = [h.numpy() for h in layer_representations(model, x)]
    expected = rep.prediction_depths(layers, y, final_pred, 3, k=5, support=support)
    got = rep.streamed_prediction_depths(model, x, y, final_pred, 3, k=5, support=support)
    assert len(set(expected.tolist())) > 1  # the depths vary: the comparison means something
    np.testing.assert_array_equal(got, expected)


def _whole_layers(model, x, max_dim=4096):
    """Every layer of the model for all of x in one pass, pooled as ``layer_chunks`` does."""
    from methods._common import _flat

    layers, h = [_flat(x, max_dim)], x
    with torch.no_grad():
        for block in model.blocks:
            h = block(h)
            layers.append(_flat(h, max_dim))
        return layers + [model.head(h.flatten(1))]


def test_layer_representations_in_budgeted_chunks_and_of_rows_equal_one_pass(monkeypatch):
    torch.manual_seed(1)
    model = build_model("airbench", (3, 16, 16), 4, widths=[4, 8, 8]).eval()
    x = torch.randn(20, 3, 16, 16)
    whole = _whole_layers(model, x, max_dim=200)  # the first blocks are pooled
    _tiny_budget(monkeypatch)
    for got, expected in zip(layer_representations(model, x, max_dim=200), whole, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    rows = torch.as_tensor([17, 3, 4, 11])
    for got, expected in zip(layer_representations(model, x, max_dim=200, batch_size=3, rows=rows), whole, strict=True):
        torch.testing.assert_close(got, expected[rows], rtol=1e-5, atol=1e-6)


def test_sphere_class_radii_of_a_module_in_budgeted_chunks_equal_one_chunk(monkeypatch):
    torch.manual_seed(2)
    model = build_model("airbench", (3, 16, 16), 3, widths=[4, 4, 4]).eval()
    x, y = torch.randn(30, 3, 16, 16), torch.arange(30) % 3
    whole = rep.sphere_class_radii(model.blocks[0], x, y, 3, chunk=30)
    _tiny_budget(monkeypatch)
    torch.testing.assert_close(rep.sphere_class_radii(model.blocks[0], x, y, 3), whole, rtol=1e-10, atol=1e-12)


def test_cosine_to_class_mean_in_row_chunks_equals_the_whole_arrays(monkeypatch):
    rng = np.random.default_rng(3)
    features, y = rng.normal(size=(50, 6)), rng.integers(0, 4, 50)
    means = rep.class_means(features, y, 4)[y]
    expected = (features * means).sum(1) / (np.linalg.norm(features, axis=1) * np.linalg.norm(means, axis=1) + 1e-12)
    monkeypatch.setattr(rep, "COSINE_ROWS", 7)
    np.testing.assert_array_equal(rep.cosine_to_class_mean(features, y, 4), expected)


def test_run_logits_and_features_in_budgeted_chunks_equal_one_pass(monkeypatch):
    from bench.recipes import Recipe
    from methods_support import make_context

    recipe = Recipe(model="airbench", model_kwargs={"widths": [4, 4, 4]}, epochs=1)
    torch.manual_seed(4)
    state = recipe.build((3, 16, 16), 3).state_dict()
    x, y = torch.randn(13, 3, 16, 16), torch.randint(0, 3, (13,))
    _tiny_budget(monkeypatch)
    run = make_context(x, y, 3, recipe=recipe, checkpoints={1: state})._run
    with torch.no_grad():
        logits, features = run.final_model(x), run.final_model.embed(x).numpy()
    torch.testing.assert_close(run.final_logits, logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.features, features, rtol=1e-5, atol=1e-6)
