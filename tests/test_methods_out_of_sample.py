"""cleanlab and holdout read out-of-sample probabilities; the engine's folds must be out of sample."""
import numpy as np
import pytest
import torch
from cleanlab.rank import get_label_quality_scores

from bench.context import FoldPredictions
from bench.data import Dataset
from bench.engine import Engine
from bench.recipes import Recipe
from bench.registry import get_method, select_methods
from bench.store import Store
from bench.train import predict_logits, train
from methods_support import make_context, single_thread

PROBS = np.array([
    [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]],
    [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.1, 0.6, 0.3]],
])
LABELS = np.array([0, 1, 2, 0])


def _ctx():
    folds = FoldPredictions(PROBS, np.array([[0, 1, 0, 1], [1, 0, 0, 1]]))
    return make_context(np.zeros((4, 2)), LABELS, 3, folds=folds)


def test_cleanlab_is_the_packages_confident_learning_averaged_over_repeats():
    from cleanlab.filter import find_label_issues

    expected = np.mean([get_label_quality_scores(LABELS, p, method="normalized_margin")
                        - find_label_issues(LABELS, p, filter_by="prune_by_noise_rate") for p in PROBS], axis=0)
    np.testing.assert_allclose(get_method("cleanlab").fn(_ctx()), expected)


def test_cleanlab_ranks_flagged_samples_first():
    from methods.out_of_sample import confident_learning_scores

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    probs = np.full((60, 3), 0.05)
    probs[np.arange(60), labels] = 0.9
    wrong = np.array([3, 25, 47])
    probs[wrong] = 0.05
    probs[wrong, (labels[wrong] + 1) % 3] = 0.9  # confidently another class: a label issue
    probs += rng.uniform(0, 0.01, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    scores = confident_learning_scores(labels, probs)
    assert set(np.argsort(scores)[:3]) == set(wrong)
    assert (scores[wrong] < 0).all() and (np.delete(scores, wrong) >= 0).all()


def test_holdout_is_the_mean_held_out_probability_of_the_label():
    # p_y per repeat: [0.7, 0.8, 0.4, 0.2] and [0.6, 0.4, 0.8, 0.1]
    np.testing.assert_allclose(get_method("holdout").fn(_ctx()), [0.65, 0.6, 0.6, 0.15])
    assert not get_method("holdout").higher_is_harder
    assert "C-score" in get_method("holdout").fn.__doc__


def test_holdout_is_continuous_where_the_accuracy_ties():
    # both samples are right in every repeat (accuracy 1 and 1), with different confidence
    probs = np.array([[[0.9, 0.1], [0.55, 0.45]], [[0.8, 0.2], [0.6, 0.4]], [[0.7, 0.3], [0.65, 0.35]]])
    ctx = make_context(np.zeros((2, 2)), [0, 0], 2, folds=FoldPredictions(probs, np.zeros((3, 2), dtype=int)))
    np.testing.assert_allclose(get_method("holdout").fn(ctx), [0.8, 0.6])


@pytest.fixture(scope="module")
def noise_engine(tmp_path_factory):
    """Pure-noise labels and a model big enough to memorise them: in-sample accuracy is ~1,
    out-of-sample accuracy is chance, so a leak of in-sample probabilities is visible."""
    g = torch.Generator().manual_seed(0)
    n, d = 120, 10
    x, y = torch.randn(n, d, generator=g), torch.randint(0, 2, (n,), generator=g)
    data = Dataset("noise", x, y, x[:0], y[:0], 2)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [128]}, epochs=100, batch_size=None, optimizer="adam",
                    lr=0.01, weight_decay=0.0, schedule="constant", folds=4, fold_repeats=2)
    engine = Engine(data, recipe, select_methods("cleanlab,holdout"), [0], torch.device("cpu"),
                    Store(tmp_path_factory.mktemp("results")), quiet=True)
    with single_thread():
        yield engine, recipe


def test_the_recipe_memorises(noise_engine):
    engine, recipe = noise_engine
    pool = engine.pool("train")
    model = train(recipe, pool.x, pool.y, 2, seed=0, record=False).model
    assert (predict_logits(model, pool.x).argmax(1) == pool.y).float().mean() > 0.95


def test_fold_probabilities_are_out_of_sample(noise_engine):
    engine, _ = noise_engine
    pool = engine.pool("train")
    folds = engine.estimator.run(pool, 0).part("folds")
    y = pool.y.numpy()
    assert folds.probs.shape == (2, len(y), 2) and np.allclose(folds.probs.sum(2), 1, atol=1e-5)
    # every sample is held out exactly once per repeat, by a stratified partition
    for r in range(2):
        assert sorted(np.unique(folds.fold[r])) == [0, 1, 2, 3]
    # in-sample probabilities of a memorising model would be ~100% right on noise labels
    accuracy = (folds.probs.argmax(2) == y).mean()
    assert accuracy < 0.7, f"out-of-fold accuracy {accuracy:.2f} on pure-noise labels: probabilities leaked"
    # and the methods read exactly these probabilities
    scores = engine.scores(pool, 0)
    np.testing.assert_allclose(scores["holdout"].natural, folds.probs[:, np.arange(len(y)), y].mean(0), rtol=1e-6)
    assert scores["cleanlab"].cost["scoring_s"] < scores["cleanlab"].cost["shared_s"] + 1.0
