"""Every planted kind passes its check against a clean reference model, on digits and on MNIST.

The reference is a model trained on one half of the train split; the other half is the pool
the kinds are planted in, so the reference never trained on a pool row (as the K-fold models
of the detection track never train on the rows they predict)."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.inject import (ATYPICAL_TARGET, NEAR_OOD_DROP, Planted, default_sources, most_likely_other,
                          nearest_other_class, plant)
from bench.planting_check import ATYPICAL_FLOOR, CRITERIA, HARDNESS_DROP, check_planted, check_planting
from bench.recipes import LENET, RECIPES
from bench.train import predict_logits, train

KINDS = ["label-uniform", "label-pair", "label-instance", "label-adjacent", "near-ood", "far-ood", "domain-shift",
         "crop-shift", "atypical"]


def _split_halves(x, y):
    order = np.random.default_rng(0).permutation(len(y))
    a, b = torch.as_tensor(order[: len(y) // 2]), torch.as_tensor(order[len(y) // 2:])
    return x[a], y[a], x[b], y[b]


def clean_reference(name: str):
    """(name, pool x, pool y, predict, sources with clean_predict and a confusion matrix)."""
    from conftest import SHARED_DATA

    torch.manual_seed(0)
    if name == "digits":
        data, recipe = load_dataset("digits"), RECIPES["digits"]
    else:
        if not (SHARED_DATA / "MNIST" / "raw").exists() or not (SHARED_DATA / "FashionMNIST" / "raw").exists():
            pytest.skip(f"needs MNIST and Fashion-MNIST in {SHARED_DATA}")
        data, recipe = load_dataset("mnist", SHARED_DATA, subset=6000), replace(LENET, epochs=4)
    xa, ya, xb, yb = _split_halves(data.x_train, data.y_train)
    model = train(recipe, xa, ya, data.num_classes, seed=0, record=False).model

    def predict(x, rows):
        return torch.softmax(predict_logits(model, x).float(), 1).numpy()

    pred = predict(xb, None).argmax(1)
    confusion = np.bincount(yb.numpy() * 10 + pred, minlength=100).reshape(10, 10)
    sources = replace(default_sources(data, SHARED_DATA), confusion=lambda: confusion, clean_predict=predict)
    return name, xb, yb, predict, sources


@pytest.fixture(scope="module", params=["digits", "mnist"])
def reference(request):
    return clean_reference(request.param)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_passes_its_check(reference, kind):
    name, x, y, predict, sources = reference
    planted = plant(kind, x, y, 10, 0.1, 0, sources)
    check = check_planted(predict, kind, planted, x, 10)
    print(name, check.summary())
    assert check.holds, check.summary()
    if kind == "near-ood":  # calibrated on other rows, read on the planted ones: close to the target
        assert abs((check.original - check.planted) - NEAR_OOD_DROP) <= 0.1, check.summary()
    if kind in ("label-uniform", "label-pair", "label-instance", "label-adjacent", "far-ood", "crop-shift"):
        assert check.hard, check.summary()  # far from the originals' p_y
    if kind == "domain-shift":
        # calibrated per class to near-ood's target drop: on all pool rows (not the 7 to 30 a class has at rate 0.1,
        # where a class's mean is noisy) every class's p_y drops by at least HARDNESS_DROP
        every = check_planted(predict, kind, plant(kind, x, y, 10, 1.0, 0, sources), x, 10)
        print(name, "all rows:", every.summary())
        assert every.holds and every.hard, every.summary()
    if kind == "atypical":
        # every class planted; on all pool rows (72 to 300 per class, not the 7 to 30 of rate 0.1, where a
        # class's mean p_y is noisy) it is valid and hard, every class's point estimate clears the floor,
        # and the calibration (on other draws) brings each class's mean p_y within 0.15 of its target
        assert check.per_class_count.min() > 0
        every = check_planted(predict, kind, plant(kind, x, y, 10, 1.0, 0, sources), x, 10)
        print(name, "all rows:", every.summary())
        assert every.holds and every.hard, every.summary()
        assert np.nanmin(every.per_class_planted) >= ATYPICAL_FLOOR, every.summary()
        assert np.abs(every.per_class_hardness_planted - ATYPICAL_TARGET).max() < 0.15, every.summary()


def test_near_ood_without_a_predictor_uses_the_default_severity_and_still_shifts(reference):
    name, x, y, predict, sources = reference
    planted = plant("near-ood", x, y, 10, 0.1, 0, replace(sources, clean_predict=None))
    check = check_planted(predict, "near-ood", planted, x, 10)
    print(name, "default severity:", check.summary())
    assert check.original - check.planted >= 0.2


def test_the_checks_fail_a_mild_shift_and_a_turned_copy(reference):
    """The checks have teeth: a mild corruption (on MNIST the former near-ood, blur 1 pixel and
    noise 0.5 std) is no shift, and a half-turned copy (6 <-> 9) is no valid class member."""
    from bench.inject import _spread, gaussian_blur, near_ood_corrupt, restandardise

    name, x, y, predict, _ = reference
    rows = np.arange(0, len(y), 5)
    index = torch.as_tensor(rows)
    noise = torch.randn(x[index].shape, generator=torch.Generator().manual_seed(0))
    mild = near_ood_corrupt(x[index], _spread(x), 0.25, noise, 0)
    assert not check_planting(predict, "near-ood", mild, x[index], y[index], y[index], rows, 10).holds
    if name == "mnist":
        former = restandardise(gaussian_blur(x[index], 1.0) + 0.5 * _spread(x) * noise, x[index],
                               torch.Generator().manual_seed(0))
        assert not check_planting(predict, "near-ood", former, x[index], y[index], y[index], rows, 10).holds
    turned = torch.rot90(x[index], 2, (2, 3))
    assert not check_planting(predict, "atypical", turned, x[index], y[index], y[index], rows, 10).holds
    assert not check_planting(predict, "crop-shift", x[index], x[index], y[index], y[index], rows, 10).holds
    assert not check_planting(predict, "domain-shift", mild, x[index], y[index], y[index], rows, 10).holds


def test_label_instance_follows_the_clean_model_per_sample(reference):
    name, x, y, predict, sources = reference
    planted = plant("label-instance", x, y, 10, 0.2, 0, sources)
    rows = np.flatnonzero(planted.mask)
    index = torch.as_tensor(rows)
    expected = most_likely_other(predict(x[index], rows), y[index].numpy())
    assert np.array_equal(planted.y[index].numpy(), expected) and (expected != y[index].numpy()).all()
    # the new label depends on the sample, not only on its class (unlike label-pair)
    assert max(len(set(expected[y[index].numpy() == c])) for c in range(10)) > 1
    fallback = plant("label-instance", x, y, 10, 0.2, 0, replace(sources, clean_predict=None))
    assert np.array_equal(fallback.y[index].numpy(), nearest_other_class(x, y, 10, index))


# ---- known answers ------------------------------------------------------------------------------
def _fixed(predictions, num_classes=3):
    table = np.eye(num_classes)[np.asarray(predictions)]
    return lambda x, rows: table[rows]


def test_label_kind_measures_the_share_predicting_the_given_label():
    predict = _fixed([0, 0, 1, 2, 2, 1])
    rows = np.arange(6)
    x = torch.zeros(6, 2)
    y_original = np.array([0, 0, 1, 2, 2, 2])
    y_label = np.array([1, 0, 2, 0, 1, 1])  # row 1 unchanged: the criterion fails on that alone
    check = check_planting(predict, "label-pair", x, x, y_label, y_original, rows, 3)
    assert check.planted == pytest.approx(2 / 6) and check.original == pytest.approx(5 / 6)
    np.testing.assert_allclose(check.per_class_planted, [0.5, 0.0, 1 / 3])
    np.testing.assert_allclose(check.per_class_original, [1.0, 1.0, 2 / 3])
    assert check.per_class_count.tolist() == [2, 1, 3] and not check.holds
    y_label[1] = 2
    assert check_planting(predict, "label-pair", x, x, y_label, y_original, rows, 3).holds


def test_input_kind_measures_accuracy_against_the_original_labels():
    rows = np.arange(8)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    clean, corrupted = np.array([0, 0, 0, 0, 1, 1, 1, 0]), np.array([0, 0, 1, 1, 1, 0, 1, 1])

    def predict(x, rows):
        return np.eye(2)[clean[rows] if x[0, 0] == 0 else corrupted[rows]]

    x0, x1 = torch.zeros(8, 2), torch.ones(8, 2)
    check = check_planting(predict, "atypical", x1, x0, y, y, rows, 2)
    assert check.original == pytest.approx(7 / 8) and check.planted == pytest.approx(5 / 8)
    np.testing.assert_allclose(check.per_class_planted, [0.5, 0.75])
    assert check.holds  # no class significantly below 0.5, below the originals
    near = check_planting(predict, "near-ood", x1, x0, y, y, rows, 2)
    # target: min(0.40, half of 7/8 - 1/2) = 0.1875; the drop 0.25 is within 0.5-1.5 x the target
    assert near.reference == pytest.approx(0.1875) and near.holds
    domain = check_planting(predict, "domain-shift", x1, x0, y, y, rows, 2)  # near-ood's criterion
    assert domain.reference == pytest.approx(0.1875) and domain.holds
    crop = check_planting(predict, "crop-shift", x1, x0, y, y, rows, 2)  # at least 0.5 x the target: 0.09375
    assert crop.reference == pytest.approx(0.1875) and crop.holds
    assert "(drop 25.0 points, at least 9.4)" in crop.summary()
    far = check_planting(predict, "far-ood", x1, x0, y, y, rows, 2)
    assert far.reference == pytest.approx(0.5 * 3 / 8 + 0.5 * 5 / 8)  # labels half/half, predictions 3/5
    assert far.planted == pytest.approx(5 / 8) and not far.holds  # 0.625 > chance 0.5 + margin 0.1


def test_far_ood_fails_when_the_label_still_shows():
    rows = np.arange(10)
    y = np.arange(10) % 2
    check = check_planting(_fixed(y, 2), "far-ood", torch.ones(10, 2), torch.zeros(10, 2), y, y, rows, 2)
    assert check.planted == 1.0 and check.reference == pytest.approx(0.5) and not check.holds


def test_atypical_floor_is_an_exact_binomial_test():
    from bench.planting_check import below_floor

    # P(X <= 3 | 7, 0.5) = 0.5; P(X <= 1 | 10, 0.5) = 11/1024 < 0.05; P(X <= 2 | 10, 0.5) = 56/1024 > 0.05
    flags = below_floor(np.array([3 / 7, 0.1, 0.2, np.nan]), np.array([7, 10, 10, 0]))
    assert flags.tolist() == [False, True, False, False]


def test_every_kind_has_a_criterion_and_the_summary_says_whether_it_holds():
    from bench.inject import PLANTERS

    assert set(CRITERIA) == set(PLANTERS)
    rows = np.arange(4)
    y = np.array([0, 1, 0, 1])
    check = check_planting(_fixed(y, 2), "atypical", torch.ones(4, 2), torch.zeros(4, 2), y, y, rows, 2)
    assert "FAILS" in check.summary() and check.as_dict()["per_class_count"] == [2, 2]  # not below the originals


def test_check_planted_reads_the_rows_of_a_plant_call():
    x, y = torch.zeros(10, 2), torch.arange(10) % 2
    planted = Planted(x, (y + 1) % 2, np.arange(10) < 4, y)
    seen = []

    def predict(inputs, rows):
        seen.append(rows)
        return np.eye(2)[y.numpy()[rows]]

    check = check_planted(predict, "label-uniform", planted, x, 2)
    assert seen[0].tolist() == [0, 1, 2, 3] and check.planted == 0.0 and check.original == 1.0 and check.holds


def test_fold_predictor_reads_each_row_with_the_model_that_held_it_out():
    from bench.planting_check import fold_predictor

    fold = np.array([0, 1, 2, 0, 1, 2, 0])
    models = [lambda x, k=k: np.column_stack([x[:, 0].numpy() + k, np.full(len(x), k)]) for k in range(3)]
    predict = fold_predictor(models, fold)
    x = torch.tensor([[10.0], [20.0], [30.0]])
    rows = np.array([5, 0, 4])  # folds 2, 0, 1
    np.testing.assert_array_equal(predict(x, rows), [[12.0, 2.0], [20.0, 0.0], [31.0, 1.0]])


# ---- hardness: the clean model's mean p_y, planted against original --------------------------
def _probabilities(p_y_planted, p_y_original, labels, num_classes=2):
    """A predictor that gives row r the probability ``p_y_planted[r]`` of ``labels[r]`` on the
    planted inputs (x[0, 0] == 1) and ``p_y_original[r]`` on the originals (x[0, 0] == 0)."""
    def table(p_y):
        p_y = np.asarray(p_y, dtype=float)
        probs = np.repeat(((1 - p_y) / (num_classes - 1))[:, None], num_classes, 1)
        probs[np.arange(len(p_y)), labels] = p_y
        return probs
    planted, original = table(p_y_planted), table(p_y_original)
    return lambda x, rows: (planted if x[0, 0] == 1 else original)[rows]


def test_hardness_is_not_met_when_the_planted_samples_read_like_the_originals():
    y = np.array([0, 0, 0, 1, 1, 1])
    predict = _probabilities([0.9, 0.8, 0.95, 0.85, 0.9, 0.7], [0.9, 0.8, 0.95, 0.85, 0.9, 0.7], y)
    check = check_planting(predict, "atypical", torch.ones(6, 2), torch.zeros(6, 2), y, y, np.arange(6), 2)
    assert check.hardness_planted == pytest.approx(check.hardness_original) == pytest.approx(5.1 / 6)
    assert check.hardness_drop == pytest.approx(0.0) and not check.hard
    assert "NOT HARD: mean p_y 0.85 planted vs 0.85 original (drop 0.00" in check.summary()


def test_hardness_is_met_when_the_planted_samples_lose_the_label_in_every_class():
    y = np.array([0, 0, 0, 1, 1, 1])
    predict = _probabilities([0.6, 0.7, 0.5, 0.55, 0.65, 0.6], [0.9, 0.9, 0.9, 0.95, 0.95, 0.95], y)
    check = check_planting(predict, "atypical", torch.ones(6, 2), torch.zeros(6, 2), y, y, np.arange(6), 2)
    assert check.hardness_planted == pytest.approx(3.6 / 6) and check.hardness_original == pytest.approx(0.925)
    np.testing.assert_allclose(check.per_class_hardness_planted, [0.6, 0.6])
    np.testing.assert_allclose(check.per_class_hardness_drop, [0.3, 0.35])
    assert check.hard  # p_y 0.33 lower on average, 0.30 and 0.35 in the two classes
    assert check.summary().endswith("hard: mean p_y 0.60 planted vs 0.93 original (drop 0.33, per class 0.30-0.35; "
                                    f"needs >= {HARDNESS_DROP:g} overall and per class)")


def test_hardness_needs_every_class_not_only_the_mean():
    """Overall drop 0.30, but class 1 drops only 0.10: not hard. A class without planted samples is not asked."""
    y = np.array([0, 0, 0, 0, 1, 1])
    predict = _probabilities([0.5, 0.5, 0.5, 0.5, 0.8, 0.8], [0.9, 0.9, 0.9, 0.9, 0.9, 0.9], y, 3)
    check = check_planting(predict, "atypical", torch.ones(6, 2), torch.zeros(6, 2), y, y, np.arange(6), 3)
    assert check.hardness_drop == pytest.approx(0.3) and check.hardness_drop >= HARDNESS_DROP
    np.testing.assert_allclose(check.per_class_hardness_drop[:2], [0.4, 0.1])
    assert np.isnan(check.per_class_hardness_drop[2]) and not check.hard
    predict = _probabilities([0.5, 0.5, 0.5, 0.5, 0.7, 0.7], [0.9, 0.9, 0.9, 0.9, 0.9, 0.9], y, 3)
    assert check_planting(predict, "atypical", torch.ones(6, 2), torch.zeros(6, 2), y, y, np.arange(6), 3).hard


def test_label_kinds_read_the_given_label_on_the_kept_input():
    """For label kinds p_y planted is the probability of the new label on the (unchanged) input."""
    y_original, y_label = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    check = check_planting(lambda x, rows: probs[rows], "label-uniform", torch.zeros(4, 2), torch.zeros(4, 2),
                           y_label, y_original, np.arange(4), 3)
    assert check.hardness_planted == pytest.approx((0.1 + 0.1 + 0.1 + 0.1) / 4)
    assert check.hardness_original == pytest.approx((0.8 + 0.7 + 0.8 + 0.6) / 4)
    np.testing.assert_allclose(check.per_class_hardness_original, [0.7, 0.7, 0.8])
    assert check.hard


def test_as_dict_carries_validity_and_hardness_and_is_json_safe():
    import json

    y = np.array([0, 0, 1, 1])
    predict = _probabilities([0.6, 0.6, 0.6, 0.6], [0.9, 0.9, 0.9, 0.9], y, 3)
    out = check_planting(predict, "atypical", torch.ones(4, 2), torch.zeros(4, 2), y, y, np.arange(4), 3).as_dict()
    for key in ("holds", "hard", "hardness_planted", "hardness_original", "hardness_drop",
                "per_class_hardness_planted", "per_class_hardness_original", "per_class_hardness_drop"):
        assert key in out
    assert out["hard"] is True and out["hardness_drop"] == pytest.approx(0.3)
    assert out["per_class_hardness_planted"][:2] == pytest.approx([0.6, 0.6])
    assert math.isnan(out["per_class_hardness_planted"][2])
    assert all(type(out[k]) is float for k in ("planted", "original", "reference", "hardness_planted"))
    assert json.loads(json.dumps(out))["per_class_count"] == [2, 2, 0]


def test_crop_shift_needs_a_drop_of_half_the_near_ood_target_and_no_more():
    rows = np.arange(10)
    y = np.arange(10) % 2
    original = np.eye(2)[y]  # all read right: target min(0.40, (1 - 1/2) / 2) = 0.25, so a drop of 0.125 is needed

    def reading(planted_hits):
        planted = np.eye(2)[np.where(np.arange(10) < planted_hits, y, 1 - y)]
        return lambda x, r: (planted if x[0, 0] == 1 else original)[r]

    x0, x1 = torch.zeros(10, 2), torch.ones(10, 2)
    assert check_planting(reading(8), "crop-shift", x1, x0, y, y, rows, 2).holds  # drop 0.2
    assert not check_planting(reading(9), "crop-shift", x1, x0, y, y, rows, 2).holds  # drop 0.1
    assert check_planting(reading(0), "crop-shift", x1, x0, y, y, rows, 2).holds  # read below chance: still shifted
    assert not check_planting(reading(0), "domain-shift", x1, x0, y, y, rows, 2).holds  # 1.0 > 1.5 x the target


def test_label_adjacent_is_checked_as_a_label_kind():
    from bench.planting_check import LABEL_KINDS

    assert "label-adjacent" in LABEL_KINDS
    y_original, y_label = np.array([0, 1, 2, 2]), np.array([1, 0, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.1, 0.3, 0.6]])
    check = check_planting(lambda x, rows: probs[rows], "label-adjacent", torch.zeros(4, 2), torch.zeros(4, 2),
                           y_label, y_original, np.arange(4), 3)
    assert check.planted == 0.0 and check.original == 1.0 and check.holds and check.hard
    assert check.hardness_planted == pytest.approx((0.1 + 0.2 + 0.1 + 0.3) / 4)
    unchanged = check_planting(lambda x, rows: probs[rows], "label-adjacent", torch.zeros(4, 2), torch.zeros(4, 2),
                               y_original, y_original, np.arange(4), 3)
    assert not unchanged.holds
