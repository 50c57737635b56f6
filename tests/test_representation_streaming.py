"""Prediction depth streamed chunk by chunk equals the whole-array computation."""
import numpy as np
import pytest
import torch

from bench.models import build_model
from methods._common import layer_representations
from methods import representation as rep


@pytest.mark.parametrize("support", [None, np.sort(np.random.default_rng(0).choice(300, 120, replace=False))])
def test_streamed_prediction_depths_equal_whole_arrays(monkeypatch, support):
    monkeypatch.setattr(rep, "DISTANCE_BUDGET", 120 * 37)  # several query chunks
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
