"""Known answers for the H-CAT identifiers (allsh, conf_agree, detector) on hand-made models and
trajectories: closed-form KL divergences, the countable outcomes of MC dropout on a one-feature
model, and the packaged detector on constructed trajectories."""
import importlib.util
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.recipes import Recipe
from bench.registry import get_method
from methods import hcat
from methods_support import dynamics_from, linear_state, make_context

ROOT = Path(__file__).resolve().parents[1]
LINEAR = Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=1)


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _bernoulli_kl(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _two_class_ctx(x, w, b, recipe=LINEAR, seed=0):
    """A linear two-class model on 1-D inputs: logits (0, w x + b)."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, 1)
    state = linear_state([[0.0], [w]], [0.0, b])
    return make_context(x, np.zeros(len(x), dtype=int), 2, recipe=recipe, checkpoints={recipe.epochs: state},
                        seed=seed, needs={"final_model"})


# ---- allsh ----------------------------------------------------------------------------------
def test_allsh_scores_is_the_kl_from_the_original_to_each_copy():
    """A deterministic shift by delta: KL(Bern(s(a)) || Bern(s(a + w delta))) in closed form."""
    x, w, b, delta = np.array([-2.0, -0.3, 0.0, 0.4, 3.0]), 1.5, 0.2, 0.5
    ctx = _two_class_ctx(x, w, b)
    got = hcat.allsh_scores(ctx.final_model, ctx.x, lambda batch, g: batch + delta, 3, torch.Generator()).numpy()
    a = w * x + b
    np.testing.assert_allclose(got, _bernoulli_kl(_sigmoid(a), _sigmoid(a + w * delta)), rtol=1e-4, atol=1e-7)
    # the direction matters: KL(p || q) is not KL(q || p), and H-CAT's is from the original
    assert not np.allclose(got, _bernoulli_kl(_sigmoid(a + w * delta), _sigmoid(a)), rtol=1e-3)


def test_allsh_on_vectors_is_kl_under_gaussian_noise_of_0_3_input_std():
    """The registered method: 4 copies with noise 0.3 * std(x) drawn from its seeded stream."""
    x, w, b = np.linspace(-3, 3, 13), 2.0, -0.5
    ctx = _two_class_ctx(x, w, b, seed=7)
    got = np.asarray(get_method("allsh").fn(ctx))
    generator = hcat.method_generator(7, hcat.ALLSH_STREAM)
    std = float(torch.as_tensor(x, dtype=torch.float32).std())
    kls = []
    for _ in range(hcat.ALLSH_COPIES):
        noise = torch.randn((len(x), 1), generator=generator).numpy()[:, 0]
        kls.append(_bernoulli_kl(_sigmoid(w * x + b), _sigmoid(w * (x + 0.3 * std * noise) + b)))
    np.testing.assert_allclose(got, np.mean(kls, axis=0), rtol=1e-3, atol=1e-7)
    # near the boundary the prediction moves most; a saturated sample hardly moves
    assert got[6] > 20 * got[0] and got[6] > 20 * got[-1]
    np.testing.assert_array_equal(got, np.asarray(get_method("allsh").fn(_two_class_ctx(x, w, b, seed=7))))
    assert not np.allclose(got, np.asarray(get_method("allsh").fn(_two_class_ctx(x, w, b, seed=8))))


def _sum_model_images(augment: str):
    """Images zero outside a central 4x4 patch (2-pixel border) and a model reading only the pixel
    sum: flips and translations by up to 2 pixels (zero fill) leave its prediction unchanged."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(6, 1, 8, 8)
    x[:, :, 2:6, 2:6] = torch.rand(6, 1, 4, 4, generator=g) - 0.5
    recipe = Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=1, augment=augment)
    state = linear_state(np.stack([np.ones(64), np.zeros(64)]), [0.0, 0.0])
    return make_context(x, torch.zeros(6, dtype=torch.int64), 2, recipe=recipe, checkpoints={1: state},
                        needs={"final_model"})


def test_allsh_on_images_uses_the_recipes_own_augmentation():
    # flip-translate (airbench's): the sum is invariant, so the KL is zero for every sample
    np.testing.assert_allclose(np.asarray(get_method("allsh").fn(_sum_model_images("flip-translate"))), 0.0,
                               atol=1e-6)
    # a recipe without augmentation: Gaussian noise moves the sum, so the KL is positive
    assert (np.asarray(get_method("allsh").fn(_sum_model_images("none"))) > 1e-4).all()
    _, words = hcat.allsh_perturbation(torch.zeros(2, 1, 8, 8), "flip-translate", 1.0)
    assert "flip-translate" in words
    _, words = hcat.allsh_perturbation(torch.zeros(2, 5), "flip-crop", 0.3)
    assert "Gaussian" in words  # vectors are never flipped or cropped


# ---- conf_agree -----------------------------------------------------------------------------
def test_mc_dropout_without_dropout_is_the_maximum_softmax_probability():
    x, w, b = np.linspace(-2, 2, 9), 1.3, 0.1
    ctx = _two_class_ctx(x, w, b)
    got = hcat.mc_dropout_confidence(ctx.final_model, ctx.x, 0.0, 10, torch.Generator()).numpy()
    p = _sigmoid(w * x + b)
    np.testing.assert_allclose(got, np.maximum(p, 1 - p), rtol=1e-5)


def test_conf_agree_counts_the_dropped_passes():
    """One feature h = 1 and logits (h, -h) after dropout: a kept pass gives max softmax
    s = sigmoid(2 / 0.8) (inverted scaling), a dropped one 0.5, so the score is
    ((T - m) s + m / 2) / T for the number m of dropped passes, and m averages rate * T."""
    n = 4000
    x = np.ones((n, 1), dtype=np.float32)
    state = linear_state([[1.0], [-1.0]], [0.0, 0.0])
    ctx = make_context(x, np.zeros(n, dtype=int), 2, recipe=LINEAR, checkpoints={1: state}, seed=3,
                       needs={"final_model"})
    got = np.asarray(get_method("conf_agree").fn(ctx), dtype=np.float64)
    rate, passes = hcat.DROPOUT_RATE, hcat.DROPOUT_PASSES
    assert (rate, passes) == (0.2, 10)
    s = _sigmoid(2 / (1 - rate))
    dropped = passes * (s - got) / (s - 0.5)
    np.testing.assert_allclose(dropped, np.round(dropped), atol=1e-4)
    assert dropped.min() >= 0 and dropped.max() <= passes
    assert dropped.mean() / passes == pytest.approx(rate, abs=0.01)
    assert len(np.unique(np.round(dropped))) > 3  # the masks differ between samples
    np.testing.assert_array_equal(got, np.asarray(get_method("conf_agree").fn(ctx)))  # seeded


def test_conf_agree_ranks_less_confident_samples_harder():
    x = np.array([0.05, 0.5, 3.0])
    got = np.asarray(get_method("conf_agree").fn(_two_class_ctx(x, 2.0, 0.0)))
    assert got[0] < got[1] < got[2]
    assert not get_method("conf_agree").higher_is_harder


# ---- detector -------------------------------------------------------------------------------
@pytest.mark.parametrize("values, expected", [
    ([[0.0, 1.0, 2.0]], np.linspace(0, 2, 20)[None]),
    ([[0.3]], np.full((1, 20), 0.3)),
    (np.arange(40, dtype=float).reshape(2, 20), np.arange(40, dtype=float).reshape(2, 20)),
    ([[0.0, 10.0]], np.linspace(0, 10, 20)[None]),
])
def test_trajectories_are_linearly_resampled_to_20_points(values, expected):
    np.testing.assert_allclose(hcat.resample_trajectories(np.asarray(values)), expected, rtol=1e-6, atol=1e-5)


def _curves(epochs: int) -> np.ndarray:
    t = np.linspace(0, 1, epochs)
    return np.stack([1 - 0.9 * np.exp(-8 * t),  # clean: learned early
                     np.full(epochs, 0.03),  # noisy, never fitted
                     0.02 + 0.9 * np.clip((t - 0.7) / 0.3, 0, 1),  # noisy, memorised late
                     np.full(epochs, 0.95)])


def test_the_packaged_detector_flags_noisy_trajectories_at_any_epoch_count():
    detector, _ = hcat.load_detector()
    scores = {e: hcat.detector_scores(detector, _curves(e)) for e in (8, 20, 100)}
    for s in scores.values():
        clean, never, late, confident = s
        assert never > 2 and late > 0 > clean and confident < -2, s
    np.testing.assert_allclose(scores[8], scores[100], atol=0.3)  # resampling makes the epoch count irrelevant


def test_detector_reads_the_dynamics_p_y():
    p_y = _curves(12)
    ctx = make_context(np.zeros((4, 3)), [0, 1, 0, 1], 2, dynamics=dynamics_from(p_y=p_y), needs={"dynamics"})
    got = np.asarray(get_method("detector").fn(ctx))
    np.testing.assert_allclose(got, hcat.detector_scores(hcat.load_detector()[0], p_y), rtol=1e-6)
    assert got[1] > got[0] and get_method("detector").higher_is_harder
    assert get_method("detector").needs == {"dynamics"}


def _ctx_on(x, key=None):
    ctx = make_context(x, np.arange(len(x)) % 2, 2, dynamics=dynamics_from(p_y=np.full((len(x), 3), 0.5)),
                       needs={"dynamics"})
    if key is not None:
        ctx.dataset_key = key  # what the context will carry once it names its dataset
    return ctx


def test_detector_refuses_its_training_dataset():
    _, meta = hcat.load_detector()
    assert str(meta["dataset"]) == "moons"
    moons = load_dataset("moons")
    with pytest.raises(hcat.TrainedOnThisDataset, match="trained on 'moons'"):
        get_method("detector").fn(_ctx_on(moons.x_train))
    # a planted pool whose inputs were partly corrupted is still moons
    corrupted = moons.x_test.clone()
    corrupted[: len(corrupted) // 4] += 0.37
    with pytest.raises(hcat.TrainedOnThisDataset):
        get_method("detector").fn(_ctx_on(corrupted))
    # by key, where the context names its dataset, whatever the rows
    for key in ("moons", "moons-n500"):
        with pytest.raises(hcat.TrainedOnThisDataset, match=key):
            get_method("detector").fn(_ctx_on(np.zeros((6, 2)), key))
    # another dataset of the same input shape, and other keys, are scored
    assert np.isfinite(get_method("detector").fn(_ctx_on(load_dataset("blobs2d").x_train))).all()
    assert np.isfinite(get_method("detector").fn(_ctx_on(np.zeros((6, 2)), "moons2"))).all()


def test_the_weights_are_small_package_data_and_documented():
    assert hcat.DETECTOR_FILE.exists() and hcat.DETECTOR_FILE.stat().st_size < 32 * 1024
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert hcat.DETECTOR_FILE.name in config["tool"]["setuptools"]["package-data"]["methods"]
    _, meta = hcat.load_detector()
    assert str(meta["noise"]) == "label-uniform 0.2" and len(meta["seeds"]) == 8
    doc = get_method("detector").fn.__doc__
    assert "TRAINED ON moons" in doc and "scripts/train_detector.py" in doc


def test_the_training_script_writes_loadable_weights(tmp_path):
    spec = importlib.util.spec_from_file_location("train_detector", ROOT / "scripts" / "train_detector.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        assert script.main(["--seeds", "2", "--epochs", "1", "--out", str(tmp_path / "d.npz"),
                            "--results", str(tmp_path / "results")]) == 0
    finally:
        torch.set_num_threads(threads)
    detector, meta = hcat.load_detector(str(tmp_path / "d.npz"))
    assert str(meta["dataset"]) == "moons" and tuple(meta["input_shape"]) == (2,)
    assert np.isfinite(hcat.detector_scores(detector, _curves(5))).all()


# ---- all three --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["allsh", "conf_agree", "detector"])
def test_documented_with_citation_variant_and_deviations(name):
    method = get_method(name)
    doc = method.fn.__doc__
    assert "Variant" in doc and "Deviation" in doc and "H-CAT" in doc
    assert any(str(year) in method.citation for year in range(2015, 2026)) and "H-CAT" in method.citation
    assert method.label_blind == (name != "detector")
