"""Representation-based identifiers: geometry of the network's internal features.

Penultimate features of the final model (``ctx.features``) unless stated otherwise.
k-NN searches are exact, chunked matrix products (``neighbours_excluding_self``); a sample is never its own neighbour.
"""
from __future__ import annotations

import numpy as np
import torch

from bench import register
from bench.dynamics import margins
from bench.train import predict_logits

from ._common import NO_GRAD_COPIES, chunks, layer_chunks, layer_representations, sample_chunk
from .gradients import vog_epochs  # the evenly spaced checkpoints, without the added early epoch


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def class_means(features: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    sums = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(sums, y, features)
    return sums / np.maximum(np.bincount(y, minlength=num_classes), 1)[:, None]


#: rows of the class-mean cosine computed at once (its (rows, D) float64 temporaries)
COSINE_ROWS = 4096


def cosine_to_class_mean(features: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """cos(h_i, mu_{y_i}) per row, over ``COSINE_ROWS`` rows at a time: no (N, D) temporary."""
    mu = class_means(features, y, num_classes)
    mu_norm = np.linalg.norm(mu, axis=1)
    out = np.empty(len(y), dtype=np.result_type(features, mu))
    for a, b in chunks(len(y), COSINE_ROWS):
        h, means = features[a:b], mu[y[a:b]]
        dot = (h * means).sum(axis=1)
        out[a:b] = dot / (np.linalg.norm(h, axis=1) * mu_norm[y[a:b]] + 1e-12)
    return out


@register(higher_is_harder=False, needs={"features"}, family="representation",
          citation="Sorscher et al. 2022, Beyond neural scaling laws: beating power law scaling via data pruning (NeurIPS)")
def prototypicality(ctx):
    """Prototypicality (Sorscher et al. 2022): cos(h_i, mu_{y_i}), h the trained network's
    penultimate features and mu_c the mean feature of the samples labelled c (the sample included);
    lower = farther from its class prototype = harder.

    Variant: supervised prototypes (the labelled classes). Deviation: the paper's self-supervised
    prototype metric clusters a self-supervised embedding with k-means and uses the Euclidean
    distance to the nearest centroid; no self-supervised model is trained here, so the prototypes
    are the labelled classes' means in the trained network's feature space, with cosine similarity
    so that the feature norm's growth does not move the score."""
    y = _as_numpy(ctx.y)
    return cosine_to_class_mean(np.asarray(ctx.features, dtype=np.float64), y, ctx.num_classes)


#: distance-matrix entries computed at once: memory stays O(N k + this), linear in N
DISTANCE_BUDGET = 1 << 24


def neighbours_excluding_self(features: np.ndarray, k: int, support: np.ndarray | None = None) -> np.ndarray:
    """(N, k) indices of each sample's k nearest other samples (Euclidean), among the rows
    ``support`` (all rows by default). A sample is excluded from its own neighbours by
    identity, so an exact duplicate of it still counts. Distances are computed in chunks of
    queries with one matrix product each (||a||^2 - 2 a.b + ||b||^2), ``DISTANCE_BUDGET``
    entries at a time; ties go to the smaller index."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    support_ids = torch.arange(len(x)) if support is None else torch.as_tensor(np.asarray(support))
    search = SupportSearch(x[support_ids], support_ids, k)
    return torch.cat([search.neighbours(x[a:b], torch.arange(a, b))
                      for a, b in chunks(len(x), search.query_chunk)]).numpy()


class SupportSearch:
    """Exact k-nearest-neighbour search among fixed support rows (features ``s``, ids
    ``support_ids``), for queries given chunk by chunk with their own ids: a query is never
    its own neighbour (same id), and ties go to the smaller support position."""

    def __init__(self, s: torch.Tensor, support_ids: torch.Tensor, k: int):
        self.s, self.support_ids = s, support_ids
        self.k = min(k, len(s) - 1)
        self.s_sq = s.pow(2).sum(1)
        self.query_chunk = max(1, DISTANCE_BUDGET // len(s))  # queries per distance block

    def neighbours(self, q: torch.Tensor, query_ids: torch.Tensor) -> torch.Tensor:
        d = q.pow(2).sum(1, keepdim=True) - 2 * q @ self.s.T + self.s_sq
        d[query_ids[:, None] == self.support_ids[None, :]] = torch.inf
        return self.support_ids[d.topk(self.k, dim=1, largest=False, sorted=True).indices]


def knn_disagreement_scores(representation: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """(1/k) sum_{j in kNN(i)} [y_j != y_i], Euclidean neighbours in ``representation``, self excluded."""
    neighbours = neighbours_excluding_self(np.asarray(representation, dtype=np.float32), k)
    return (y[neighbours] != y[:, None]).mean(axis=1)


@register(higher_is_harder=True, needs={"final_model"}, family="representation",
          citation="Bahri, Jiang & Gupta 2020, Deep k-NN for Noisy Labels (ICML)")
def knn_disagreement(ctx, k: int = 10):
    """Deep k-NN disagreement (Bahri, Jiang & Gupta 2020): (1/k) sum_{j in kNN(i)} [y_j != y_i], the share of the
    k = 10 nearest neighbours in the trained network's logit layer (ctx.final_logits, Euclidean, the
    sample itself excluded) whose label differs from the sample's; higher = harder (likely mislabelled).

    Variant: the paper filters on the logit layer of a model trained on the noisy data, removing a
    sample when its label disagrees with the k-NN majority; the share of disagreeing neighbours is
    the ranking behind that cut. Deviation: k fixed at 10 (the paper tunes k)."""
    return knn_disagreement_scores(_as_numpy(ctx.final_logits), _as_numpy(ctx.y), k)


def knn_probe_predictions(features: np.ndarray, y: np.ndarray, num_classes: int, k: int,
                          support: np.ndarray | None = None) -> np.ndarray:
    """Majority label among each sample's k nearest other samples of ``support`` (default all;
    ties: the smallest class)."""
    return majority_label(neighbours_excluding_self(features, k, support), y, num_classes)


def majority_label(neighbours: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    votes = (y[neighbours][:, :, None] == np.arange(num_classes)).sum(axis=1)
    return votes.argmax(axis=1)


def depth_from_agreement(agree: np.ndarray) -> np.ndarray:
    """First layer index l such that agree[:, l'] holds for every l' >= l; L + 1 (the number
    of layers) when even the last layer disagrees."""
    agree = np.asarray(agree, dtype=bool)
    suffix = np.flip(np.logical_and.accumulate(np.flip(agree, axis=1), axis=1), axis=1)
    return agree.shape[1] - suffix.sum(axis=1)


#: the k-NN probes of prediction depth are fit on at most this many samples (a seeded random subset)
PROBE_SUPPORT = 8192


def prediction_depths(layers: list[np.ndarray], y: np.ndarray, final_pred: np.ndarray, num_classes: int,
                      k: int = 30, support: np.ndarray | None = None) -> np.ndarray:
    probes = np.stack([knn_probe_predictions(np.asarray(h, dtype=np.float32), y, num_classes, k, support)
                       for h in layers], axis=1)
    return depth_from_agreement(probes == final_pred[:, None])


@register(label_blind=True, higher_is_harder=True, needs={"final_model"}, family="representation",
          citation="Baldock, Maennel & Neyshabur 2021, Deep Learning Through the Lens of Example Difficulty (NeurIPS)")
def prediction_depth(ctx, k: int = 30):
    """Prediction depth (Baldock, Maennel & Neyshabur 2021): k-NN probes (k = 30, Euclidean, fit on the pool's
    representations and labels) at layer l = 0 (input), 1..B (each block's output) and B + 1 (logits) of
    the trained network; depth = min{l : probe_l'(x) = argmax f(x) for all l' >= l}, the final
    prediction of the network (B + 2 if even the last probe disagrees); higher = harder.

    Variant: the paper's, which compares with the network's final prediction, not the label: a
    sample's own label is never read (it is excluded from its own neighbours), only the labels of
    its neighbours. Deviations: a sample is never its own neighbour (the pool is both the probes'
    support and the scored set); feature maps wider than 4096 values are average-pooled spatially
    before the probe, and pools larger than PROBE_SUPPORT = 8192 samples fit the probes on a
    seeded random subset of that many (every sample is still scored), to keep k-NN affordable."""
    final_pred = _as_numpy(ctx.final_logits.argmax(dim=1))
    n = len(final_pred)
    support = (None if n <= PROBE_SUPPORT
               else np.sort(np.random.default_rng([ctx.seed, 0xDE97]).choice(n, PROBE_SUPPORT, replace=False)))
    return streamed_prediction_depths(ctx.final_model, ctx.x, _as_numpy(ctx.y), final_pred, ctx.num_classes, k,
                                      support).astype(float)


def streamed_prediction_depths(model, x: torch.Tensor, y: np.ndarray, final_pred: np.ndarray, num_classes: int,
                               k: int = 30, support: np.ndarray | None = None) -> np.ndarray:
    """``prediction_depths`` of ``layer_representations(model, x)`` without holding every
    layer of every sample: the support's layers are computed once (filled in place, chunk by
    chunk), the queries' layer by layer in chunks (one forward pass each), so memory is the
    support's representations plus one chunk (LeNet, full MNIST: 0.6 GB of layers no longer
    held). A query chunk is bounded by the distance budget and by the activation budget
    (``sample_chunk``), whichever is smaller: the support's size alone let a chunk's forward
    pass grow with N up to 2^24 / support rows (airbench 32-64-64, 5,000 CIFAR-shaped samples,
    peak RSS growth +1.36 GB, of which +0.30 GB are the support's layers, now +0.38 GB)."""
    support_ids = torch.arange(len(y)) if support is None else torch.as_tensor(np.asarray(support))
    searches = [SupportSearch(h.float(), support_ids, k)
                for h in layer_representations(model, x, rows=None if support is None else support_ids)]
    probes = np.empty((len(y), len(searches)), dtype=np.int64)
    for a, b, layers in layer_chunks(model, x, batch_size=min(searches[0].query_chunk, sample_chunk(model, x))):
        ids = torch.arange(a, b)
        for layer, (h, search) in enumerate(zip(layers, searches)):
            probes[a:b, layer] = majority_label(search.neighbours(h.float().cpu(), ids).numpy(), y, num_classes)
    return depth_from_agreement(probes == final_pred[:, None])


def sphere_class_radii(represent, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                       chunk: int | None = None) -> torch.Tensor:
    """R_c = sqrt(mean_{i in c} || u_i - mean_{j in c} u_j ||^2), u_i = r_i / || r_i || the representation
    ``represent(x_i)`` projected onto the unit sphere: the class manifold's RMS radius (Ciceri et al.'s
    code, as adapted in Pukowski & Lu's ``MyNN.radii``). Since || u_i || = 1, the mean squared distance
    is 1 - || mu_c ||^2 (a zero representation counts as u = 0: mean || u ||^2 - || mu_c ||^2 in
    general). Float64 sums over row chunks, so memory beyond the chunk's representation is O(C D)
    (measured, LeNet's first block: +80 MB peak at 1024 rows a chunk, +321 MB at 4096, whatever N).
    Chunks of ``chunk`` rows; by default, for a module, as many as the activation budget allows
    (``sample_chunk`` with 2 copies: the module's pass, then the chunk's unit vectors in float64),
    else 1024."""
    if chunk is None:
        chunk = sample_chunk(represent, x, 2.0) if isinstance(represent, torch.nn.Module) else 1024
    count = torch.bincount(y, minlength=num_classes).double().clamp_min(1)
    sums, square_norms = None, torch.zeros(num_classes, dtype=torch.float64, device=y.device)
    with torch.no_grad():
        for a, b in chunks(len(y), chunk):
            u = torch.nn.functional.normalize(represent(x[a:b]).flatten(1).double(), dim=1)
            if sums is None:
                sums = torch.zeros((num_classes, u.shape[1]), dtype=torch.float64, device=u.device)
            sums.index_add_(0, y[a:b], u)
            square_norms.index_add_(0, y[a:b], u.pow(2).sum(1))
    mu = sums / count[:, None]
    return (square_norms / count - mu.pow(2).sum(1)).clamp_min(0).sqrt()


def inversion_checks(radii: torch.Tensor, shared: bool = False, start: int = 1) -> torch.Tensor:
    """From (K, C) class radii at K checks: each class's inversion check, the first k >= ``start`` (at
    least 1) with R_c(k) > R_c(k - 1) (the radius grows again after shrinking), or the last check
    K - 1 where it never grows. ``shared``: every class at the latest of them (what the authors' code
    does in effect, see ``stragglers``)."""
    start = max(1, start)
    last = torch.full(radii.shape[1:], len(radii) - 1, dtype=torch.long, device=radii.device)
    grows = radii[start:] > radii[start - 1:-1]  # (K - start, C)
    first = torch.where(grows.any(dim=0), grows.int().argmax(dim=0) + start, last) if len(grows) else last
    return first.max().expand_as(first) if shared else first


def straggler_scores(radii: torch.Tensor, checkpoint_margins: torch.Tensor, y: torch.Tensor,
                     shared: bool = False, start: int = 1) -> torch.Tensor:
    """From (K, C) class radii and (K, N) margins z_y - max_{k != y} z_k at K checks: minus the margin at
    the inversion check of the sample's class (``inversion_checks``). Positive exactly for the
    stragglers (misclassified there), so the stragglers are the top set; the rest rank by margin."""
    inversion = inversion_checks(radii, shared, start)
    return -checkpoint_margins[inversion[y], torch.arange(len(y), device=y.device)].double()


#: share of training before which no inversion point is accepted: the authors' 20 of 500 epochs
BURN_IN = 20 / 500


@register(higher_is_harder=True, needs={"checkpoints"}, family="representation",
          citation="Ciceri et al. 2024, Inversion dynamics of class manifolds in deep learning reveals tradeoffs "
                   "underlying generalization (Nat. Mach. Intell.); Pukowski & Lu 2024 (in-class data imbalance)")
def stragglers(ctx, shared_inversion: bool = False):
    """Stragglers (Ciceri et al. 2024; Pukowski & Lu 2024): the first block's output r(x) of each check t is
    projected onto the unit sphere, u = r / ||r||, and every class manifold's RMS radius
    R_c(t) = sqrt(mean_{i in c} || u_i - mu_c ||^2) is computed; the class's inversion point t*_c is
    the first check at which R_c grows (R_c(t) > R_c(t_prev)); the samples of class c misclassified by
    the model at t*_c are its stragglers. Score = -(z_y - max_{k != y} z_k) at t*_{y}: positive exactly
    for the stragglers (they are the top set, all of them, however many), the rest ranked by how
    narrowly they were classified there; higher = harder.

    Variant: the binary straggler label of both papers, made a ranking. Reference: Pukowski & Lu's
    code (utils.py ``train_stop_at_inversion`` and ``find_stragglers``;
    neural_networks.py ``MyNN.radii``, "a modified version from github.com/marco-gherardi/stragglers",
    Ciceri et al.'s code): the radius on the unit sphere as above, checked every 5 epochs, an
    inversion accepted only after epoch 20 of 500 and compared with the previous check.

    Here as there, no inversion is accepted at a check within the first BURN_IN = 20/500 of training
    (the authors' unstable start, scaled to the recipe's epochs); the check before may serve as the
    comparison.

    Deviations: (1) the checks are the recipe's evenly spaced checkpoints (``recipe.checkpoints`` of
    them, the last epoch included; the added early checkpoint is left out) instead of every 5 epochs,
    so an inversion is placed at the first check after it, and the first possible inversion is the
    second check (``--checkpoints 100`` on the in-class imbalance recipe checks every 5 epochs). (2) A
    class whose radius never grows between checks gets the last check (the final model); the
    authors retrain until every class inverts. (3) A continuous score instead of the binary label,
    so that it ranks; the margin mixes checkpoints across classes. (4) The authors' code keeps a
    reference to the training model, not a copy, at each class's inversion, so in effect every class
    is judged by the model at the last class's inversion point; we follow the per-class definition
    of the paper (``shared_inversion=True`` reproduces the code's behaviour). (5) Representations of
    the first block (Linear + activation for MLPs, as the authors' first tanh layer; the first conv
    block for CNNs)."""
    epochs = vog_epochs(ctx.recipe)
    burn_in = sum(e <= BURN_IN * ctx.recipe.epochs for e in epochs)  # checks an inversion may not be at
    radii, margin_rows = [], []
    for epoch in epochs:
        model = ctx.model_at(epoch)
        radii.append(sphere_class_radii(model.blocks[0], ctx.x, ctx.y, ctx.num_classes))
        margin_rows.append(margins(predict_logits(model, ctx.x, sample_chunk(model, ctx.x, NO_GRAD_COPIES)), ctx.y))
    return straggler_scores(torch.stack(radii), torch.stack(margin_rows), ctx.y, shared_inversion, burn_in)
