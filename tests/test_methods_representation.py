"""Representation identifiers on constructed geometries with known answers."""
import numpy as np
import torch

from bench.recipes import Recipe
from bench.registry import get_method
from methods.representation import (depth_from_agreement, inversion_checks, knn_disagreement_scores,
                                    knn_probe_predictions, neighbours_excluding_self, prediction_depths,
                                    sphere_class_radii, straggler_scores)
from methods_support import linear_state, make_context


class _FeatureCtx:
    """Only what the feature-based methods read."""

    def __init__(self, features, y, num_classes):
        self.features, self.y, self.num_classes = np.asarray(features, float), torch.as_tensor(y), num_classes


def test_prototypicality_is_cosine_to_the_class_mean():
    features = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    y = np.array([0, 0, 1, 1])
    # class means: [1, .5] and [0, 1.5]
    m0 = np.array([1.0, 0.5])
    expected = [1 / np.linalg.norm(m0), 1.5 / (np.sqrt(2) * np.linalg.norm(m0)), 1.0, 1.0]
    np.testing.assert_allclose(get_method("prototypicality").fn(_FeatureCtx(features, y, 2)), expected, rtol=1e-9)


def test_neighbours_never_include_the_sample_itself_even_with_duplicates():
    features = np.array([[0.0], [0.0], [0.0], [5.0], [6.0]])  # three exact duplicates
    nbrs = neighbours_excluding_self(features, 2)
    assert nbrs.shape == (5, 2)
    assert not (nbrs == np.arange(5)[:, None]).any()
    assert set(nbrs[0]) == {1, 2} and set(nbrs[1]) == {0, 2}


KNN_POINTS = np.array([0.0, 0.4, 1.05, 0.5, 10.0, 10.3, 10.7])
KNN_LABELS = np.array([0, 0, 0, 1, 1, 1, 1])
# the planted sample's two neighbours (0.4, 0.0) are label 0; each label-0 sample has it among its
# two neighbours; the far cluster agrees with itself
KNN_EXPECTED = [0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 0.0]


def test_knn_disagreement_counts_other_labels_among_neighbours():
    # a tight cluster of label 0 with one sample labelled 1 inside it, and a far cluster of label 1
    np.testing.assert_allclose(knn_disagreement_scores(KNN_POINTS[:, None], KNN_LABELS, 2), KNN_EXPECTED)


def test_knn_disagreement_method_reads_the_logit_layer():
    # a linear model z = (x, -x): distances in logit space are sqrt(2) |x_i - x_j|, same neighbours
    state = linear_state(np.array([[1.0], [-1.0]]), np.zeros(2))
    ctx = make_context(KNN_POINTS[:, None], KNN_LABELS, 2, checkpoints={1: state},
                       recipe=Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=1))
    np.testing.assert_allclose(get_method("knn_disagreement").fn(ctx, k=2), KNN_EXPECTED)
    assert get_method("knn_disagreement").needs == {"final_model"}


def test_knn_probe_excludes_self():
    # with k = 1 a lone sample of class 1 among class 0 must be predicted 0 (its neighbour),
    # which it would not be if it were its own neighbour
    features = np.array([[0.0], [1.0], [2.0], [5.0]])
    y = np.array([0, 0, 0, 1])
    np.testing.assert_array_equal(knn_probe_predictions(features, y, 2, k=1), [0, 0, 0, 0])


def test_depth_from_agreement():
    agree = np.array([[1, 1, 1, 1],
                      [0, 0, 1, 1],
                      [1, 0, 1, 1],  # agreement at layer 0 does not count: layer 1 disagrees
                      [1, 1, 1, 0]], dtype=bool)  # the last layer disagrees: depth = number of layers
    np.testing.assert_array_equal(depth_from_agreement(agree), [0, 2, 2, 4])


def test_prediction_depth_on_constructed_layers():
    # 8 samples, two clusters per layer; sample 0 sits in the class-1 cluster for layers 0 and 1,
    # and moves to the class-0 cluster from layer 2 on; the model predicts 0 for it.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    home = np.where(y == 0, 0.0, 10.0)[:, None] + np.arange(8)[:, None] * 0.01
    moved = home.copy()
    moved[0] = 10.005
    layers = [moved, moved, home, home]
    final_pred = y.copy()
    depths = prediction_depths(layers, y, final_pred, 2, k=3)
    np.testing.assert_array_equal(depths, [2, 0, 0, 0, 0, 0, 0, 0])


def _depth_context(y):
    """Two input clusters, class 0 at (-3, 0) and class 1 at (3, 0), ten samples each, and a last
    sample A at (2.5, 3) among class 1 in the input. The hidden layer h = relu(-x1 + 2 x2, x1 - 2 x2)
    maps class 0 to (3, 0), class 1 to (0, 3) and A to (3.5, 0), among class 0; the head
    z = (h1 - h2, h2 - h1) predicts class 0 for A."""
    jitter = np.linspace(-0.2, 0.2, 10)
    x = np.concatenate([np.stack([-3 + jitter, 0 * jitter], 1), np.stack([3 + jitter, 0 * jitter], 1),
                        [[2.5, 3.0]]])
    state = {"blocks.0.1.weight": torch.tensor([[-1.0, 2.0], [1.0, -2.0]]), "blocks.0.1.bias": torch.zeros(2),
             "head.weight": torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), "head.bias": torch.zeros(2)}
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [2]}, epochs=1)
    return make_context(x, y, 2, checkpoints={1: state}, recipe=recipe)


def test_prediction_depth_of_a_sample_the_hidden_layer_moves():
    y = np.array([0] * 10 + [1] * 10 + [0])
    depth = np.asarray(get_method("prediction_depth").fn(_depth_context(y), k=5))
    # layer 0 (input): A's 5 neighbours are class 1, the model predicts 0 -> disagree; layer 1
    # (hidden) and layer 2 (logits): its neighbours are class 0 -> agree. Depth 1; the others 0.
    np.testing.assert_array_equal(depth, [0] * 20 + [1])


def test_prediction_depth_compares_with_the_prediction_not_the_label():
    # A labelled 1 instead: the network still predicts 0 for it, the probes still vote as before
    y = np.array([0] * 10 + [1] * 10 + [1])
    depth = np.asarray(get_method("prediction_depth").fn(_depth_context(y), k=5))
    np.testing.assert_array_equal(depth, [0] * 20 + [1])


def test_sphere_class_radii_by_hand():
    # class 0: u = (1, 0) and (0, 1), mean (.5, .5), squared distances .5 -> R = sqrt(.5);
    # class 1: two points on one ray project to the same u -> R = 0, whatever their norms
    h = torch.tensor([[3.0, 0.0], [0.0, 0.5], [2.0, 2.0], [10.0, 10.0]])
    y = torch.tensor([0, 0, 1, 1])
    radii = sphere_class_radii(lambda t: t, h, y, 2, chunk=3)  # chunks across the classes
    np.testing.assert_allclose(radii, [np.sqrt(0.5), 0.0], atol=1e-7)
    np.testing.assert_allclose(sphere_class_radii(lambda t: 7 * t, h, y, 2), radii, atol=1e-7)  # scale-free


def test_inversion_is_the_first_check_where_the_radius_grows():
    radii = torch.tensor([[3.0, 1.0, 5.0],
                          [2.0, 2.0, 4.0],
                          [1.0, 0.5, 3.0],
                          [2.0, 3.0, 2.0]])  # class 0 grows at check 3, class 1 at 1, class 2 never
    assert inversion_checks(radii).tolist() == [3, 1, 3]
    assert inversion_checks(radii, shared=True).tolist() == [3, 3, 3]
    assert inversion_checks(radii[:1]).tolist() == [0, 0, 0]  # one check: nothing to compare
    # no inversion before check 2 (the burn-in): class 1's growth at check 1 does not count, its
    # growth from check 2 to 3 does
    assert inversion_checks(radii, start=2).tolist() == [3, 3, 3]
    assert inversion_checks(radii, start=4).tolist() == [3, 3, 3]  # nothing left to check: the last


def test_straggler_scores_put_every_straggler_on_top():
    # 3 checks, 2 classes: class 0 inverts at check 2, class 1 at check 1
    radii = torch.tensor([[0.9, 0.5], [0.2, 0.8], [0.4, 0.1]])
    margins = torch.tensor([[-1.0, -1.0, -1.0, -1.0],
                            [-0.5, 2.0, 3.0, -0.2],
                            [0.7, -0.1, 0.5, -9.0]])
    y = torch.tensor([0, 0, 1, 1])
    scores = straggler_scores(radii, margins, y).numpy()
    # sample 0 and 1 read check 2 (0.7, -0.1), samples 2 and 3 check 1 (3.0, -0.2)
    np.testing.assert_allclose(scores, [-0.7, 0.1, -3.0, 0.2])
    assert set(np.flatnonzero(scores > 0)) == {1, 3}  # the stragglers, all of them, are the top set


def _straggler_context():
    """Two classes in the positive quadrant, hidden h = relu(diag(1, s_t) x), head z = h + b_t.
    Class 0 at (1, .2), (1, .4); class 1 at (.2, 1), (.4, 1). On the unit sphere class 0 spreads as s
    grows and class 1 as s shrinks: with s = 1, .5, 2 at epochs 1, 2, 3, class 1's radius grows at
    epoch 2 and class 0's at epoch 3, their inversion points."""
    x = torch.tensor([[1.0, 0.2], [1.0, 0.4], [0.2, 1.0], [0.4, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    plan = {1: (1.0, [5.0, 0.0]),  # everything predicted 0: class 1 all wrong, but not its inversion
            2: (0.5, [0.2, 0.0]),  # sample 3: z = (.6, .5), wrong by .1; sample 2: z = (.4, .5), right
            3: (2.0, [0.0, 0.7])}  # sample 0: z = (1, 1.1), sample 1: z = (1, 1.5), both wrong
    states = {e: {"blocks.0.1.weight": torch.diag(torch.tensor([1.0, s])), "blocks.0.1.bias": torch.zeros(2),
                  "head.weight": torch.eye(2), "head.bias": torch.tensor(b)} for e, (s, b) in plan.items()}
    return make_context(x, y, 2, checkpoints=states,
                        recipe=Recipe(model="mlp", model_kwargs={"hidden": [2]}, epochs=3, checkpoints=3))


def test_stragglers_method_on_constructed_checkpoints():
    scores = np.asarray(get_method("stragglers").fn(_straggler_context()))
    # minus the margin at the class's inversion: class 0 at epoch 3, class 1 at epoch 2
    np.testing.assert_allclose(scores, [0.1, 0.5, -0.1, 0.1], atol=1e-6)
    # as the authors' code does in effect: every class at the last inversion (epoch 3)
    shared = np.asarray(get_method("stragglers").fn(_straggler_context(), shared_inversion=True))
    np.testing.assert_allclose(shared, [0.1, 0.5, -2.5, -2.3], atol=1e-6)


def test_chunked_neighbours_equal_scikit_learns_and_respect_the_support(monkeypatch):
    from sklearn.neighbors import NearestNeighbors

    import methods.representation as rep

    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 5)).astype(np.float32)
    monkeypatch.setattr(rep, "DISTANCE_BUDGET", 300 * 7)  # many small chunks
    ours = rep.neighbours_excluding_self(features, 4)
    reference = NearestNeighbors(n_neighbors=5).fit(features).kneighbors(features, return_distance=False)[:, 1:]
    assert (np.sort(ours, 1) == np.sort(reference, 1)).mean() > 0.99  # equal up to float ties
    support = np.arange(0, 300, 3)
    restricted = rep.neighbours_excluding_self(features, 4, support)
    assert np.isin(restricted, support).all()
    assert (restricted != np.arange(300)[:, None]).all()  # never itself, also when it is in the support
