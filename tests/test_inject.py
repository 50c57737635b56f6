"""Planted hardness: each type's defining property, seeding, sources, and the artefact guard."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from bench.data import DatasetNotFound, Dataset, load_dataset
from bench.errors import UnknownName
from bench.inject import (ATYPICAL_ANGLE, ATYPICAL_DRAW, ATYPICAL_FEATURES, ATYPICAL_STRENGTH, ATYPICAL_TARGET,
                          CROP_SHIFT, DOMAIN_EDGE, DOMAIN_STRENGTH, NEAR_OOD_MAX_NOISE, NEAR_OOD_NOISE, PLANTERS,
                          MissingSource, PlantingSources, _median_window, _ranks, _spread, affine_warp,
                          atypical_corrupt, atypical_draws, calibrate_atypical, calibrate_domain_shift,
                          calibrate_near_ood, calibrate_tail_features, cartoon, choose_subset, crop_shift_offsets,
                          default_sources, domain_corrupt, domain_style, fixed_permutation, marginal_tails,
                          median_filter, most_confused, most_likely_other, near_ood_corrupt, near_ood_target_drop,
                          nearest_other_class, plant, rare_tail, restandardise, sobel_magnitude, tail_corrupt,
                          tail_draws, translate, zoom_shift)

TYPES = ["label-uniform", "label-pair", "label-instance", "label-adjacent", "near-ood", "far-ood", "domain-shift",
         "crop-shift", "atypical"]


def _images(n=400, channels=1, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.randn(n, channels, size + 3, size + 3, generator=g), 4, 1)
    return x, torch.randint(0, 5, (n,), generator=g)


def _sources(x, confusion=None):
    bank = torch.randn(64, *x.shape[1:], generator=torch.Generator().manual_seed(9)) * 3 + 1
    return PlantingSources(confusion=(lambda: confusion) if confusion is not None else None,
                           far_ood=lambda n, rng: bank[torch.as_tensor(rng.integers(0, len(bank), n))])


def _channel_stats(x):
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return flat.mean(1), flat.std(1, unbiased=False)


def test_every_type_is_registered_and_unknown_names_list_them():
    assert set(TYPES) <= set(PLANTERS)
    with pytest.raises(UnknownName, match="Valid hardness types: .*label-pair.*near-ood.*far-ood.*atypical"):
        plant("label-noise", torch.zeros(10, 2), torch.zeros(10, dtype=torch.int64), 2, 0.1, 0)


@pytest.mark.parametrize("kind", TYPES)
def test_exact_rate_seeded_and_only_the_planted_rows_change(kind):
    x, y = _images()
    confusion = np.ones((5, 5))
    first = plant(kind, x, y, 5, 0.1, 3, _sources(x, confusion))
    again = plant(kind, x, y, 5, 0.1, 3, _sources(x, confusion))
    other = plant(kind, x, y, 5, 0.1, 4, _sources(x, confusion))
    assert first.mask.sum() == 40 and torch.equal(first.y_clean, y)
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y) and (first.mask == again.mask).all()
    assert not (first.mask == other.mask).all()
    keep = torch.as_tensor(~first.mask)
    assert torch.equal(first.x[keep], x[keep]) and torch.equal(first.y[keep], y[keep])
    changed = torch.as_tensor(first.mask)
    if kind.startswith("label"):
        assert torch.equal(first.x, x) and (first.y[changed] != y[changed]).all()
    else:
        assert torch.equal(first.y, y)  # labels kept
        assert not torch.isclose(first.x[changed], x[changed]).flatten(1).all(1).any()


def test_label_uniform_reaches_every_other_class():
    y = torch.arange(5000) % 4
    planted = plant("label-uniform", torch.zeros(5000, 2), y, 4, 0.5, seed=0)
    moved = torch.as_tensor(planted.mask)
    assert (planted.y[moved] != y[moved]).all()
    pairs = {(int(a), int(b)) for a, b in zip(y[moved], planted.y[moved])}
    assert pairs == {(a, b) for a in range(4) for b in range(4) if a != b}


def test_most_confused_is_the_off_diagonal_argmax_with_smallest_index_ties_and_a_fallback():
    confusion = np.array([[90, 3, 7, 0],   # 0 -> 2
                          [5, 80, 5, 1],   # tie 0/2 -> 0
                          [0, 0, 50, 0],   # never confused -> fixed permutation: 3
                          [1, 9, 0, 99]])  # 3 -> 1, although 3's diagonal is the largest entry
    target = most_confused(confusion)
    assert target.tolist() == [2, 0, 3, 1]
    assert (target != np.arange(4)).all()
    assert most_confused(np.eye(3) * 10).tolist() == fixed_permutation(3).tolist() == [1, 2, 0]
    with pytest.raises(ValueError):
        most_confused(np.ones((3, 2)))


def test_label_pair_moves_labels_along_the_most_confused_pair():
    x, y = _images(n=1000)
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 30, size=(5, 5)) + np.diag([500] * 5)
    planted = plant("label-pair", x, y, 5, 0.2, 1, PlantingSources(confusion=lambda: confusion))
    moved = torch.as_tensor(planted.mask)
    target = torch.as_tensor(most_confused(confusion))
    assert torch.equal(planted.y[moved], target[y[moved]])
    assert (planted.y[moved] != y[moved]).all()


def test_label_pair_on_vectors_uses_the_fixed_permutation_and_images_need_a_confusion_matrix():
    y = torch.arange(300) % 3
    planted = plant("label-pair", torch.randn(300, 2), y, 3, 0.1, 0)
    moved = torch.as_tensor(planted.mask)
    assert torch.equal(planted.y[moved], (y[moved] + 1) % 3)
    with pytest.raises(MissingSource, match="confusion"):
        plant("label-pair", *_images(), 5, 0.1, 0)
    with pytest.raises(ValueError, match="shape"):
        plant("label-pair", *_images(), 5, 0.1, 0, PlantingSources(confusion=lambda: np.ones((3, 3))))


@pytest.mark.parametrize("kind", ["near-ood", "far-ood"])
@pytest.mark.parametrize("channels", [1, 3])
def test_ood_samples_keep_the_per_channel_values_of_the_samples_they_replace(kind, channels):
    x, y = _images(n=300, channels=channels)
    x = x * torch.tensor([1.0, 2.0, 0.5][:channels]).view(1, -1, 1, 1) + torch.tensor([0.0, 1.0, -2.0][:channels]).view(1, -1, 1, 1)
    planted = plant(kind, x, y, 5, 0.2, 0, _sources(x))
    idx = torch.as_tensor(planted.mask)
    rows, clean = planted.x[idx].flatten(2).double(), x[idx].flatten(2).double()
    assert not torch.allclose(rows, clean)  # the sample changed...
    torch.testing.assert_close(rows.sort(-1).values, clean.sort(-1).values)  # ...its values did not
    torch.testing.assert_close(rows.mean(2), clean.mean(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(rows.std(2, unbiased=False), clean.std(2, unbiased=False), atol=1e-5, rtol=0)
    assert torch.equal(planted.x[~idx], x[~idx])


def test_near_ood_keeps_the_image_structure_in_value_order():
    x, y = _images(n=200, size=16)
    planted = plant("near-ood", x, y, 5, 0.1, 0, None)
    idx = np.flatnonzero(planted.mask)
    before, after = x[idx].flatten(1), planted.x[idx].flatten(1)
    corr = [np.corrcoef(b.argsort().argsort(), a.argsort().argsort())[0, 1] for b, a in zip(before, after)]
    assert np.mean(corr) > 0.3  # blurred and noised at the default severity, still correlated with the image


def test_vector_near_ood_keeps_each_vectors_values():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 6, generator=g) * 2 + 1, torch.randint(0, 3, (500,), generator=g)
    planted = plant("near-ood", x, y, 3, 0.1, 0)
    idx = torch.as_tensor(planted.mask)
    assert not torch.allclose(planted.x[idx], x[idx])
    torch.testing.assert_close(planted.x[idx].sort(1).values, x[idx].sort(1).values)


def test_far_ood_replaces_the_sample_by_the_source_in_value_order():
    x, y = _images(n=200)
    bank = torch.randn(200, *x.shape[1:], generator=torch.Generator().manual_seed(5))
    drawn = []

    def source(n, rng):
        rows = bank[torch.as_tensor(rng.integers(0, len(bank), n))]
        drawn.append(rows)
        return rows

    planted = plant("far-ood", x, y, 5, 0.1, 0, PlantingSources(far_ood=source))
    after = planted.x[torch.as_tensor(planted.mask)].flatten(1)
    assert torch.equal(after.argsort(1), drawn[0].flatten(1).argsort(1))  # the source image, value-matched
    with pytest.raises(MissingSource, match="far-ood"):
        plant("far-ood", x, y, 5, 0.1, 0)
    with pytest.raises(ValueError, match="shape"):
        plant("far-ood", x, y, 5, 0.1, 0, PlantingSources(far_ood=lambda n, rng: torch.zeros(n, 3)))


def test_zoom_shift_moves_and_magnifies_about_the_centre():
    x = torch.randn(4, 2, 6, 6)
    # zoom 1 and whole-pixel shifts: the image moved, the pixels that enter take its minimum
    moved = zoom_shift(x, torch.ones(4), torch.tensor([[0, 0], [1, 0], [0, -2], [-1, 1]]))
    assert torch.allclose(moved[0], x[0], atol=1e-5)
    assert torch.allclose(moved[1, :, 1:], x[1, :, :-1], atol=1e-5)
    assert torch.allclose(moved[1, :, 0], x[1].min().expand(2, 6), atol=1e-5)
    assert torch.allclose(moved[2, :, :, :-2], x[2, :, :, 2:], atol=1e-5)
    assert torch.allclose(moved[3, :, :-1, 1:], x[3, :, 1:, :-1], atol=1e-5)
    # zoom 2 about the centre: output pixel p shows the input at centre + (p - centre) / 2
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    zoomed = zoom_shift(ramp, torch.tensor([2.0]), torch.zeros(1, 2))
    centre = 3.5
    expected = centre + (torch.arange(8.0) - centre) / 2
    assert torch.allclose(zoomed[0, 0, 4], expected, atol=1e-5)


def test_affine_warp_rotates_and_shears_about_the_centre():
    x = torch.randn(3, 2, 6, 6)
    turned = affine_warp(x, torch.ones(3), torch.full((3,), 90.0), torch.zeros(3), torch.zeros(3, 2))
    assert torch.allclose(turned, torch.rot90(x, -1, (2, 3)), atol=1e-4)  # a quarter turn clockwise as shown
    # shear s: output pixel (x, y) (offsets from the centre) shows the input at (x - s y, y)
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    sheared = affine_warp(ramp, 1.0, 0.0, 0.5, torch.zeros(1, 2))
    centre = 3.5
    for row in (0, 3, 7):
        columns = torch.arange(8.0) - 0.5 * (row - centre)
        inside = (columns >= 0) & (columns <= 7)
        assert torch.allclose(sheared[0, 0, row][inside], columns[inside], atol=1e-4)
    assert torch.allclose(affine_warp(x, 1.0, 0.0, 0.0, torch.zeros(3, 2)), x, atol=1e-5)  # the identity


def test_atypical_images_without_a_predictor_are_warped_copies_of_the_sample_in_its_own_values():
    """Without a clean predictor every class gets ``ATYPICAL_STRENGTH``: each planted image is
    ``atypical_corrupt`` of its original with its own draws, in its original's values."""
    x, y = _images(n=300, size=12)
    planted = plant("atypical", x, y, 5, 0.1, 0)
    rng = np.random.default_rng([0, 0x5EED])
    mask = choose_subset(300, 0.1, rng)
    assert (mask == planted.mask).all()
    idx = torch.as_tensor(np.flatnonzero(mask))
    draws = atypical_draws(len(idx), rng)
    expected = atypical_corrupt(x[idx], draws, ATYPICAL_STRENGTH, int(rng.integers(2 ** 62)))
    assert torch.equal(planted.x[idx], expected)
    torch.testing.assert_close(planted.x[idx].flatten(1).sort(1).values, x[idx].flatten(1).sort(1).values)
    assert torch.equal(planted.y, y) and torch.equal(planted.x[torch.as_tensor(~mask)], x[torch.as_tensor(~mask)])
    # the draws: magnitudes within ATYPICAL_DRAW, angle and shear of both signs, shifts within [-1, 1]
    assert ((draws[:, :3] != 0) & (np.abs(draws[:, :3]) >= ATYPICAL_DRAW[0]) & (np.abs(draws[:, :3]) <= 1)).all()
    assert (draws[:, 0] > 0).all() and (draws[:, 1] < 0).any() and (draws[:, 1] > 0).any()
    assert (np.abs(draws[:, 3:]) <= 1).all() and ATYPICAL_STRENGTH * ATYPICAL_ANGLE < 90
    # the warp is stronger at a larger strength, on the same draws
    clean = x[idx].flatten(1)
    far = [float((atypical_corrupt(x[idx], draws, s, 0).flatten(1) - clean).norm(dim=1).mean())
           for s in (0.0, 0.3, 1.0)]
    assert far[0] < 1e-4 < far[1] < far[2]


def _similarity_predictor(x_clean, y, sensitivity, num_classes):
    """A clean model whose p_y for pool row r is a known function of how much the input still
    looks like the clean ``x_clean[r]``: corr^k for a class of sensitivity k > 0, the constant
    -k for k <= 0; the rest of the mass spread evenly over the other classes."""
    flat = x_clean.flatten(1)

    def predict(inputs, rows):
        rows = np.asarray(rows)
        labels = y[rows].numpy()
        a, b = inputs.flatten(1).double(), flat[torch.as_tensor(rows)].double()
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        corr = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).clamp(0, 1).numpy()
        k = np.asarray(sensitivity, dtype=float)[labels]
        p_y = np.where(k > 0, corr ** np.where(k > 0, k, 1), -k)
        probs = np.repeat(((1 - p_y) / (num_classes - 1))[:, None], num_classes, 1)
        probs[np.arange(len(rows)), labels] = p_y
        return probs
    return predict


def test_atypical_calibration_brings_each_class_to_the_target_on_other_rows():
    """Per class the strength at which the clean model's mean p_y is ATYPICAL_TARGET, found on
    unplanted rows and read on the planted ones; a class already below the target is left as it
    is, one that never gets there takes the full strength."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.randn(800, 1, 19, 19, generator=g), 4, 1)  # smooth 16 x 16 images
    y = torch.arange(800) % 4
    sensitivity = [1.0, 4.0, -0.4, -0.9]  # class 2: p_y 0.4 always (below the target), class 3: 0.9 always
    predict = _similarity_predictor(x, y, sensitivity, 4)
    rng = np.random.default_rng(0)
    strength = calibrate_atypical(x, y, 4, np.sort(rng.permutation(800)[:400]), predict, rng)
    assert 0 < strength[1] < strength[0] < 1 and strength[2] == 0 and strength[3] == 1
    planted = plant("atypical", x, y, 4, 0.3, 0, PlantingSources(clean_predict=predict))
    rows = np.flatnonzero(planted.mask)
    p_y = predict(planted.x[torch.as_tensor(rows)], rows)[np.arange(len(rows)), y[rows].numpy()]
    for c in (0, 1):
        assert abs(p_y[y[rows].numpy() == c].mean() - ATYPICAL_TARGET) < 0.05, (c, p_y[y[rows].numpy() == c].mean())
    left = torch.as_tensor(rows[y[rows].numpy() == 2])
    assert torch.allclose(planted.x[left], x[left], atol=1e-5)  # strength 0: nothing valid and harder to plant
    full = torch.as_tensor(rows[y[rows].numpy() == 3])
    assert not torch.allclose(planted.x[full], x[full], atol=1e-2)


def test_label_instance_takes_each_samples_most_likely_other_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    assert most_likely_other(probs, np.array([0, 2, 1])).tolist() == [1, 0, 2]
    x, y = _images(n=400)
    table = np.random.default_rng(0).dirichlet(np.ones(5), size=400)
    calls = []

    def predict(inputs, rows):
        calls.append(rows)
        return table[rows]

    planted = plant("label-instance", x, y, 5, 0.2, 0, PlantingSources(clean_predict=predict))
    rows = np.flatnonzero(planted.mask)
    assert np.array_equal(calls[0], rows)
    assert np.array_equal(planted.y[torch.as_tensor(rows)].numpy(), most_likely_other(table[rows], y[rows].numpy()))
    with pytest.raises(ValueError, match="shape"):
        plant("label-instance", x, y, 5, 0.2, 0, PlantingSources(clean_predict=lambda inputs, rows: table[rows, :3]))


def test_label_instance_without_a_predictor_moves_to_the_nearest_other_class_mean():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = torch.arange(300) % 3
    x = means[y] + torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    x[0] = torch.tensor([2.0, 8.0])  # a class-0 sample near class 2's mean
    x[3] = torch.tensor([7.0, 1.0])  # ... and one near class 1's
    assert nearest_other_class(x, y, 3, torch.tensor([0, 3, 1])).tolist() == [2, 1, 0]


def test_near_ood_calibration_finds_the_severity_of_the_target_drop():
    """A predictor whose accuracy is a known function of the corruption: the calibrated
    severity is where that function meets the target."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2000) % 10
    x = torch.randn(2000, 6, generator=g)
    x[:, 0] = y.float()  # the label, readable from feature 0 ...

    def predict(inputs, rows):  # ... as long as the noise leaves it within half a unit
        guess = inputs[:, 0].round().clamp(0, 9).long()
        return np.eye(10)[guess.numpy()]

    rows = np.arange(0, 2000, 2)
    severity = calibrate_near_ood(x, y, 10, rows, predict, np.random.default_rng(0))
    # value matching on 6 features scrambles the order too; read the drop at the severity found
    noise = torch.randn(x[rows].shape, generator=torch.Generator().manual_seed(1))
    corrupted = near_ood_corrupt(x[rows], _spread(x), severity, noise, 0)
    drop = 1 - float((predict(corrupted, rows).argmax(1) == y[rows].numpy()).mean())
    assert 0 < severity < NEAR_OOD_MAX_NOISE and abs(drop - near_ood_target_drop(1.0, 10)) < 0.06


def test_near_ood_target_drop_is_at_most_half_the_accuracy_above_chance():
    assert near_ood_target_drop(0.95, 10) == 0.40
    assert near_ood_target_drop(0.50, 10) == pytest.approx(0.2)
    assert near_ood_target_drop(0.05, 10) == 0.0


def test_near_ood_uses_the_default_severity_without_a_predictor():
    x, y = _images(n=200)
    planted = plant("near-ood", x, y, 5, 0.1, 0)
    rng = np.random.default_rng([0, 0x5EED])
    mask = np.zeros(200, dtype=bool)
    mask[rng.choice(200, size=20, replace=False)] = True
    assert (mask == planted.mask).all()
    from bench.inject import _torch_generator

    idx = torch.as_tensor(np.flatnonzero(mask))
    noise = torch.randn(x[idx].shape, generator=_torch_generator(rng))
    expected = near_ood_corrupt(x[idx], _spread(x), NEAR_OOD_NOISE, noise, int(rng.integers(2 ** 62)))
    assert torch.equal(planted.x[idx], expected)


def test_marginal_tails_and_the_side_rare_for_each_class():
    # feature 0: class 0 low, class 1 high; feature 1: both classes spread alike
    x = torch.tensor([[0.0, 5.0], [1.0, 1.0], [2.0, 9.0], [7.0, 2.0], [8.0, 8.0], [9.0, 3.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    low, high = marginal_tails(x, share=0.4)  # t = int(0.4 * 6) = 2 values per tail
    assert low.tolist() == [[0.0, 1.0], [1.0, 2.0]] and high.tolist() == [[8.0, 8.0], [9.0, 9.0]]
    low1, high1 = marginal_tails(x)  # 1% of 6 rows: at least one value
    assert low1.tolist() == [[0.0, 1.0]] and high1.tolist() == [[9.0, 9.0]]
    side = rare_tail(x, y, 2, low, high)
    # feature 0: class 0 never reaches the high tail (>= 8) and has 2 rows in the low one: high is rare for it
    assert side[:, 0].tolist() == [True, False]
    # feature 1: class 0 holds 1 in the low tail (<= 2) and 1 in the high (>= 8): equal shares, so the tail farther
    # from its mean 5 in its std (low mean 1.5: 3.5 away, high mean 8.5: 3.5 away) - a tie, to the high tail;
    # class 1 holds 1 low and 1 high too, mean 13/3: the high tail is farther
    assert side[:, 1].tolist() == [True, True]


def test_tail_corrupt_sets_exactly_the_first_features_of_the_order_from_the_classes_side():
    rows = torch.zeros(3, 4)
    low = torch.tensor([[-5.0, -6.0, -7.0, -8.0], [-1.0, -2.0, -3.0, -4.0]])
    high = -low.flip(0)
    side = torch.tensor([[True, False, True, False], [False, False, False, False]])
    order = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2]])  # the rank of each feature
    picks = np.array([[0, 1, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
    out = tail_corrupt(rows, torch.tensor([0, 0, 1]), [2, 1, 0], order, picks, low, high, side)
    assert out[0].tolist() == [high[0, 0].item(), low[1, 1].item(), 0.0, 0.0]  # features of rank 0 and 1
    assert out[1].tolist() == [0.0, 0.0, 0.0, low[1, 3].item()]  # only feature 3 (rank 0), class 0's low side
    assert out[2].tolist() == [0.0, 0.0, 0.0, 0.0]  # count 0: unchanged
    order, picks = tail_draws(50, 4, 3, np.random.default_rng(0))  # per row a random order and tail indices
    assert (np.sort(order, axis=1) == np.arange(4)).all() and set(picks.ravel()) == {0, 1, 2}


def test_atypical_vectors_set_one_feature_to_a_tail_value_rare_for_the_class():
    """Without a clean predictor every planted vector has exactly ``ATYPICAL_FEATURES`` (1)
    feature replaced by one of the pool's 1% lowest or highest values of that feature, from the
    side rare for its class; the rest and the label are kept; no value matching."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(900) % 3
    x = torch.randn(900, 5, generator=g) + y.unsqueeze(1) * 2.0
    planted = plant("atypical", x, y, 3, 0.1, 0)
    moved = torch.as_tensor(planted.mask)
    assert torch.equal(planted.y, y) and torch.equal(planted.x[~moved], x[~moved])
    changed = planted.x[moved] != x[moved]
    assert (changed.sum(1) == ATYPICAL_FEATURES).all()
    low, high = marginal_tails(x)
    side = rare_tail(x, y, 3, low, high)
    row, feature = changed.nonzero(as_tuple=True)
    values = planted.x[moved][row, feature]
    cls = y[moved][row]
    expected_side = side[cls, feature]
    in_high = (values[:, None] == high[:, feature].T).any(1)
    in_low = (values[:, None] == low[:, feature].T).any(1)
    assert torch.equal(in_high, expected_side) and torch.equal(in_low, ~expected_side)
    # class 0 sits lowest in every feature: its rare side is the high tail, class 2's the low one
    assert side[0].all() and not side[2].any()


def test_tail_feature_calibration_finds_the_count_nearest_the_target():
    """A clean model whose p_y falls by a known step per feature set to a tail value: the
    calibration returns the bracketing count nearest ``ATYPICAL_TARGET`` (0.55), 0 for a class
    already below it, D for one that never gets there."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    x = torch.randn(400, 10, generator=g)
    step = {0: 0.08, 1: 0.2}  # class 0: p_y(5) = 0.60, p_y(6) = 0.52 -> 6; class 1: 0.60 at 2, 0.40 at 3 -> 2

    def predict(inputs, rows):
        changed = (inputs != x[torch.as_tensor(rows)]).sum(1).numpy()
        labels = y[torch.as_tensor(rows)].numpy()
        p_y = np.select([labels == 0, labels == 1, labels == 2], [1 - step[0] * changed, 1 - step[1] * changed, 0.4],
                        0.9)
        probs = np.repeat(((1 - p_y) / 3)[:, None], 4, 1)
        probs[np.arange(len(rows)), labels] = p_y
        return probs

    low, high = marginal_tails(x)
    side = rare_tail(x, y, 4, low, high)
    rng = np.random.default_rng(0)
    count = calibrate_tail_features(x, y, 4, np.arange(0, 400, 3), predict, rng, low, high, side)
    assert count.tolist() == [6, 2, 0, 10]
    planted = plant("atypical", x, y, 4, 0.2, 0, PlantingSources(clean_predict=predict))
    moved = torch.as_tensor(planted.mask)
    changed = (planted.x[moved] != x[moved]).sum(1)
    assert torch.equal(changed, torch.as_tensor(np.array([6, 2, 0, 10]))[y[moved]])


# ---- adjacent labels, domain shift, crop shift -------------------------------------------------
def test_label_adjacent_moves_each_label_one_class_up_or_down():
    y = torch.arange(3000) % 5
    planted = plant("label-adjacent", torch.zeros(3000, 2), y, 5, 0.3, seed=2)
    rng = np.random.default_rng([2, 0x5EED])
    mask = choose_subset(3000, 0.3, rng)
    steps = rng.choice(np.array([-1, 1]), size=int(mask.sum()))  # the planter's one fair draw per sample
    moved = torch.as_tensor(mask)
    assert (planted.mask == mask).all()
    assert torch.equal(planted.y[moved], (y[moved] + torch.as_tensor(steps)) % 5)
    assert torch.equal(planted.y[~moved], y[~moved])
    pairs = {(int(a), int(b)) for a, b in zip(y[moved], planted.y[moved])}
    assert pairs == {(c, (c + 1) % 5) for c in range(5)} | {(c, (c - 1) % 5) for c in range(5)}  # 4 -> 0, 0 -> 4
    assert 0.45 < (steps == 1).mean() < 0.55
    two = plant("label-adjacent", torch.zeros(100, 2), torch.arange(100) % 2, 2, 0.5, seed=0)
    assert torch.equal(two.y[torch.as_tensor(two.mask)], 1 - (torch.arange(100) % 2)[torch.as_tensor(two.mask)])


def test_translate_moves_by_whole_pixels_and_pads_with_the_minimum():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4) + 1
    moved = translate(x, [[1, -2], [0, 0]])
    # image 0: down 1, left 2; what enters takes the image's minimum (1, over both channels)
    expected = torch.full((2, 4, 4), 1.0)
    expected[:, 1:, :2] = x[0, :, :3, 2:]
    assert torch.equal(moved[0], expected) and torch.equal(moved[1], x[1])
    assert torch.allclose(translate(x, [[1, -2], [0, 0]]), zoom_shift(x, torch.ones(2), torch.tensor([[1.0, -2.0],
                                                                                                   [0.0, 0.0]])))


def test_crop_shift_offsets_are_a_sizeable_share_in_every_direction():
    offsets = crop_shift_offsets(4000, 28, 28, np.random.default_rng(0))
    length = np.hypot(*offsets.T)
    assert (length >= CROP_SHIFT[0] * 28 - 1) .all() and (length <= CROP_SHIFT[1] * 28 + 1).all()
    assert {tuple(np.sign(o)) for o in offsets} >= {(1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (1, 0)}
    small = crop_shift_offsets(4000, 8, 8, np.random.default_rng(1))
    assert (np.abs(small).max(1) >= 1).all() and np.abs(small).max() <= 3  # 1.6-2.8 pixels on 8 x 8, never none


def test_crop_shift_images_are_translated_copies_in_their_own_values():
    x, y = _images(n=300, size=12)
    planted = plant("crop-shift", x, y, 5, 0.1, 0)
    rng = np.random.default_rng([0, 0x5EED])
    mask = choose_subset(300, 0.1, rng)
    idx = torch.as_tensor(np.flatnonzero(mask))
    from bench.inject import _torch_generator

    offsets = crop_shift_offsets(len(idx), 12, 12, rng)
    expected = restandardise(translate(x[idx], offsets), x[idx], _torch_generator(rng))
    assert torch.equal(planted.x[idx], expected) and torch.equal(planted.y, y)
    torch.testing.assert_close(planted.x[idx].flatten(1).sort(1).values, x[idx].flatten(1).sort(1).values)
    # the kept part of each image is the original moved, in value order
    for row, (dy, dx) in zip(idx.tolist()[:5], offsets[:5]):
        shifted = torch.roll(x[row, 0], (int(dy), int(dx)), (0, 1))
        source_row, source_col = torch.arange(12).view(-1, 1) - int(dy), torch.arange(12).view(1, -1) - int(dx)
        inside = (source_row >= 0) & (source_row < 12) & (source_col >= 0) & (source_col < 12)
        assert 0 < inside.sum() < 144
        kept, original = planted.x[row, 0][inside], shifted[inside]
        assert torch.equal(kept.argsort(), original.argsort())


def test_median_filter_and_sobel_known_answers():
    from scipy import ndimage

    x = torch.randn(3, 2, 9, 9, generator=torch.Generator().manual_seed(0))
    for size in (3, 5):
        expected = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="mirror")
        assert np.allclose(median_filter(x, size).numpy(), expected)
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0  # a vertical step between columns 2 and 3
    magnitude = sobel_magnitude(step)[0, 0]
    assert torch.allclose(magnitude[:, 2:4], torch.full((6, 2), 0.5)) and magnitude[:, [0, 1, 4, 5]].abs().max() == 0
    assert _median_window(8) == 5 and _median_window(28) == 13 and _median_window(32) == 15


def test_cartoon_smooths_and_draws_dark_outlines():
    # a bright square on a dark ground, with one-pixel speckles the median removes
    image = torch.zeros(1, 1, 28, 28)
    image[..., 8:20, 8:20] = 1.0
    image[..., 2, 2] = image[..., 25, 25] = 1.0
    out = cartoon(image)[0, 0]
    smooth = median_filter(image, 13)[0, 0]
    edge = sobel_magnitude(median_filter(image, 13))[0, 0]
    outline = (edge > 0) & (edge >= DOMAIN_EDGE * edge.max())
    assert outline.any() and not outline.all()
    assert torch.allclose(out[outline], torch.zeros(int(outline.sum())), atol=1e-3)  # outlines take the minimum
    assert torch.allclose(out[~outline], smooth[~outline], atol=1e-3)  # elsewhere the smoothed image
    assert out[2, 2] < 0.01 and out[25, 25] < 0.01  # speckles gone
    flat = cartoon(torch.full((1, 1, 8, 8), 0.5))
    assert torch.allclose(flat, torch.full((1, 1, 8, 8), 0.5), atol=1e-3)  # nothing to outline


def test_ranks_share_ties_and_domain_corrupt_spans_the_original_to_the_style():
    r = _ranks(torch.tensor([[[[3.0, 1.0, 1.0, 2.0]]]]))
    assert r.flatten().tolist() == [1.0, pytest.approx(1 / 6), pytest.approx(1 / 6), pytest.approx(2 / 3)]
    x, _ = _images(n=20, size=12)
    styled = domain_style(x, x)
    assert torch.equal(domain_corrupt(x, styled, 0.0, 0), x)  # strength 0: the original
    full = domain_corrupt(x, styled, 1.0, 0)
    assert torch.equal(full, restandardise(styled, x, torch.Generator().manual_seed(0)))  # 1: the style, value-matched
    torch.testing.assert_close(full.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
    far = [float((domain_corrupt(x, styled, s, 0) - x).norm()) for s in (0.0, 0.3, 0.7, 1.0)]
    assert far[0] == 0 < far[1] < far[2] < far[3]
    per_row = domain_corrupt(x, styled, np.where(np.arange(20) < 10, 0.0, 1.0), 0)
    assert torch.equal(per_row[:10], x[:10]) and not torch.equal(per_row[10:], x[10:])
    # vectors: each feature rounded to 4 levels of its pool range (here 0..3 and -1..1)
    pool = torch.tensor([[0.0, -1.0], [3.0, 1.0], [1.4, 0.2]])
    assert torch.allclose(domain_style(pool, pool), torch.tensor([[0.0, -1.0], [3.0, 1.0], [1.0, 1 / 3]]))


def test_domain_shift_without_a_predictor_is_the_full_style():
    x, y = _images(n=200, size=12)
    planted = plant("domain-shift", x, y, 5, 0.1, 0)
    rng = np.random.default_rng([0, 0x5EED])
    idx = torch.as_tensor(np.flatnonzero(choose_subset(200, 0.1, rng)))
    expected = domain_corrupt(x[idx], domain_style(x[idx], x), DOMAIN_STRENGTH, int(rng.integers(2 ** 62)))
    assert torch.equal(planted.x[idx], expected) and torch.equal(planted.y, y)


def test_domain_shift_calibration_brings_each_class_to_its_target_drop():
    """Per class the strength at which the clean accuracy falls by ``near_ood_target_drop``
    (from 1.0 with 4 classes: 0.375), found on other rows; a class never read correctly is left
    as it is, one that never falls that far takes the full style."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.randn(800, 1, 19, 19, generator=g), 4, 1)
    y = torch.arange(800) % 4
    flat = x.flatten(1)
    threshold = np.array([0.6, 0.3, 2.0, -2.0])  # correct while corr(input, clean) > threshold; 2: never; 3: always

    def predict(inputs, rows):
        a, b = inputs.flatten(1).double(), flat[torch.as_tensor(rows)].double()
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        corr = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).numpy()
        labels = y[torch.as_tensor(rows)].numpy()
        predicted = np.where(corr > threshold[labels], labels, (labels + 1) % 4)
        return np.eye(4)[predicted]

    rng = np.random.default_rng(0)
    strength = calibrate_domain_shift(x, y, 4, np.sort(rng.permutation(800)[:400]), predict, rng)
    assert 0 < strength[0] < strength[1] <= 1 and strength[2] == 0 and strength[3] == 1
    planted = plant("domain-shift", x, y, 4, 0.3, 0, PlantingSources(clean_predict=predict))
    rows = np.flatnonzero(planted.mask)
    hits = predict(planted.x[torch.as_tensor(rows)], rows).argmax(1) == y[rows].numpy()
    target = 1 - near_ood_target_drop(1.0, 4)
    for c in (0, 1):
        if strength[c] < 1:
            assert abs(hits[y[rows].numpy() == c].mean() - target) < 0.12, (c, hits[y[rows].numpy() == c].mean())


# ---- far-ood sources -----------------------------------------------------------------------
def test_digits_far_ood_source_is_photo_patches_standardised_like_the_pool():
    digits = load_dataset("digits")
    source = default_sources(digits).far_ood
    rows = source(500, np.random.default_rng(0))
    assert rows.shape == (500, 1, 8, 8) and torch.isfinite(rows).all()
    assert torch.equal(rows, source(500, np.random.default_rng(0)))
    assert abs(float(rows.mean())) < 0.3 and 0.6 < float(rows.std()) < 1.5  # the pool is mean 0, std 1


def test_vector_far_ood_source_draws_uniformly_inside_the_bounding_box():
    blobs = load_dataset("blobs")
    rows = default_sources(blobs).far_ood(2000, np.random.default_rng(0))
    lo, hi = blobs.x_train.min(0).values, blobs.x_train.max(0).values
    assert rows.shape == (2000, 10) and (rows >= lo).all() and (rows <= hi).all()
    assert torch.allclose(rows.mean(0), (lo + hi) / 2, atol=0.15 * float((hi - lo).max()))


def _fake(name, shape):
    x = torch.randn(20, *shape, generator=torch.Generator().manual_seed(0))
    return Dataset(name, x, torch.arange(20) % 10, x[:4], torch.arange(4), 10)


def test_mnist_shaped_far_ood_needs_fashion_mnist_and_says_where(tmp_path):
    source = default_sources(_fake("mnist", (1, 28, 28)), tmp_path).far_ood  # lazy: nothing loaded yet
    with pytest.raises(DatasetNotFound, match="fashion-mnist.*FashionMNIST"):
        source(3, np.random.default_rng(0))


def test_real_far_ood_sources_from_the_data_root(shared_data):
    if not (shared_data / "FashionMNIST" / "raw").exists():
        pytest.skip("needs Fashion-MNIST in the shared data")
    rng = np.random.default_rng(0)
    fashion = default_sources(_fake("mnist", (1, 28, 28)), shared_data).far_ood(5, rng)
    mnist = default_sources(_fake("fashion-mnist", (1, 28, 28)), shared_data).far_ood(5, rng)
    cifar = default_sources(_fake("cifar10", (3, 32, 32)), shared_data).far_ood(5, rng)
    assert fashion.shape == mnist.shape == (5, 1, 28, 28) and cifar.shape == (5, 3, 32, 32)
    # grey images on three channels, each channel mapped to the pool's channel statistics
    assert torch.corrcoef(torch.stack([cifar[:, 0].flatten(), cifar[:, 2].flatten()]))[0, 1] > 0.9999
    assert not torch.equal(fashion, mnist)


# ---- the artefact guard -------------------------------------------------------------------------
def value_statistics(x: torch.Tensor) -> dict[str, np.ndarray]:
    flat = x.flatten(1).double()
    return {"min": flat.min(1).values.numpy(), "max": flat.max(1).values.numpy(), "mean": flat.mean(1).numpy(),
            "std": flat.std(1).numpy(), "l2": flat.norm(dim=1).numpy()}


def naive_artefact_auroc(x: torch.Tensor, mask: np.ndarray) -> dict[str, float]:
    """A detector of artefacts, not a method: the AUROC of each per-sample value statistic for
    the planted set, in whichever direction separates better, and of its distance to the
    median (planted samples that are all alike, or all unusual, in either direction)."""
    out = {}
    for name, values in value_statistics(x).items():
        for key, statistic in ((name, values), (f"|{name} - median|", np.abs(values - np.median(values)))):
            auroc = roc_auc_score(mask, statistic)
            out[key] = max(auroc, 1 - auroc)
    return out


def _mnist_like(n: int, seed: int = 0) -> torch.Tensor:
    """Synthetic MNIST-shaped images: three thick strokes on a zero background, values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    ends = torch.rand(n, 3, 2, 2, generator=g) * 16 + 6
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"), -1).view(1, 1, -1, 2)
    a, b = ends[:, :, 0].unsqueeze(2), ends[:, :, 1].unsqueeze(2)
    t = (((grid - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    dist = (grid - (a + t.unsqueeze(-1) * (b - a))).norm(dim=-1).min(1).values
    return (2.2 - dist).clamp(0, 1).view(n, 1, 28, 28)


@pytest.fixture(scope="module")
def guard_sets():
    """(name, x, sources): digits, and MNIST (a 6000-sample subset) or, without the shared
    data, a synthetic MNIST-shaped set with a synthetic far-ood source."""
    from conftest import SHARED_DATA

    digits = load_dataset("digits")
    sets = [("digits", digits.x_train, default_sources(digits))]
    if (SHARED_DATA / "MNIST" / "raw").exists() and (SHARED_DATA / "FashionMNIST" / "raw").exists():
        mnist = load_dataset("mnist", SHARED_DATA, subset=6000)
        sets.append(("mnist", mnist.x_train, default_sources(mnist, SHARED_DATA)))
    else:
        raw = _mnist_like(4000)
        x = (raw - raw.mean()) / raw.std()
        other = (_mnist_like(1000, seed=1).transpose(2, 3) * 0.7 - 0.3) * 2
        sets.append(("mnist-shaped", x, PlantingSources(
            far_ood=lambda n, rng: other[torch.as_tensor(rng.integers(0, len(other), n))])))
    return sets


@pytest.mark.parametrize("kind", ["near-ood", "far-ood", "domain-shift", "crop-shift", "atypical"])
def test_artefact_guard_value_statistics_do_not_find_the_planted_samples(guard_sets, kind):
    for name, x, sources in guard_sets:
        y = torch.zeros(len(x), dtype=torch.int64)
        planted = plant(kind, x, y, 10, 0.1, 0, sources)
        aurocs = naive_artefact_auroc(planted.x, planted.mask)
        print(name, kind, {k: round(v, 3) for k, v in aurocs.items()})
        assert max(aurocs.values()) <= 0.6, (name, kind, aurocs)


def test_the_guard_catches_a_naive_corruption(guard_sets):
    """Noise added without value matching is found by the same detector: the guard has teeth."""
    name, x, _ = guard_sets[-1]
    mask = np.zeros(len(x), dtype=bool)
    mask[np.random.default_rng(0).choice(len(x), len(x) // 10, replace=False)] = True
    noisy = x.clone()
    noisy[torch.as_tensor(mask)] += 0.5 * torch.randn(int(mask.sum()), *x.shape[1:], generator=torch.Generator().manual_seed(0))
    assert max(naive_artefact_auroc(noisy, mask).values()) > 0.9
