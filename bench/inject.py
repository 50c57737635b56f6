"""Planted hardness: corrupt a seeded random subset M of a clean pool.

Each planter takes the clean pool and returns the corrupted pool; the mask of M
is the ground truth of the detection track. Types (docs/protocol.md, "Track D"; what each
type's check must show is in ``bench.planting_check``):

- ``label-uniform``: the label is replaced by a uniformly drawn *different* class.
- ``label-pair``: class-conditional pair flip on uniformly chosen samples: every planted
  sample of class c gets the same new label, the class most confused with c
  (``most_confused`` of an out-of-sample confusion matrix of a clean model, given by
  ``PlantingSources.confusion``); without a confusion matrix, vector data uses the
  fixed permutation c -> c + 1 mod C. The new label depends on the class, not on the sample.
- ``label-instance``: the new label depends on the sample itself: the most likely wrong
  class for that very sample under a clean model that never trained on it
  (``PlantingSources.clean_predict``); without one, the class whose clean-pool mean is
  nearest to the sample in input space among the other classes (``nearest_other_class``).
- ``label-adjacent``: the label moves to a neighbouring class, y + 1 or y - 1 modulo C with
  probability 1/2 each (one fair draw per sample): the H-CAT benchmark's adjacent noise
  (Seedat et al. 2024, ``adjacent_mislabeling``). Why: H-CAT has it; on ordered labels (ages,
  grades, severities) a neighbour is the mistake an annotator makes. On digits and MNIST the
  neighbours of a class are arbitrary, so it reads like uniform noise restricted to two targets.
- ``near-ood``: a covariate shift (images: Gaussian blur with sigma ``NEAR_OOD_BLUR`` x H / 28
  pixels, then Gaussian noise; vectors: the noise only) whose severity, the noise std in
  units of the pool's per-channel std, is calibrated per dataset so that a clean model's
  accuracy drops by ``near_ood_target_drop`` (``calibrate_near_ood``, with
  ``PlantingSources.clean_predict``); without a predictor the severity is
  ``NEAR_OOD_NOISE``. Value-matched (``restandardise``); label kept.
- ``far-ood``: the input is replaced by a sample of another dataset
  (``PlantingSources.far_ood``, see ``default_sources``), shaped and standardised like
  the pool, then value-matched; label kept.
- ``domain-shift``: a change of style that keeps the class (H-CAT's domain shift, its cartoon
  filter; without OpenCV or AugLy). Images: ``cartoon``: an edge-preserving median smoothing
  (window ``DOMAIN_MEDIAN`` x H / 28 pixels, odd, at least 5: 5 on 8 x 8, 13 on 28 x 28) with
  dark outlines (the image's minimum where the smoothed image's Sobel gradient is at least
  ``DOMAIN_EDGE`` of its largest); the original and the style are blended in *rank* with a
  strength s in [0, 1] (``domain_corrupt``), then value-matched. Posterised flat tones, the
  third part of a cartoon filter, are left out: a few distinct values per image are a value
  artefact, and value matching turns them into random speckle (the digits' accuracy fell to
  19% from speckle, not from style). Vectors (an analogue, so that every kind runs on every
  data set): each feature rounded to ``DOMAIN_LEVELS`` levels of its pool range, blended in
  value. s is calibrated per class (``calibrate_domain_shift``, on up to
  ``ATYPICAL_CALIBRATION_ROWS`` unplanted rows a class) so that the clean accuracy of each
  class falls by near-ood's target (``near_ood_target_drop``): per class because one style
  reads differently by class (a smoothed 4 is still a 4 to LeNet, a smoothed 5 is not);
  without a predictor s = ``DOMAIN_STRENGTH`` (the full style). Label kept. A covariate shift
  of a known kind, so it belongs to the out-of-distribution question beside near-ood.
- ``crop-shift``: a translation with cropping and padding, no zoom (H-CAT's crop shift: 10 of
  28 pixels to the right). Images: moved by whole pixels (``translate``), a length of u x the
  image's size, u uniform in ``CROP_SHIFT`` (0.20-0.35), in a uniformly random direction
  (``crop_shift_offsets``), the pixels that enter taking the image's minimum, then
  value-matched. Vectors (an analogue): the point moved by u x the pool's range of each
  feature along a random unit direction, then ``restandardise``. Label kept. Not calibrated:
  at H-CAT's size a clean model without translation augmentation reads the moved samples at
  about chance (digits 8-13%, MNIST 8-11%), so they are no rare valid members of their
  class (H-CAT files crop shift under atypical) but out of what the model learned: the
  out-of-distribution question, with the check that the accuracy drops by at least half
  near-ood's target.
- ``atypical``: a rare but valid member of the sample's own class, label correct, and *hard*:
  harder for a clean model than the originals (``bench.planting_check``: the mean probability
  of the label drops by at least 0.15, overall and in every class). Images: the sample warped
  about its centre by a random affine map, magnified by 1 + s x ``ATYPICAL_ZOOM`` x u,
  rotated by +-s x ``ATYPICAL_ANGLE`` x u degrees, sheared by +-s x ``ATYPICAL_SHEAR`` x u and
  shifted by up to s x ``ATYPICAL_SHIFT`` x H pixels per axis (u uniform in ``ATYPICAL_DRAW``
  per sample and component; ``affine_warp``), then value-matched. The strength s in [0, 1] is
  calibrated per class (``calibrate_atypical``, with ``PlantingSources.clean_predict``, on up to
  ``ATYPICAL_CALIBRATION_ROWS`` unplanted rows of the class) so that a clean model's mean
  probability of the label on the warped samples is ``ATYPICAL_TARGET`` (0.55): read as the
  class more often than not (valid), yet far below the originals' 0.9-0.95 (hard). A class
  the clean model already reads at or below the target is left as it is (s = 0: nothing valid
  and harder to plant there); one that never falls that far gets s = 1. Without a predictor
  every class gets ``ATYPICAL_STRENGTH``. Rotations stay within 45 degrees, far from the
  half turn that makes a 6 a 9; no reflection.
  Why: the former zoom-and-shift (zoom 1.1-1.25, shift 1/28 of H, after the H-CAT benchmark,
  Seedat et al. 2024) was valid but barely harder than the originals (mean p_y 0.82 vs 0.90
  on MNIST 10k; per class drops from 0.02), and any one fixed transform is hard for some
  classes and destroys others (a 4 survives a 45-degree turn, a trouser does not; a zoom of
  1.4-1.6 leaves 0-17% of some class). Tried (docs/protocol.md, "Track D", has the numbers):
  stronger zoom and shift, rotation alone, zoom-out, shear alone, fixed affine maps, and the
  calibrated affine at a target drop instead of a target level; only the per-class
  calibration to a level (0.50-0.55) was valid and hard on both digits and MNIST. On Fashion-MNIST no variant is
  both: the clean model reads the shirt originals at 35-47% (p_y 0.36), below the validity
  floor before anything is planted.
  Vectors (tabular data): H-CAT's marginal atypicality: k features of the sample, chosen at
  random, each set to a value drawn uniformly from the pool's ``ATYPICAL_TAIL_SHARE`` (1%)
  tail of that feature's marginal (``marginal_tails``; H-CAT: ``int(0.01 * N)`` values, one
  named feature, upper tail only). The tail is the one rare *for the sample's class*
  (``rare_tail``: the tail fewer of the class's own values reach), not only for the data set:
  H-CAT's upper tail of a size feature is the common case of the malignant class, so it made
  malignant samples no harder (breast cancer: p_y drop -0.03 to -0.10 in that class). k is
  calibrated per class like the images' strength (``calibrate_tail_features``: the count,
  among the two bracketing ``ATYPICAL_TARGET``, whose clean mean p_y is nearer it); without a
  predictor k = ``ATYPICAL_FEATURES`` (1, as H-CAT). Not value-matched: the extreme value of
  a feature *is* the atypicality, and it is a value the data set holds, not an artefact.
  Valid and hard on ``breast-cancer`` (docs/protocol.md has the numbers); not valid on the
  synthetic sets, where a feature's 1% tail lies in another class's region (``blobs``,
  ``moons``: the clean accuracy on the planted samples falls to 3-42% with a single feature).
  It replaces a tail draw of the class's fitted Gaussian, which was not hard: far from every
  class, a clean model read the draws as surely as the originals or more (``blobs``: p_y
  0.83 planted vs 0.73; ``moons``: a p_y drop of 0.12).

Value matching (``restandardise``) removes what a look at pixel values alone would
give away: each corrupted sample's values (per channel for images) are replaced, in
the order of their own values, by the sorted values of the clean sample it replaces.
The planted sample keeps the corruption's spatial pattern, and exactly the value
multiset of a clean sample: its minimum, maximum, mean, std and norm are those of the
sample it replaced, so no statistic of values alone, one- or two-sided, can single it
out. Vectors with D >= 3 features are matched the same way; with D <= 2 matching
would undo the corruption, so 2-D points are left as they are. Vector ``atypical`` is not
matched (its extreme feature values are the kind itself, see above).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UnknownName

NEAR_OOD_BLUR = 1.0  # Gaussian blur sigma in pixels of a 28-pixel-high image (scaled with the height)
NEAR_OOD_DROP = 0.40  # the calibrated drop of a clean model's accuracy on near-ood samples (fraction)
NEAR_OOD_NOISE = 2.0  # default severity without a clean predictor: noise std in units of the pool's std
NEAR_OOD_MAX_NOISE = 8.0  # the calibration searches severities in [0, NEAR_OOD_MAX_NOISE]
NEAR_OOD_STEPS = 10  # bisection steps of the calibration (resolution NEAR_OOD_MAX_NOISE / 2**10)
NEAR_OOD_CALIBRATION_ROWS = 1000  # unplanted rows the calibration measures the drop on
ATYPICAL_ZOOM = 0.6  # atypical images at full strength: magnified by up to 1 + this
ATYPICAL_ANGLE = 45.0  # ... rotated by up to this many degrees, either way
ATYPICAL_SHEAR = 0.5  # ... sheared (x += shear * y) by up to this much, either way
ATYPICAL_SHIFT = 3 / 28  # ... shifted by up to this fraction of the height per axis (3 pixels on MNIST)
ATYPICAL_DRAW = (0.5, 1.0)  # per sample and component, the share of the full-strength magnitude, uniform
ATYPICAL_TARGET = 0.55  # the clean model's mean p_y on a class's atypical images, calibrated per class
ATYPICAL_STRENGTH = 0.6  # strength without a clean predictor (the calibrated ones: about 0.3-1, MNIST 0.4-0.75)
ATYPICAL_CALIBRATION_ROWS = 200  # unplanted rows per class the calibration measures p_y on
ATYPICAL_STEPS = 10  # bisection steps of the per-class strength in [0, 1]
ATYPICAL_TAIL_SHARE = 0.01  # vectors: a tail value is one of a feature's lowest or highest 1% of pool values
ATYPICAL_FEATURES = 1  # vectors without a predictor: the features set to a tail value per sample (H-CAT: one)
DOMAIN_MEDIAN = 13  # domain-shift images: median window in pixels of a 28-pixel-high image (odd, at least 5)
DOMAIN_LEVELS = 4  # ... vectors: each feature rounded to this many levels of its pool range
DOMAIN_EDGE = 0.1  # ... images: dark outlines where the gradient magnitude is at least this share of the image's largest
DOMAIN_TIES = 1e-4  # ... ties of the style broken by this multiple of a wide blur (below any gap between values)
DOMAIN_STRENGTH = 1.0  # strength (the blend towards the style) without a clean predictor: the full style
DOMAIN_STEPS = 10  # bisection steps of the calibrated strength in [0, 1]
CROP_SHIFT = (0.2, 0.35)  # crop-shift: the shift's length as a share of the image's size, uniform per sample


@dataclass(frozen=True)
class Planted:
    x: torch.Tensor
    y: torch.Tensor
    mask: np.ndarray  # True for the planted samples
    y_clean: torch.Tensor | None = None  # the labels before planting


@dataclass
class PlantingSources:
    """What some planters need, built lazily (only a planter that needs a part calls it).

    ``confusion()``: (C, C) out-of-sample confusion counts of a clean model on the clean
    pool, rows = true class, columns = predicted class (``label-pair``).
    ``far_ood(n, rng)``: n samples of another dataset, shaped like one pool sample each and
    standardised like the pool (``far-ood``).
    ``clean_predict(x, rows)``: (len(rows), C) class probabilities of a clean model for the
    inputs ``x`` of the pool's rows ``rows`` (possibly corrupted), from a model that never
    trained on those rows, e.g. the fold model of a K-fold split of the clean pool that held
    each row out (``label-instance``, the calibration of ``near-ood``, ``bench.planting_check``).
    """
    confusion: Callable[[], np.ndarray] | None = None
    far_ood: Callable[[int, np.random.Generator], torch.Tensor] | None = None
    clean_predict: Callable[[torch.Tensor, np.ndarray], np.ndarray] | None = None
    dataset_name: str | None = None
    data_root: str | Path | None = None


class MissingSource(ValueError):
    """A planter needs a part of ``PlantingSources`` that was not given."""


PLANTERS: dict[str, Callable] = {}


def planter(name: str):
    """Register ``fn(x, y, num_classes, mask, rng, sources) -> (x, y)`` as planted type ``name``."""
    def wrap(fn):
        PLANTERS[name] = fn
        return fn
    return wrap


def choose_subset(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=int(round(rate * n)), replace=False)] = True
    return mask


def plant(kind: str, x: torch.Tensor, y: torch.Tensor, num_classes: int, rate: float, seed: int,
          sources: PlantingSources | None = None) -> Planted:
    """Plant hardness of type ``kind`` in round(rate * N) samples drawn with ``seed``."""
    if kind not in PLANTERS:
        raise UnknownName("hardness type", kind, PLANTERS)
    rng = np.random.default_rng([seed, 0x5EED])
    mask = choose_subset(len(y), rate, rng)
    x_new, y_new = PLANTERS[kind](x, y, num_classes, mask, rng, sources)
    return Planted(x_new, y_new, mask, y)


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2 ** 62)))


def _replace_rows(x: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[idx] = rows.to(x.dtype)
    return out


# ---- labels -----------------------------------------------------------------------
@planter("label-uniform")
def label_uniform(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each planted label by a uniformly drawn *different* class:
    adding an offset in 1..C-1 modulo C never returns the original label."""
    offsets = rng.integers(1, num_classes, size=int(mask.sum()))
    y = y.clone()
    idx = torch.as_tensor(np.flatnonzero(mask))
    y[idx] = (y[idx] + torch.as_tensor(offsets, dtype=y.dtype)) % num_classes
    return x, y


def fixed_permutation(num_classes: int) -> np.ndarray:
    """The class permutation c -> c + 1 mod C: no class maps to itself."""
    return (np.arange(num_classes) + 1) % num_classes


def most_confused(confusion: np.ndarray) -> np.ndarray:
    """For each true class (row), the other class it is most often predicted as: the
    argmax of the row's off-diagonal counts, ties to the smallest index. A class never
    confused with another (no off-diagonal count) maps by ``fixed_permutation``. Never the
    class itself."""
    confusion = np.asarray(confusion, dtype=float)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] < 2:
        raise ValueError(f"a confusion matrix is (C, C) with C >= 2; got shape {confusion.shape}")
    off = confusion.copy()
    np.fill_diagonal(off, -np.inf)
    target = off.argmax(axis=1)
    never = ~(np.where(np.eye(len(off), dtype=bool), 0.0, confusion) > 0).any(axis=1)
    target[never] = fixed_permutation(len(off))[never]
    return target


@planter("label-pair")
def label_pair(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each planted label to the class most confused with it (``most_confused`` of
    ``sources.confusion()``); vector data without a confusion matrix uses ``fixed_permutation``."""
    if sources is not None and sources.confusion is not None:
        confusion = np.asarray(sources.confusion())
        if confusion.shape != (num_classes, num_classes):
            raise ValueError(f"label-pair: confusion matrix of shape {confusion.shape}, expected "
                             f"({num_classes}, {num_classes})")
        target = most_confused(confusion)
    elif x.ndim == 2:
        target = fixed_permutation(num_classes)
    else:
        raise MissingSource("label-pair on image data needs an out-of-sample confusion matrix of a clean model "
                            "(PlantingSources.confusion); the detection track computes one by K-fold on the clean pool")
    y = y.clone()
    idx = torch.as_tensor(np.flatnonzero(mask))
    y[idx] = torch.as_tensor(target, dtype=y.dtype)[y[idx]]
    return x, y


def most_likely_other(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row, the class of highest probability other than ``y`` (ties to the smallest index)."""
    probs = np.array(probs, dtype=float)
    probs[np.arange(len(y)), y] = -np.inf
    return probs.argmax(axis=1)


def nearest_other_class(x: torch.Tensor, y: torch.Tensor, num_classes: int, idx: torch.Tensor) -> np.ndarray:
    """For the rows ``idx``, the class whose mean over the clean pool (inputs flattened) is
    nearest in Euclidean distance, the row's own class excluded: a sample-dependent choice
    that needs no model (``label-instance`` without ``clean_predict``)."""
    flat = x.reshape(len(x), -1).float()
    onehot = F.one_hot(y, num_classes).float()
    means = onehot.T @ flat / onehot.sum(0).clamp_min(1).unsqueeze(1)
    distance = torch.cdist(flat[idx], means)
    distance[:, onehot.sum(0) == 0] = torch.inf  # a class absent from the pool is never a target
    return most_likely_other(-distance.numpy(), y[idx].numpy())


@planter("label-instance")
def label_instance(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each planted label to the most likely wrong class for that sample under a clean
    model that never trained on it (``sources.clean_predict``); without one, to
    ``nearest_other_class``. Deterministic given the subset: the rng is not used."""
    idx_np = np.flatnonzero(mask)
    idx = torch.as_tensor(idx_np)
    if sources is not None and sources.clean_predict is not None:
        probs = np.asarray(sources.clean_predict(x[idx], idx_np))
        if probs.shape != (len(idx_np), num_classes):
            raise ValueError(f"label-instance: clean_predict gave shape {probs.shape}, "
                             f"expected ({len(idx_np)}, {num_classes})")
        target = most_likely_other(probs, y[idx].numpy())
    else:
        target = nearest_other_class(x, y, num_classes, idx)
    y = y.clone()
    y[idx] = torch.as_tensor(target, dtype=y.dtype)
    return x, y


@planter("label-adjacent")
def label_adjacent(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each planted label to a neighbouring class, y + 1 or y - 1 modulo C, each with
    probability 1/2 (one fair draw per sample): the H-CAT benchmark's adjacent noise matrix
    (``adjacent_mislabeling``). With two classes both neighbours are the other class."""
    idx = torch.as_tensor(np.flatnonzero(mask))
    steps = rng.choice(np.array([-1, 1]), size=len(idx))
    y = y.clone()
    y[idx] = (y[idx] + torch.as_tensor(steps, dtype=y.dtype)) % num_classes
    return x, y


# ---- value matching -------------------------------------------------------------------
def match_values(x_new: torch.Tensor, x_old: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each row of ``x_new`` (per channel for images) takes, in the order of its own values, the
    sorted values of the same row of ``x_old``: the corruption keeps its spatial pattern and
    the sample keeps its value multiset. Tied values take their targets in a seeded random order."""
    n = len(x_new)
    groups = x_new.shape[1] if x_new.ndim == 4 else 1
    flat = x_new.reshape(n, groups, -1).float()
    targets = x_old.reshape(n, groups, -1).float().sort(dim=-1).values
    jitter = torch.rand(flat.shape, generator=generator, dtype=torch.float64)
    # order by value, ties by the random jitter: a lexicographic sort as two stable sorts
    order = jitter.argsort(dim=-1)
    order = order.gather(-1, flat.gather(-1, order).argsort(dim=-1, stable=True))
    out = torch.empty_like(flat)
    out.scatter_(-1, order, targets)
    return out.reshape(x_new.shape)


def restandardise(x_new: torch.Tensor, x_old: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Value matching of corrupted samples to the samples they replace (see the module
    docstring); 2-D points are left as they are."""
    if x_new.ndim == 4 or (x_new.ndim == 2 and x_new.shape[1] >= 3):
        return match_values(x_new, x_old, generator)
    return x_new


# ---- inputs ---------------------------------------------------------------------------
def _blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) matrix of a 1-D Gaussian blur with reflect padding, radius ceil(3 sigma)
    (at most size - 1): row i holds the weights of output pixel i."""
    radius = max(1, min(math.ceil(3 * sigma), size - 1))
    taps = torch.arange(-radius, radius + 1)
    weights = torch.exp(-taps.double() ** 2 / (2 * sigma ** 2))
    weights = weights / weights.sum()
    source = torch.arange(size).view(-1, 1) + taps.view(1, -1)
    source = torch.where(source < 0, -source, source)
    source = torch.where(source >= size, 2 * (size - 1) - source, source)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights.expand(size, -1).contiguous())
    return matrix.float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images with reflect padding, as two matrix
    products (rows, then columns)."""
    h, w = x.shape[-2:]
    return _blur_matrix(h, sigma) @ x.float() @ _blur_matrix(w, sigma).T


def _spread(x: torch.Tensor) -> torch.Tensor:
    """Per-channel (images) or per-feature (vectors) population std of the pool, broadcastable."""
    dims = (0, 2, 3) if x.ndim == 4 else (0,)
    return x.float().std(dim=dims, keepdim=True, unbiased=False)


def near_ood_target_drop(accuracy: float, num_classes: int) -> float:
    """The drop of a clean model's accuracy that ``near-ood`` aims at: ``NEAR_OOD_DROP``, but at
    most half the accuracy above chance (1 / C), so that with a weak clean model the planted
    samples stay above chance (their label still shows)."""
    return max(0.0, min(NEAR_OOD_DROP, 0.5 * (accuracy - 1.0 / num_classes)))


def near_ood_corrupt(rows: torch.Tensor, spread: torch.Tensor, severity: float, noise: torch.Tensor,
                     seed: int) -> torch.Tensor:
    """The near-ood corruption of clean ``rows`` at ``severity``: images blurred (sigma
    ``NEAR_OOD_BLUR`` x H / 28 pixels), plus ``severity`` x ``spread`` (the pool's per-channel
    std) x ``noise`` (standard normal, the shape of ``rows``), then value-matched to ``rows``
    (ties ordered by ``seed``). The same noise and seed at a larger severity give a stronger
    corruption of the same kind: the calibration compares severities on common random numbers."""
    out = rows.float()
    if out.ndim == 4:
        out = gaussian_blur(out, NEAR_OOD_BLUR * out.shape[-2] / 28)
    out = out + severity * spread * noise
    return restandardise(out, rows, torch.Generator().manual_seed(seed))


def calibrate_near_ood(x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: np.ndarray,
                       predict: Callable[[torch.Tensor, np.ndarray], np.ndarray],
                       rng: np.random.Generator) -> float:
    """The near-ood severity for this pool: bisection (``NEAR_OOD_STEPS`` steps over
    [0, ``NEAR_OOD_MAX_NOISE``]) for the severity at which the clean model ``predict``'s accuracy
    on the corrupted ``rows`` is its accuracy on the clean ``rows`` minus
    ``near_ood_target_drop``. Accuracy falls with severity (one noise draw for all steps), so
    bisection finds the crossing; a model that never falls that far gets the largest severity."""
    clean = x[torch.as_tensor(rows)]
    labels = y[torch.as_tensor(rows)].numpy()
    spread = _spread(x)
    noise = torch.randn(clean.shape, generator=_torch_generator(rng))
    seed = int(rng.integers(2 ** 62))

    def accuracy(severity: float | None) -> float:
        inputs = clean if severity is None else near_ood_corrupt(clean, spread, severity, noise, seed)
        return float((np.asarray(predict(inputs, rows)).argmax(1) == labels).mean())

    return _bisect_drop(accuracy, num_classes, NEAR_OOD_MAX_NOISE, NEAR_OOD_STEPS)


def _bisect_drop(accuracy: Callable[[float | None], float], num_classes: int, top: float, steps: int) -> float:
    """The severity in [0, ``top``] at which ``accuracy(severity)`` (``accuracy(None)``: on the
    clean inputs) is the clean accuracy minus ``near_ood_target_drop``: bisection in ``steps``
    steps, accuracy falling with severity; ``top`` where it never falls that far."""
    base = accuracy(None)
    target = base - near_ood_target_drop(base, num_classes)
    lo, hi = 0.0, top
    if accuracy(hi) > target:
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if accuracy(mid) > target else (lo, mid)
    return (lo + hi) / 2


def _calibration_rows(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``NEAR_OOD_CALIBRATION_ROWS`` unplanted rows (the planted ones if all are planted):
    the calibration is measured apart from the samples the check is then read on."""
    free = np.flatnonzero(~mask) if (~mask).any() else np.flatnonzero(mask)
    return np.sort(rng.choice(free, size=min(len(free), NEAR_OOD_CALIBRATION_ROWS), replace=False))


@planter("near-ood")
def near_ood(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``near_ood_corrupt`` at the severity ``calibrate_near_ood`` finds with
    ``sources.clean_predict``, or ``NEAR_OOD_NOISE`` without one; labels kept."""
    severity = NEAR_OOD_NOISE
    if sources is not None and sources.clean_predict is not None:
        severity = calibrate_near_ood(x, y, num_classes, _calibration_rows(mask, rng), sources.clean_predict, rng)
    idx = torch.as_tensor(np.flatnonzero(mask))
    noise = torch.randn(x[idx].shape, generator=_torch_generator(rng))
    rows = near_ood_corrupt(x[idx], _spread(x), severity, noise, int(rng.integers(2 ** 62)))
    return _replace_rows(x, idx, rows), y


@planter("far-ood")
def far_ood(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of another dataset (``sources.far_ood``), then value matching; labels kept."""
    if sources is None or sources.far_ood is None:
        raise MissingSource("far-ood needs samples of another dataset (PlantingSources.far_ood); "
                            "bench.inject.default_sources(dataset, data_root) builds them")
    idx = torch.as_tensor(np.flatnonzero(mask))
    rows = torch.as_tensor(sources.far_ood(len(idx), rng)).float()
    if tuple(rows.shape) != (len(idx), *x.shape[1:]):
        raise ValueError(f"far-ood source gave shape {tuple(rows.shape)}, expected {(len(idx), *x.shape[1:])}")
    return _replace_rows(x, idx, restandardise(rows, x[idx], _torch_generator(rng))), y


# ---- domain shift: a cartoon-like style ----------------------------------------------------
def _median_window(height: int) -> int:
    """The median window of ``cartoon``: ``DOMAIN_MEDIAN`` pixels per 28 of height, odd, at least 5."""
    return max(5, 2 * int(round((DOMAIN_MEDIAN * height / 28 - 1) / 2)) + 1)


def median_filter(rows: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` median (odd ``size``) of each channel of (N, C, H, W) images, mirror
    padding (the border pixel not repeated; replicate where the image is too small to mirror)."""
    n, channels, h, w = rows.shape
    pad = size // 2
    mode = "reflect" if pad < min(h, w) else "replicate"
    flat = rows.float().reshape(n * channels, 1, h, w)
    out = torch.empty_like(flat)
    for start in range(0, len(flat), 256):  # the unfolded windows of 256 images at a time
        chunk = F.pad(flat[start:start + 256], (pad, pad, pad, pad), mode=mode)
        out[start:start + 256] = F.unfold(chunk, size).median(dim=1).values.view(-1, 1, h, w)
    return out.view(n, channels, h, w)


def sobel_magnitude(rows: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) gradient magnitude of the channel mean of (N, C, H, W) images: the 3 x 3 Sobel
    kernels (divided by 8, so a unit step between columns reads 0.5 on both sides of the step),
    replicate padding."""
    grey = rows.float().mean(1, keepdim=True)
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    return torch.hypot(F.conv2d(padded, kernel.view(1, 1, 3, 3)), F.conv2d(padded, kernel.T.reshape(1, 1, 3, 3)))


def posterise(values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, levels: int) -> torch.Tensor:
    """``values`` rounded to ``levels`` evenly spaced levels from ``lo`` to ``hi`` (broadcast)."""
    steps = levels - 1
    return lo + torch.round((values - lo) / (hi - lo).clamp_min(1e-12) * steps) / steps * (hi - lo)


def cartoon(rows: torch.Tensor) -> torch.Tensor:
    """The cartoon style of (N, C, H, W) images: an edge-preserving smoothing (``median_filter``,
    window ``_median_window(H)``: 5 on 8 x 8, 13 on 28 x 28) with dark outlines (the channel's
    minimum wherever the smoothed image's ``sobel_magnitude`` is at least ``DOMAIN_EDGE`` of the
    image's largest); ties broken by ``DOMAIN_TIES`` x a wide Gaussian blur (sigma H / 14) of the
    smoothed image. The H-CAT benchmark's cartoon filter (OpenCV: median blur, adaptive threshold
    edges, bilateral filter) in torch. No posterised flat tones: a handful of values per image
    is a value artefact, and value matching would break their ties at random (speckle)."""
    smooth = median_filter(rows, _median_window(rows.shape[-2]))
    lo = smooth.amin((2, 3), keepdim=True)
    edge = sobel_magnitude(smooth)
    outline = (edge > 0) & (edge >= DOMAIN_EDGE * edge.amax((2, 3), keepdim=True))
    ink = torch.where(outline, lo, smooth)
    # ties (the outlines, a flat background) ordered by a wide blur of the smoothed image, not at random:
    # value matching then gives the values the style has no room for to the pixels nearest the shape
    return ink + DOMAIN_TIES * gaussian_blur(smooth, rows.shape[-2] / 14)


def domain_style(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """The domain-shift style of ``rows``: images ``cartoon``; vectors each feature posterised to
    ``DOMAIN_LEVELS`` levels over the ``pool``'s range of that feature (a coarser instrument)."""
    if rows.ndim == 4:
        return cartoon(rows)
    if rows.ndim != 2:
        raise ValueError(f"domain-shift supports (N, C, H, W) images and (N, D) vectors; got shape {tuple(rows.shape)}")
    return posterise(rows.float(), pool.float().amin(0), pool.float().amax(0), DOMAIN_LEVELS)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """The rank of each value within its image channel (images) or row (vectors), as a share
    in [0, 1]: tied values share their mean rank."""
    groups = x.shape[1] if x.ndim == 4 else 1
    flat = x.reshape(len(x), groups, -1).float().contiguous()
    ordered = flat.sort(dim=-1).values
    first = torch.searchsorted(ordered, flat, right=False)
    last = torch.searchsorted(ordered, flat, right=True) - 1
    return ((first + last).float() / 2 / max(1, flat.shape[-1] - 1)).reshape(x.shape)


def domain_corrupt(rows: torch.Tensor, styled: torch.Tensor, strength, seed: int) -> torch.Tensor:
    """The domain shift of clean ``rows`` at ``strength`` s in [0, 1] (one per row, or one for all),
    towards their ``styled`` version (``domain_style``), value-matched to ``rows`` (ties ordered by ``seed``). Images blend
    *ranks*, (1 - s) x rank(rows) + s x rank(styled) per channel: value matching keeps only the
    order of the pixels, so a blend of values would keep the original's order wherever the style
    is flat (its outlines, its background) until s = 1; ranks move continuously. Vectors blend
    values, (1 - s) x rows + s x styled."""
    s = torch.as_tensor(np.broadcast_to(np.asarray(strength, dtype=np.float32), (len(rows),)).copy())
    s = s.view(-1, *([1] * (rows.ndim - 1)))
    if rows.ndim == 4:
        blend = (1 - s) * _ranks(rows) + s * _ranks(styled)
    else:
        blend = (1 - s) * rows.float() + s * styled.float()
    return restandardise(blend, rows, torch.Generator().manual_seed(seed))


def calibrate_domain_shift(x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: np.ndarray,
                           predict: Callable[[torch.Tensor, np.ndarray], np.ndarray],
                           rng: np.random.Generator) -> np.ndarray:
    """(C,) the domain-shift strength of each class: bisection (``DOMAIN_STEPS`` steps over [0, 1],
    all classes at once) for the strength at which the clean model's accuracy on the shifted
    ``rows`` of the class is its accuracy on them clean minus ``near_ood_target_drop`` (near-ood's
    target, per class: one style reads differently by class, a 4 smoothed is still a 4, a 5 is
    not). 0 for a class already at or below its target, 1 (the full style) for one that never
    falls that far, ``DOMAIN_STRENGTH`` for one without rows."""
    clean = x[torch.as_tensor(rows)]
    labels = y[torch.as_tensor(rows)].numpy()
    styled = domain_style(clean, x)
    seed = int(rng.integers(2 ** 62))
    count = np.bincount(labels, minlength=num_classes)

    def accuracy(strength: np.ndarray) -> np.ndarray:
        inputs = domain_corrupt(clean, styled, strength[labels], seed) if strength.any() else clean
        hits = np.asarray(predict(inputs, rows)).argmax(1) == labels
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(labels, weights=hits.astype(float), minlength=num_classes) / count

    def target(base: np.ndarray) -> np.ndarray:
        return np.array([b - near_ood_target_drop(b, num_classes) if np.isfinite(b) else np.nan for b in base])

    strength = _bisect_per_class(accuracy, num_classes, target, DOMAIN_STEPS)
    return np.where(count > 0, strength, DOMAIN_STRENGTH)


@planter("domain-shift")
def domain_shift(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``domain_corrupt`` (the ``domain_style``: images a cartoon) at the strength
    ``calibrate_domain_shift`` finds for the sample's class with ``sources.clean_predict``, or
    ``DOMAIN_STRENGTH`` without one; labels kept."""
    strength = np.full(num_classes, DOMAIN_STRENGTH)
    if sources is not None and sources.clean_predict is not None:
        calibration = _atypical_calibration_rows(y.numpy(), mask, num_classes, rng)
        strength = calibrate_domain_shift(x, y, num_classes, calibration, sources.clean_predict, rng)
    idx = torch.as_tensor(np.flatnonzero(mask))
    rows = domain_corrupt(x[idx], domain_style(x[idx], x), strength[y[idx].numpy()], int(rng.integers(2 ** 62)))
    return _replace_rows(x, idx, rows), y


# ---- crop shift: a translation with padding ---------------------------------------------------
def translate(rows: torch.Tensor, shift) -> torch.Tensor:
    """Each (C, H, W) image moved by whole pixels, ``shift[i] = (dy, dx)`` (down, right): output
    pixel p shows input pixel p - shift; what comes from outside the frame takes the image's
    minimum (its background), what leaves it is cropped. No zoom, no interpolation."""
    n, channels, h, w = rows.shape
    shift = torch.as_tensor(np.asarray(shift), dtype=torch.int64).view(n, 2)
    source_row = torch.arange(h).view(1, h, 1) - shift[:, 0].view(n, 1, 1)
    source_col = torch.arange(w).view(1, 1, w) - shift[:, 1].view(n, 1, 1)
    inside = (source_row >= 0) & (source_row < h) & (source_col >= 0) & (source_col < w)
    index = (source_row.clamp(0, h - 1) * w + source_col.clamp(0, w - 1)).view(n, 1, h * w).expand(n, channels, -1)
    moved = rows.flatten(2).gather(2, index).view(n, channels, h, w)
    background = rows.flatten(1).amin(1).view(n, 1, 1, 1)
    return torch.where(inside.unsqueeze(1), moved, background)


def crop_shift_offsets(m: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(m, 2) whole-pixel shifts (dy, dx): a length of u x the image's size, u uniform in
    ``CROP_SHIFT``, in a uniformly random direction, each component rounded (never (0, 0):
    u x 8 >= 1.6 pixels, so the longer component rounds to at least 1)."""
    share = rng.uniform(*CROP_SHIFT, size=m)
    angle = rng.uniform(0.0, 2 * math.pi, size=m)
    return np.rint(np.column_stack([share * height * np.sin(angle), share * width * np.cos(angle)])).astype(np.int64)


@planter("crop-shift")
def crop_shift(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images: ``translate`` by ``crop_shift_offsets`` (20-35% of the image in a random direction,
    padded with the image's minimum), then value-matched. Vectors: the point moved by u x the
    pool's range of each feature along a uniformly random unit direction (u uniform in
    ``CROP_SHIFT``), then ``restandardise``. Labels kept."""
    idx = torch.as_tensor(np.flatnonzero(mask))
    m = len(idx)
    if x.ndim == 4:
        moved = translate(x[idx], crop_shift_offsets(m, x.shape[-2], x.shape[-1], rng))
    elif x.ndim == 2:
        share = torch.as_tensor(rng.uniform(*CROP_SHIFT, size=(m, 1)), dtype=torch.float32)
        direction = torch.as_tensor(rng.normal(size=(m, x.shape[1])), dtype=torch.float32)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        span = (x.float().amax(0) - x.float().amin(0)).unsqueeze(0)
        moved = x[idx].float() + share * span * direction
    else:
        raise ValueError(f"crop-shift supports (N, C, H, W) images and (N, D) vectors; got shape {tuple(x.shape)}")
    return _replace_rows(x, idx, restandardise(moved, x[idx], _torch_generator(rng))), y


def affine_warp(rows: torch.Tensor, zoom, angle, shear, shift) -> torch.Tensor:
    """Each (C, H, W) image warped about its centre: in pixel offsets d = (x, y) from the centre,
    output pixel d shows the input at M^-1 (d - shift), M = zoom[i] x R(angle[i] degrees) x
    [[1, shear[i]], [0, 1]], ``shift[i] = (dy, dx)`` pixels (fractional allowed), bilinear
    (``F.grid_sample``); y points down, so a positive angle turns the image clockwise as shown
    (90 degrees: ``torch.rot90(rows, -1, (2, 3))``). Pixels that come from outside the frame take
    the image's minimum (its background)."""
    n, channels, h, w = rows.shape
    as_vector = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64)).view(-1).expand(n)  # noqa: E731
    radians = as_vector(angle) * math.pi / 180
    cos, sin = radians.cos(), radians.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shearing = torch.eye(2, dtype=torch.float64).repeat(n, 1, 1)
    shearing[:, 0, 1] = as_vector(shear)
    inverse = torch.linalg.inv(as_vector(zoom).view(-1, 1, 1) * rotation @ shearing)
    # normalised coordinates (F.affine_grid): a pixel offset d is d / (W / 2, H / 2)
    scale = torch.tensor([w / 2, h / 2], dtype=torch.float64)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, :, :2] = inverse * scale.view(1, 1, 2) / scale.view(1, 2, 1)
    moved = torch.as_tensor(np.asarray(shift, dtype=np.float64)).view(n, 2)[:, [1, 0]]  # (dy, dx) -> (x, y)
    theta[:, :, 2] = -(inverse @ moved.unsqueeze(-1)).squeeze(-1) / scale
    grid = F.affine_grid(theta.float(), (n, channels, h, w), align_corners=False)
    background = rows.float().flatten(1).min(1).values.view(-1, 1, 1, 1)
    out = F.grid_sample(rows.float() - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + background


def zoom_shift(rows: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Each (C, H, W) image magnified ``zoom[i]`` times about its centre, then moved by
    ``shift[i] = (dy, dx)`` pixels: ``affine_warp`` without rotation or shear (output pixel p
    shows the input at centre + (p - shift - centre) / zoom). The H-CAT benchmark's ``zoom_in``
    is a centre crop of H / zoom pixels resized to H, the same map up to its integer crop."""
    return affine_warp(rows, zoom, 0.0, 0.0, shift)


def atypical_draws(m: int, rng: np.random.Generator) -> np.ndarray:
    """(m, 5) per-sample draws of the atypical warp at unit strength: zoom, angle and shear
    magnitudes as shares in ``ATYPICAL_DRAW`` (angle and shear with a random sign), and the
    shift (dy, dx) as shares in [-1, 1]."""
    share = rng.uniform(*ATYPICAL_DRAW, size=(m, 3))
    sign = rng.choice([-1.0, 1.0], size=(m, 2))
    return np.column_stack([share[:, 0], share[:, 1:] * sign, rng.uniform(-1, 1, size=(m, 2))])


def atypical_corrupt(rows: torch.Tensor, draws: np.ndarray, strength, seed: int) -> torch.Tensor:
    """The atypical warp of clean image ``rows`` at ``strength`` (one per row, or one for all):
    ``affine_warp`` with zoom 1 + s ``ATYPICAL_ZOOM`` u, angle s ``ATYPICAL_ANGLE`` u, shear
    s ``ATYPICAL_SHEAR`` u and shift s ``ATYPICAL_SHIFT`` H u (the ``atypical_draws`` u), then
    value-matched to ``rows`` (ties ordered by ``seed``). The same draws at a larger strength
    give a stronger warp of the same kind: the calibration compares strengths on common random numbers."""
    s = np.broadcast_to(np.asarray(strength, dtype=np.float64), (len(rows),))
    reach = s * ATYPICAL_SHIFT * rows.shape[-2]
    warped = affine_warp(rows, 1 + s * ATYPICAL_ZOOM * draws[:, 0], s * ATYPICAL_ANGLE * draws[:, 1],
                         s * ATYPICAL_SHEAR * draws[:, 2], reach[:, None] * draws[:, 3:5])
    return restandardise(warped, rows, torch.Generator().manual_seed(seed))


def _atypical_calibration_rows(y: np.ndarray, mask: np.ndarray, num_classes: int,
                               rng: np.random.Generator) -> np.ndarray:
    """Per class up to ``ATYPICAL_CALIBRATION_ROWS`` unplanted rows of that class (its planted
    ones if all are planted), sorted: calibrated apart from the samples the check reads."""
    picked = []
    for c in range(num_classes):
        free = np.flatnonzero((y == c) & ~mask)
        free = free if len(free) else np.flatnonzero((y == c) & mask)
        picked.append(rng.permutation(free)[:ATYPICAL_CALIBRATION_ROWS])
    return np.sort(np.concatenate(picked))


def calibrate_atypical(x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: np.ndarray,
                       predict: Callable[[torch.Tensor, np.ndarray], np.ndarray],
                       rng: np.random.Generator) -> np.ndarray:
    """(C,) the atypical strength of each class: bisection (``ATYPICAL_STEPS`` steps over [0, 1],
    all classes at once, one draw for all steps) for the strength at which the clean model
    ``predict``'s mean probability of the label on the warped ``rows`` of the class is
    ``ATYPICAL_TARGET``. 0 for a class whose clean rows are already at or below the target,
    1 for one that never falls that far, ``ATYPICAL_STRENGTH`` for one without rows."""
    clean = x[torch.as_tensor(rows)]
    labels = y[torch.as_tensor(rows)].numpy()
    draws = atypical_draws(len(rows), rng)
    seed = int(rng.integers(2 ** 62))
    count = np.bincount(labels, minlength=num_classes)
    index = np.arange(len(rows))

    def mean_py(strength: np.ndarray) -> np.ndarray:
        inputs = atypical_corrupt(clean, draws, strength[labels], seed) if strength.any() else clean
        p_y = np.asarray(predict(inputs, rows))[index, labels]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(labels, weights=p_y, minlength=num_classes) / count

    strength = _bisect_per_class(mean_py, num_classes, lambda base: np.full(num_classes, ATYPICAL_TARGET),
                                 ATYPICAL_STEPS)
    return np.where(count > 0, strength, ATYPICAL_STRENGTH)


def _bisect_per_class(measure: Callable[[np.ndarray], np.ndarray], num_classes: int,
                      target: Callable[[np.ndarray], np.ndarray], steps: int) -> np.ndarray:
    """(C,) per class the strength in [0, 1] at which ``measure(strengths)`` ((C,) strengths in,
    (C,) values out, falling with the strength) reaches ``target(measure(0))``: bisection in
    ``steps`` steps, all classes at once, the upper end of the last bracket. 0 for a class
    already at or below its target, 1 for one that never falls that far."""
    lo, hi = np.zeros(num_classes), np.ones(num_classes)
    base, strongest = measure(lo), measure(hi)
    goal = target(base)
    for _ in range(steps):
        mid = (lo + hi) / 2
        enough = measure(mid) <= goal
        lo, hi = np.where(enough, lo, mid), np.where(enough, mid, hi)
    strength = np.where(strongest <= goal, hi, 1.0)
    return np.where(base <= goal, 0.0, strength)


@planter("atypical")
def atypical(x, y, num_classes, mask, rng, sources=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A rare but valid member of the sample's own class (see the module docstring): images
    ``atypical_corrupt`` at the strength ``calibrate_atypical`` finds for the sample's class with
    ``sources.clean_predict``, or ``ATYPICAL_STRENGTH`` without one; labels kept (correct)."""
    idx = torch.as_tensor(np.flatnonzero(mask))
    m = len(idx)
    if x.ndim == 4:
        strength = np.full(num_classes, ATYPICAL_STRENGTH)
        if sources is not None and sources.clean_predict is not None:
            calibration = _atypical_calibration_rows(y.numpy(), mask, num_classes, rng)
            strength = calibrate_atypical(x, y, num_classes, calibration, sources.clean_predict, rng)
        draws = atypical_draws(m, rng)
        rows = atypical_corrupt(x[idx], draws, strength[y[idx].numpy()], int(rng.integers(2 ** 62)))
        return _replace_rows(x, idx, rows), y
    if x.ndim != 2:
        raise ValueError(f"atypical supports (N, C, H, W) images and (N, D) vectors; got shape {tuple(x.shape)}")
    low, high = marginal_tails(x)
    side = rare_tail(x, y, num_classes, low, high)
    count = np.full(num_classes, min(ATYPICAL_FEATURES, x.shape[1]))
    if sources is not None and sources.clean_predict is not None:
        calibration = _atypical_calibration_rows(y.numpy(), mask, num_classes, rng)
        count = calibrate_tail_features(x, y, num_classes, calibration, sources.clean_predict, rng, low, high, side)
    order, picks = tail_draws(m, x.shape[1], len(low), rng)
    rows = tail_corrupt(x[idx], y[idx], count[y[idx].numpy()], order, picks, low, high, side)
    return _replace_rows(x, idx, rows), y


def marginal_tails(x: torch.Tensor, share: float = ATYPICAL_TAIL_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high), each (t, D): per feature of the pool ``x`` (N, D) its t = max(1, int(share x N))
    lowest and highest values, ascending (the H-CAT benchmark: ``ns = int(0.01 * len(marginal))``)."""
    t = max(1, int(share * len(x)))
    ordered = x.float().sort(dim=0).values
    return ordered[:t], ordered[-t:]


def rare_tail(x: torch.Tensor, y: torch.Tensor, num_classes: int, low: torch.Tensor,
              high: torch.Tensor) -> torch.Tensor:
    """(C, D) bool: True where class c's atypical side of feature j is the high tail. The tail the
    class's own pool values reach least (the share of its values at or beyond the tail's inner
    end); where both shares are equal (e.g. both 0), the tail farther from the class mean in units
    of the class's std. A value rare *for the class*, not only for the data set."""
    xf = x.float()
    onehot = F.one_hot(y, num_classes).float()
    counts = onehot.sum(0).clamp_min(1).unsqueeze(1)
    low_share = onehot.T @ (xf <= low[-1]).float() / counts
    high_share = onehot.T @ (xf >= high[0]).float() / counts
    means = onehot.T @ xf / counts
    stds = (onehot.T @ xf ** 2 / counts - means ** 2).clamp_min(1e-12).sqrt()
    farther_high = (high.mean(0) - means).abs() / stds >= (low.mean(0) - means).abs() / stds
    return torch.where(high_share == low_share, farther_high, high_share < low_share)


def tail_draws(m: int, dim: int, tail: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, (m, D) the rank of each feature in a uniformly random order (the first k ranks
    are the features set) and (m, D) which of the ``tail`` tail values each feature would take."""
    return np.argsort(rng.random((m, dim)), axis=1), rng.integers(0, tail, size=(m, dim))


def tail_corrupt(rows: torch.Tensor, labels: torch.Tensor, count, order: np.ndarray, picks: np.ndarray,
                 low: torch.Tensor, high: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """Vector ``rows`` with, in row i, the ``count[i]`` features of lowest ``order`` set to a tail
    value: feature j takes ``high[picks[i, j], j]`` where ``side[labels[i], j]``, else
    ``low[picks[i, j], j]``. The same draws with a larger count set a superset of features."""
    columns = torch.arange(rows.shape[1])
    picks = torch.as_tensor(picks)
    values = torch.where(side[torch.as_tensor(labels)], high[picks, columns], low[picks, columns])
    chosen = torch.as_tensor(order) < torch.as_tensor(np.asarray(count)).view(-1, 1)
    return torch.where(chosen, values.to(rows.dtype), rows)


def calibrate_tail_features(x: torch.Tensor, y: torch.Tensor, num_classes: int, rows: np.ndarray,
                            predict: Callable[[torch.Tensor, np.ndarray], np.ndarray], rng: np.random.Generator,
                            low: torch.Tensor, high: torch.Tensor, side: torch.Tensor) -> np.ndarray:
    """(C,) how many features of each class's atypical vectors take a tail value: by bisection over
    the integers 0..D (all classes at once, one draw for all steps), the count whose clean mean
    probability of the label on the class's ``rows`` is nearest ``ATYPICAL_TARGET`` among the two
    that bracket it (at least 1). 0 for a class already at or below the target, D for one that
    never gets there, ``ATYPICAL_FEATURES`` for one without rows."""
    dim = x.shape[1]
    clean = x[torch.as_tensor(rows)]
    labels = y[torch.as_tensor(rows)].numpy()
    order, picks = tail_draws(len(rows), dim, len(low), rng)
    count = np.bincount(labels, minlength=num_classes)
    index = np.arange(len(rows))

    def mean_py(features: np.ndarray) -> np.ndarray:
        inputs = tail_corrupt(clean, labels, features[labels], order, picks, low, high, side)
        p_y = np.asarray(predict(inputs, rows))[index, labels]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(labels, weights=p_y, minlength=num_classes) / count

    lo, hi = np.zeros(num_classes, dtype=np.int64), np.full(num_classes, dim, dtype=np.int64)
    base, strongest = mean_py(lo), mean_py(hi)
    while (active := hi - lo > 1).any():
        mid = np.where(active, (lo + hi) // 2, hi)
        enough = mean_py(mid) <= ATYPICAL_TARGET
        lo, hi = np.where(active & ~enough, mid, lo), np.where(active & enough, mid, hi)
    below, above = mean_py(lo), mean_py(hi)
    nearer_lo = (lo >= 1) & (np.abs(below - ATYPICAL_TARGET) < np.abs(above - ATYPICAL_TARGET))
    features = np.where(nearer_lo, lo, hi)
    features = np.where(strongest > ATYPICAL_TARGET, dim, features)
    features = np.where(base <= ATYPICAL_TARGET, 0, features)
    return np.where(count > 0, features, min(ATYPICAL_FEATURES, dim))


# ---- far-ood sources --------------------------------------------------------------------
def _standardise_like(rows: torch.Tensor, reference: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """rows mapped so that ``reference`` (the source set they come from) would have the
    per-channel mean and std of ``target`` (the pool)."""
    dims = (0, 2, 3) if rows.ndim == 4 else (0,)
    s_std, s_mean = torch.std_mean(reference.float(), dim=dims, keepdim=True, unbiased=False)
    t_std, t_mean = torch.std_mean(target.float(), dim=dims, keepdim=True, unbiased=False)
    return (rows - s_mean) / s_std.clamp_min(1e-12) * t_std + t_mean


@functools.lru_cache(maxsize=2)
def _photos(pool_factor: int) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled photos (china.jpg, flower.jpg; the files of
    ``sklearn.datasets.load_sample_images``) as (3, H, W) floats in [0, 1], average-pooled."""
    try:
        from sklearn.datasets import load_sample_images

        images = [torch.as_tensor(np.array(image)).permute(2, 0, 1) for image in load_sample_images().images]
    except ImportError:  # scikit-learn reads them with Pillow; torchvision can decode the same files
        import warnings

        import sklearn.datasets
        from torchvision.io import decode_image, read_file

        folder = Path(sklearn.datasets.__file__).parent / "images"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            images = [decode_image(read_file(str(folder / name))) for name in ("china.jpg", "flower.jpg")]
    return tuple(F.avg_pool2d(image.float().unsqueeze(0) / 255.0, pool_factor).squeeze(0) for image in images)


def photo_patches(n: int, shape: tuple[int, int, int], rng: np.random.Generator, pool_factor: int = 4) -> torch.Tensor:
    """n random (C, H, W) patches of scikit-learn's sample photos, downsampled by ``pool_factor``;
    grey (the channel mean) replicated to C channels unless C == 3. Values in [0, 1]."""
    channels, h, w = shape
    photos = _photos(pool_factor)
    which = rng.integers(0, len(photos), size=n)
    out = torch.empty(n, channels, h, w)
    for k, photo in enumerate(photos):  # two photos
        picked = np.flatnonzero(which == k)
        if len(picked) == 0:
            continue
        image = photo if channels == 3 else photo.mean(0, keepdim=True).expand(channels, -1, -1)
        if image.shape[1] < h or image.shape[2] < w:
            image = F.interpolate(image.unsqueeze(0), size=(max(h, image.shape[1]), max(w, image.shape[2])),
                                  mode="bilinear", align_corners=False).squeeze(0)
        r = torch.as_tensor(rng.integers(0, image.shape[1] - h + 1, size=len(picked)))
        c = torch.as_tensor(rng.integers(0, image.shape[2] - w + 1, size=len(picked)))
        rows = (r.view(-1, 1, 1, 1) + torch.arange(h).view(1, 1, -1, 1))
        cols = (c.view(-1, 1, 1, 1) + torch.arange(w).view(1, 1, 1, -1))
        out[torch.as_tensor(picked)] = image[torch.arange(channels).view(1, -1, 1, 1), rows, cols]
    return out


@functools.lru_cache(maxsize=2)
def _train_images(name: str, data_root: str) -> torch.Tensor:
    from .data import load_dataset

    return load_dataset(name, data_root).x_train


def far_ood_source(dataset, data_root: str | Path = "data") -> Callable[[int, np.random.Generator], torch.Tensor]:
    """The far-ood source of a dataset, by input shape (and name):

    - (1, 28, 28): Fashion-MNIST's train images from ``data_root`` (MNIST's for
      ``fashion-mnist``), loaded with ``bench.data.load_dataset``;
    - (3, 32, 32): MNIST's train images (Fashion-MNIST's if MNIST is absent) upsampled
      bilinearly to 32 x 32 and repeated to 3 channels;
    - other images (the 8 x 8 digits among them): patches of scikit-learn's bundled photos,
      grey-scaled (RGB for 3 channels) and downsampled 4x, cut at the pool's size;
    - vectors (N, D): uniform draws over the bounding box of the dataset's train split.

    Source values are mapped per channel from the source set's mean and std to the
    pool's (the train split's), so they are standardised like the pool."""
    shape = tuple(dataset.x_train.shape[1:])
    pool = dataset.x_train
    base = dataset.name.split("[")[0]
    root = str(data_root)
    if len(shape) == 1:
        lo, hi = pool.min(0).values, pool.max(0).values

        def uniform(n, rng):
            return lo + (hi - lo) * torch.as_tensor(rng.uniform(size=(n, shape[0])), dtype=torch.float32)
        return uniform
    if len(shape) != 3:
        raise ValueError(f"no far-ood source for inputs of shape {shape}")
    if shape in {(1, 28, 28), (3, 32, 32)}:
        if shape == (1, 28, 28):
            names = ["mnist"] if base == "fashion-mnist" else ["fashion-mnist"]
        else:
            names = ["mnist", "fashion-mnist"]

        def source_images():
            from .data import DatasetNotFound

            errors = []
            for name in names:
                try:
                    return _train_images(name, root)
                except DatasetNotFound as error:
                    errors.append(str(error))
            raise DatasetNotFound(f"far-ood for {dataset.name!r} replaces samples by {' or '.join(names)} "
                                  f"images from --data-root {root}: " + " | ".join(errors))

        def other_dataset(n, rng):
            images = source_images()
            rows = images[torch.as_tensor(rng.choice(len(images), size=n, replace=n > len(images)))]
            if shape == (3, 32, 32):
                rows = F.interpolate(rows, size=(32, 32), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
            return _standardise_like(rows, images, pool)
        return other_dataset

    def photos(n, rng):
        rows = photo_patches(n, shape, rng)
        reference = photo_patches(2048, shape, np.random.default_rng(0))
        return _standardise_like(rows, reference, pool)
    return photos


def default_sources(dataset, data_root: str | Path = "data",
                    confusion_fn: Callable[[], np.ndarray] | None = None,
                    clean_predict: Callable[[torch.Tensor, np.ndarray], np.ndarray] | None = None) -> PlantingSources:
    """The planting sources of a dataset: ``far_ood_source``, and the given confusion function
    and clean out-of-sample predictor."""
    return PlantingSources(confusion=confusion_fn, far_ood=far_ood_source(dataset, data_root),
                           clean_predict=clean_predict, dataset_name=dataset.name, data_root=data_root)
