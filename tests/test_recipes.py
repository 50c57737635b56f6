"""Every shipped default recipe trains: on small data each one learns far above chance
(the full-data accuracies are checked in tests/benchmarks/test_recipes_full.py)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from bench.data import Dataset, load_dataset, subsample
from bench.recipes import RECIPES
from bench.train import predict_logits, train


def _accuracy(recipe, data: Dataset) -> float:
    model = train(recipe, data.x_train, data.y_train, data.num_classes, seed=0, record=False).model
    return float((predict_logits(model, data.x_test).argmax(1) == data.y_test).float().mean())


def _shapes_task(n: int, shape, classes: int = 4) -> Dataset:
    """A learnable image task of any shape: each class is a smooth, left-right symmetric
    random pattern (so flips and small shifts keep it recognisable) plus pixel noise."""
    g = torch.Generator().manual_seed(0)
    patterns = F.interpolate(torch.randn(classes, shape[0], 4, 4, generator=g), size=shape[1:], mode="bilinear")
    patterns = (patterns + patterns.flip(-1)) / 2
    y = torch.arange(n) % classes
    x = patterns[y] + 0.5 * torch.randn(n, *shape, generator=g)
    cut = n * 4 // 5
    return Dataset("shapes", x[:cut], y[:cut], x[cut:], y[cut:], classes)


@pytest.mark.parametrize("name", ["digits", "blobs", "moons", "spirals"])
def test_vector_and_digit_recipes_learn(name):
    data = load_dataset(name)
    assert _accuracy(RECIPES[name], data) > {"digits": 0.95, "blobs": 0.75, "moons": 0.9, "spirals": 0.8}[name]


def test_mnist_recipe_learns_a_small_subset(shared_data):
    data = subsample(load_dataset("mnist", shared_data), 3000)
    assert _accuracy(RECIPES["mnist"], data) > 0.93


@pytest.mark.parametrize("name", ["fashion-mnist", "kmnist", "cifar10"])
def test_image_recipes_learn_a_synthetic_task_of_their_shape(name):
    """cifar100's recipe is cifar10's with more epochs; the N variants share them too."""
    shape = (3, 32, 32) if name.startswith("cifar") else (1, 28, 28)
    data = _shapes_task(500, shape)
    recipe = replace(RECIPES[name], epochs=3, batch_size=32)
    assert _accuracy(recipe, data) > 0.8


def test_breast_cancer_recipe_learns_the_table():
    """Its clean test accuracy is 96.5-97.4% over seeds 0-2 (114 test rows)."""
    assert _accuracy(RECIPES["breast-cancer"], load_dataset("breast-cancer")) > 0.95
