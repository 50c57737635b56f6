"""Models trained together (``bench.train.train_models``) equal models trained one at a time; the
K-fold part keeps its fold models and ``fold_model_predict`` reproduces its out-of-sample
probabilities."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench import store as st
from bench.data import Dataset, load_dataset
from bench.estimation import Estimator
from bench.recipes import Recipe
from bench.train import stacking_pays, train_models
from bench.store import Store
from bench.train import fold_model_predict, predict_logits, train

MLP = Recipe(model="mlp", model_kwargs={"hidden": [32]}, epochs=2, batch_size=64, lr=0.05)
ADAM = replace(MLP, optimizer="adam", lr=2e-3, weight_decay=1e-4, label_smoothing=0.1, schedule="onecycle")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _uneven_rows(n, sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(n, size, replace=False)) for size in sizes]


@pytest.mark.parametrize("recipe", [MLP, ADAM, replace(MLP, batch_size=None, epochs=3)])
def test_stacked_equals_sequential_with_unequal_sizes(digits, recipe):
    """Sizes 500 and 498 share steps per epoch (padded, masked); 300 trains in its own group."""
    x, y = digits.x_train, digits.y_train
    rows = _uneven_rows(len(y), [500, 498, 300, 500])
    seeds = [11, 12, 13, 14]
    stacked = train_models(recipe, x, y, 10, rows, seeds, stacked=True)
    single = train_models(recipe, x, y, 10, rows, seeds, stacked=False)
    for a, b in zip(stacked, single):
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4)
    assert not torch.allclose(stacked[0]["head.weight"], stacked[3]["head.weight"])  # seeds differ


def test_stacked_stop_after_is_the_full_schedule_cut(digits):
    recipe = replace(ADAM, epochs=5)
    x, y = digits.x_train, digits.y_train
    rows = [np.arange(len(y))] * 2
    stacked = train_models(recipe, x, y, 10, rows, [1, 2], stop_after=2, stacked=True)
    alone = train(recipe, x, y, 10, 2, record=False, stop_after=2).model.state_dict()
    for name, value in alone.items():
        torch.testing.assert_close(stacked[1][name], value, atol=2e-5, rtol=1e-4)


def _random_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.3 + y[:, None, None, None].float() * 0.5
    return x, y


def test_stacked_lenet_held_out_probabilities_match():
    """LeNet-5 (the MNIST recipe's model, Adam), tiny data: the held-out probabilities of
    models trained stacked and one at a time agree up to float noise."""
    recipe = Recipe(model="lenet", epochs=2, batch_size=16, optimizer="adam", lr=2e-3, weight_decay=0.0)
    x, y = _random_images(90)
    held = [np.arange(0, 90, 3), np.arange(1, 90, 3)]
    rows = [np.setdiff1d(np.arange(90), h) for h in held]
    stacked = train_models(recipe, x, y, 3, rows, [5, 6], stacked=True)
    single = train_models(recipe, x, y, 3, rows, [5, 6], stacked=False)
    model = recipe.build((1, 28, 28), 3).eval()
    for h, a, b in zip(held, stacked, single):
        model.load_state_dict(a)
        pa = torch.softmax(predict_logits(model, x[h]), 1)
        model.load_state_dict(b)
        pb = torch.softmax(predict_logits(model, x[h]), 1)
        torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-4)


def test_stacking_is_chosen_for_mlps_not_cpu_convolutions():
    cpu = torch.device("cpu")
    assert stacking_pays(MLP, (64,), 10, cpu)  # 2.4k parameters
    assert not stacking_pays(replace(MLP, model_kwargs={"hidden": [256, 256]}), (64,), 10, cpu)
    assert not stacking_pays(Recipe(model="lenet"), (1, 28, 28), 10, cpu)
    assert stacking_pays(Recipe(model="lenet"), (1, 28, 28), 10, torch.device("cuda"))
    assert not stacking_pays(Recipe(model="cnn", augment="crop"), (1, 28, 28), 10, torch.device("cuda"))


def test_fold_models_are_kept_and_predict_out_of_sample(digits, tmp_path):
    recipe = replace(MLP, folds=3, fold_repeats=2, early_runs=2)
    data = Dataset("digits-small", digits.x_train[:300], digits.y_train[:300], digits.x_test[:0], digits.y_test[:0], 10)
    estimator = Estimator(data, recipe, torch.device("cpu"), Store(tmp_path), pool_size=240)
    pool = estimator.pool("train")
    estimator.ensure(pool, 0, {"folds"})
    folder = estimator.folder(pool, 0, "folds")
    saved = st.read_npz(folder / "folds.npz")
    models = torch.load(folder / "fold_models.pt", weights_only=True)
    assert len(models["states"]) == 2 and all(len(r) == 3 for r in models["states"])
    assert np.array_equal(models["pool_rows"].numpy(), pool.rows)
    for repeat in range(2):
        probs = fold_model_predict(models["states"], saved["fold"], recipe, (64,), 10, pool.x, pool.rows, repeat,
                                   pool_rows=models["pool_rows"])
        np.testing.assert_allclose(probs.numpy(), saved["probs"][repeat], atol=1e-6)
    # any subset, in any order, by train-split row
    pick = np.array([7, 3, 100])
    probs = fold_model_predict(models["states"], saved["fold"], recipe, (64,), 10, pool.x[pick], pool.rows[pick],
                               pool_rows=models["pool_rows"])
    np.testing.assert_allclose(probs.numpy(), saved["probs"][0][pick], atol=1e-6)
    outside = np.setdiff1d(np.arange(300), pool.rows)[:1]
    with pytest.raises(ValueError, match="not in the pool"):
        fold_model_predict(models["states"], saved["fold"], recipe, (64,), 10, data.x_train[outside], outside,
                           pool_rows=models["pool_rows"])
    # each fold model's own training rows exclude what it scores
    fold_of = saved["fold"][0]
    assert set(np.unique(fold_of)) == {0, 1, 2}
