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

from ._common import chunks, layer_chunks, layer_representations


def _as_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def class_means(features: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    sums = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(sums, y, features)
    return sums / np.maximum(np.bincount(y, minlength=num_classes), 1)[:, None]


def cosine_to_class_mean(features: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    means = class_means(features, y, num_classes)[y]
    dot = (features * means).sum(axis=1)
    return dot / (np.linalg.norm(features, axis=1) * np.linalg.norm(means, axis=1) + 1e-12)


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


@register(higher_is_harder=True, needs={"final_model"}, family="representation",
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
    layer of every sample: the support's layers are computed once, the queries' layer by
    layer in chunks (one forward pass each), so memory is the support's representations plus
    one chunk (LeNet, full MNIST: 0.6 GB of layers no longer held)."""
    support_ids = torch.arange(len(y)) if support is None else torch.as_tensor(np.asarray(support))
    searches = [SupportSearch(h.float(), support_ids, k) for h in layer_representations(model, x[support_ids])]
    probes = np.empty((len(y), len(searches)), dtype=np.int64)
    for a, b, layers in layer_chunks(model, x, batch_size=searches[0].query_chunk):
        ids = torch.arange(a, b)
        for layer, (h, search) in enumerate(zip(layers, searches)):
            probes[a:b, layer] = majority_label(search.neighbours(h.float().cpu(), ids).numpy(), y, num_classes)
    return depth_from_agreement(probes == final_pred[:, None])


def normalised_class_radii(h: torch.Tensor, y: torch.Tensor, num_classes: int, chunk: int = 4096) -> torch.Tensor:
    """R^2_c = mean_{i in c} || h_i - mu_c ||^2 / mean_i || h_i - mu ||^2: each class manifold's
    squared radius relative to the spread of all samples (scale-free, so the weight norm's
    growth during training does not move it). Float64 sums over row chunks, in two passes
    (means, then squared distances), so memory beyond ``h`` stays at one chunk: on full MNIST
    the whole-array version held five float64 copies of LeNet's first block (+1.9 GB)."""
    count = torch.bincount(y, minlength=num_classes).double().clamp_min(1)
    sums = torch.zeros((num_classes, h.shape[1]), dtype=torch.float64, device=h.device)
    for a, b in chunks(len(y), chunk):
        sums.index_add_(0, y[a:b], h[a:b].double())
    mu_c, mu = sums / count[:, None], sums.sum(0) / len(y)
    within = torch.zeros(num_classes, dtype=torch.float64, device=h.device)
    total = torch.zeros((), dtype=torch.float64, device=h.device)
    for a, b in chunks(len(y), chunk):
        block = h[a:b].double()
        within.index_add_(0, y[a:b], ((block - mu_c[y[a:b]]) ** 2).sum(1))
        total += ((block - mu) ** 2).sum()
    return within / count / (total / len(y)).clamp_min(1e-12)


def straggler_scores(radii: torch.Tensor, checkpoint_margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """From (K, C) class radii and (K, N) margins at K checkpoints: the inversion point of
    class c is t*_c = argmin_t R^2_c(t); sample i is a straggler if misclassified (margin < 0)
    at t*_{y_i}. Score = [straggler] + sigmoid(-margin at t*_{y_i}): binary first, the margin
    breaks ties."""
    inversion = radii.argmin(dim=0)  # (C,)
    margin = checkpoint_margins[inversion[y], torch.arange(len(y), device=y.device)]
    return (margin < 0).double() + torch.sigmoid(-margin.double())


@register(higher_is_harder=True, needs={"checkpoints"}, family="representation",
          citation="Pukowski & Lu 2024 (in-class data imbalance); "
                   "Ciceri et al. 2024, Inversion dynamics of class manifolds (Nat. Mach. Intell.)")
def stragglers(ctx):
    """Stragglers (Ciceri et al. 2024; Pukowski & Lu 2024): at each kept checkpoint t, the normalised squared
    radius R^2_c(t) of every class manifold in the first block's output; the class's inversion point
    is its minimum t*_c (segregation ends, entanglement starts); samples misclassified at t*_c are
    stragglers. Score = [margin_{t*} < 0] + sigmoid(-margin_{t*}), margin = z_y - max_{k != y} z_k of
    the checkpoint at t*_{y}; higher = harder.

    Variant: the papers' binary straggler label, with the margin breaking ties so that it ranks.
    Deviation: the inversion point is searched over the kept checkpoints (evenly spaced plus the
    early epoch), not every epoch."""
    radii, margin_rows = [], []
    for epoch in sorted(ctx.checkpoints):
        model = ctx.model_at(epoch)
        with torch.no_grad():
            first = torch.cat([model.blocks[0](ctx.x[a:b]).flatten(1) for a, b in chunks(len(ctx.x), 4096)])
        radii.append(normalised_class_radii(first, ctx.y, ctx.num_classes))
        margin_rows.append(margins(predict_logits(model, ctx.x), ctx.y))
    return straggler_scores(torch.stack(radii), torch.stack(margin_rows), ctx.y)
