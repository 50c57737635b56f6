"""Does a planted kind plant what it says? A clean model's reading of the planted samples.

The detection track's ground truth is only as good as its planting. ``check_planting`` asks
a clean model that never trained on the samples (``predict(x, rows) -> (n, C)``
probabilities for the inputs ``x`` of the pool's rows ``rows``: the same out-of-sample
predictor as ``bench.inject.PlantingSources.clean_predict``) how it reads the planted samples
and their clean originals, and whether the kind's criterion (docs/protocol.md, "Track D") holds.

Measures, as fractions of the planted samples (per class: of those whose original label is
that class):

- input kinds (``near-ood``, ``far-ood``, ``domain-shift``, ``crop-shift``, ``atypical``; labels
  kept): ``planted`` is the clean model's accuracy on the planted inputs against the original
  labels, ``original`` its accuracy on their clean originals;
- label kinds (``label-uniform``, ``label-pair``, ``label-instance``, ``label-adjacent``; inputs kept):
  ``planted`` is the share the clean model predicts as the new (given) label, ``original``
  the share it predicts as the original label (its accuracy on them).

Criteria:

- label kinds: every new label differs from the original, and ``planted < original``: the
  clean model reads the original label more often than the planted one.
- ``near-ood``: the drop ``original - planted`` lies within ``NEAR_OOD_TOLERANCE`` (0.5 to
  1.5) times its target ``bench.inject.near_ood_target_drop(original, C)`` (0.40, so 0.20 to
  0.60, unless the clean model is weak), and the target is positive.
- ``domain-shift``: as ``near-ood`` (its strength is calibrated to the same target drop, per class).
- ``crop-shift``: the drop ``original - planted`` is at least ``NEAR_OOD_TOLERANCE[0]`` (0.5) times
  near-ood's target, with no upper bound: moved at least as far out of what the clean model
  learned as the mildest valid near-ood; a clean model without translation augmentation reads
  a 20-35% shift at about chance, as far out as far-ood.
- ``far-ood``: ``planted <= chance + FAR_OOD_MARGIN``, where chance = sum over classes of
  (share of the planted labels that are c) x (share of the predictions that are c): the
  agreement of a prediction that ignores the label. The label says nothing about the input.
- ``atypical``: no class's accuracy on its planted samples is below ``ATYPICAL_FLOOR`` (0.5)
  by a one-sided exact binomial test at level ``ATYPICAL_LEVEL`` (the clean model still
  reads the label of every class: valid members; a test, not the point estimate, because a
  class has few planted samples on small pools, 7 on half of digits at rate 0.1), and
  ``planted < original`` (rarer than the originals).

Beside validity (``holds``: the kind plants what it says) every kind is checked for
*hardness* (``hard``: what it plants is harder than the originals, so there is something to
detect). The measure is the clean model's mean probability of the sample's label, p_y:
``hardness_planted`` on the planted samples (the planted input with the label it is given:
the new label for label kinds, the original label for input kinds), ``hardness_original`` on
their clean originals (original input, original label); both overall and per original class.
The criterion: the drop ``hardness_original - hardness_planted`` is at least ``HARDNESS_DROP``
(0.15) overall *and* in every class that has planted samples. Point estimates, no test: a
class with a handful of planted samples (7 on half of digits at rate 0.1) decides on its
mean alone, so a class near the threshold may pass or fail with the seed. Why 0.15: about
twice the drop of the former ``atypical`` (zoom 1.1-1.25: 0.06-0.09 overall, none in some
class), whose detection tables ranked noise, and well under what the other kinds give
(``near-ood`` 0.3-0.5, label kinds and ``far-ood`` 0.56-0.94), while leaving a valid sample
room: from originals at p_y 0.9-0.95 it asks for 0.75-0.8 (docs/protocol.md, "Track D").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import UnknownName
from .inject import Planted, near_ood_target_drop

LABEL_KINDS = ("label-uniform", "label-pair", "label-instance", "label-adjacent")
INPUT_KINDS = ("near-ood", "far-ood", "domain-shift", "crop-shift", "atypical")
SHIFT_KINDS = ("near-ood", "domain-shift")  # calibrated to the target drop of the clean accuracy
NEAR_OOD_TOLERANCE = (0.5, 1.5)  # the drop must lie within these multiples of its target
FAR_OOD_MARGIN = 0.10  # far-ood accuracy may exceed chance agreement by at most this much
ATYPICAL_FLOOR = 0.5  # no class's atypical samples may have a clean accuracy significantly below this
ATYPICAL_LEVEL = 0.05  # ... by a one-sided exact binomial test at this level
HARDNESS_DROP = 0.15  # hard: the clean model's mean p_y drops by at least this much, overall and in every class
HARDNESS_CRITERION = f"needs >= {HARDNESS_DROP:g} overall and per class"

CRITERIA = {
    "label-uniform": "every label changed and the clean model predicts the new label less often than the original",
    "label-pair": "every label changed and the clean model predicts the new label less often than the original",
    "label-instance": "every label changed and the clean model predicts the new label less often than the original",
    "label-adjacent": "every label changed and the clean model predicts the new label less often than the original",
    "near-ood": (f"accuracy drop within {NEAR_OOD_TOLERANCE[0]:g}-{NEAR_OOD_TOLERANCE[1]:g} x its target "
                 "(0.40, at most half the originals' accuracy above chance)"),
    "far-ood": f"accuracy at most chance agreement + {FAR_OOD_MARGIN:g}",
    "domain-shift": (f"accuracy drop within {NEAR_OOD_TOLERANCE[0]:g}-{NEAR_OOD_TOLERANCE[1]:g} x its target "
                     "(0.40, at most half the originals' accuracy above chance)"),
    "crop-shift": (f"accuracy drop at least {NEAR_OOD_TOLERANCE[0]:g} x the near-ood target "
                   "(0.40, at most half the originals' accuracy above chance)"),
    "atypical": (f"no class's accuracy significantly below {ATYPICAL_FLOOR:g} (binomial, one-sided, "
                 f"{ATYPICAL_LEVEL:g}) and overall below the originals'"),
}


@dataclass(frozen=True)
class PlantingCheck:
    kind: str
    measure: str  # what ``planted`` and ``original`` are
    planted: float
    original: float
    per_class_planted: np.ndarray  # (C,), NaN for a class without planted samples
    per_class_original: np.ndarray
    per_class_count: np.ndarray  # planted samples per original class
    reference: float  # near-ood, domain-shift, crop-shift: the target drop; far-ood: chance agreement; otherwise NaN
    criterion: str
    holds: bool  # validity: the kind's criterion
    # hardness: the clean model's mean probability of the sample's label (p_y), see the module docstring
    hardness_planted: float = float("nan")  # mean p_y of the planted samples (planted input, given label)
    hardness_original: float = float("nan")  # mean p_y of their originals (original input, original label)
    per_class_hardness_planted: np.ndarray | None = None  # (C,) per original class, NaN without planted samples
    per_class_hardness_original: np.ndarray | None = None
    hard: bool = False  # the drop is at least HARDNESS_DROP overall and in every class with planted samples

    @property
    def hardness_drop(self) -> float:
        """Overall drop of the mean p_y, original - planted."""
        return self.hardness_original - self.hardness_planted

    @property
    def per_class_hardness_drop(self) -> np.ndarray:
        """(C,) drop of the mean p_y per original class, NaN for a class without planted samples."""
        if self.per_class_hardness_planted is None or self.per_class_hardness_original is None:
            return np.full(len(self.per_class_count), np.nan)
        return self.per_class_hardness_original - self.per_class_hardness_planted

    def hardness_summary(self) -> str:
        """The hardness part of ``summary``, e.g. ``hard: mean p_y 0.41 planted vs 0.93
        original (drop 0.52, per class 0.31-0.70; needs >= 0.15 overall and per class)``."""
        drops = self.per_class_hardness_drop[self.per_class_count > 0]
        span = (f"{np.nanmin(drops):.2f}-{np.nanmax(drops):.2f}" if np.isfinite(drops).any() else "n/a")
        return (f"{'hard' if self.hard else 'NOT HARD'}: mean p_y {self.hardness_planted:.2f} planted vs "
                f"{self.hardness_original:.2f} original (drop {self.hardness_drop:.2f}, per class {span}; "
                f"{HARDNESS_CRITERION})")

    def summary(self) -> str:
        """One line for a board: validity, then hardness, e.g. ``near-ood: clean accuracy 55.0%
        planted vs 95.0% original (drop 40.0 points, target 40.0); per class 31-78%; holds
        (criterion); hard: mean p_y 0.41 planted vs 0.93 original (drop 0.52, per class
        0.31-0.70; needs >= 0.15 overall and per class)``."""
        seen = self.per_class_count > 0
        low, high = np.nanmin(self.per_class_planted[seen]), np.nanmax(self.per_class_planted[seen])
        extra = ""
        if self.kind in SHIFT_KINDS:
            extra = f" (drop {100 * (self.original - self.planted):.1f} points, target {100 * self.reference:.1f})"
        elif self.kind == "crop-shift":
            extra = (f" (drop {100 * (self.original - self.planted):.1f} points, at least "
                     f"{100 * NEAR_OOD_TOLERANCE[0] * self.reference:.1f})")
        elif self.kind == "far-ood":
            extra = f" (chance agreement {100 * self.reference:.1f}%)"
        return (f"{self.kind}: {self.measure} {100 * self.planted:.1f}% planted vs {100 * self.original:.1f}% "
                f"original{extra}; per class {100 * low:.0f}-{100 * high:.0f}%; "
                f"{'holds' if self.holds else 'FAILS'} ({self.criterion}); {self.hardness_summary()}")

    def as_dict(self) -> dict:
        """JSON-safe: arrays as lists (NaN kept as float NaN, as json writes it), numbers as floats,
        plus ``hardness_drop`` and ``per_class_hardness_drop``."""
        out = asdict(self)
        for key in ("per_class_planted", "per_class_original", "per_class_count", "per_class_hardness_planted",
                    "per_class_hardness_original"):
            out[key] = None if out[key] is None else np.asarray(out[key]).tolist()
        for key in ("planted", "original", "reference", "hardness_planted", "hardness_original"):
            out[key] = float(out[key])
        out["hardness_drop"] = float(self.hardness_drop)
        out["per_class_hardness_drop"] = self.per_class_hardness_drop.tolist()
        return out


def _per_class(hits: np.ndarray, classes: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the mean of ``hits`` (0/1 or any value, e.g. p_y) over the rows of that class, and the count."""
    count = np.bincount(classes, minlength=num_classes)
    total = np.bincount(classes, weights=hits.astype(float), minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan), count


def below_floor(accuracy: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per class, whether its accuracy over ``count`` samples is significantly below
    ``ATYPICAL_FLOOR``: the exact one-sided binomial p-value (scipy.stats.binom) of at most
    that many hits under a hit rate of ``ATYPICAL_FLOOR`` is below ``ATYPICAL_LEVEL``."""
    from scipy.stats import binom

    hits = np.rint(np.nan_to_num(accuracy) * count)
    return (count > 0) & (binom.cdf(hits, count, ATYPICAL_FLOOR) < ATYPICAL_LEVEL)


def check_planting(predict: Callable[[torch.Tensor, np.ndarray], np.ndarray], kind: str,
                   x_planted: torch.Tensor, x_original: torch.Tensor, y_label, y_original,
                   rows: np.ndarray, num_classes: int) -> PlantingCheck:
    """The check of ``kind`` on planted samples (see the module docstring): ``x_planted``,
    ``y_label`` are the planted inputs and labels, ``x_original``, ``y_original`` their clean
    originals, ``rows`` their rows of the pool (what ``predict`` is told)."""
    if kind not in CRITERIA:
        raise UnknownName("hardness type", kind, CRITERIA)
    y_label, y_original = (np.asarray(torch.as_tensor(v).cpu(), dtype=np.int64) for v in (y_label, y_original))
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError(f"{kind}: no planted samples to check")
    probs_original = np.asarray(predict(x_original, rows))
    pred_original = probs_original.argmax(1)
    original_hits = pred_original == y_original
    if kind in LABEL_KINDS:  # inputs kept: the planted input is the original
        measure = "clean model predicts the given label"
        probs_planted = probs_original
        planted_hits = pred_original == y_label
    else:
        measure = "clean accuracy"
        probs_planted = np.asarray(predict(x_planted, rows))
        pred_planted = probs_planted.argmax(1)
        planted_hits = pred_planted == y_original
    index = np.arange(len(rows))
    p_planted, p_original = probs_planted[index, y_label], probs_original[index, y_original]
    planted, original = float(planted_hits.mean()), float(original_hits.mean())
    per_planted, count = _per_class(planted_hits, y_original, num_classes)
    per_original, _ = _per_class(original_hits, y_original, num_classes)
    reference = float("nan")
    if kind in LABEL_KINDS:
        holds = bool((y_label != y_original).all()) and planted < original
    elif kind in SHIFT_KINDS:
        reference = near_ood_target_drop(original, num_classes)
        drop = original - planted
        holds = reference > 0 and NEAR_OOD_TOLERANCE[0] * reference <= drop <= NEAR_OOD_TOLERANCE[1] * reference
    elif kind == "crop-shift":
        reference = near_ood_target_drop(original, num_classes)
        holds = reference > 0 and original - planted >= NEAR_OOD_TOLERANCE[0] * reference
    elif kind == "far-ood":
        share_label = np.bincount(y_original, minlength=num_classes) / len(rows)
        share_pred = np.bincount(pred_planted, minlength=num_classes) / len(rows)
        reference = float(share_label @ share_pred)
        holds = planted <= reference + FAR_OOD_MARGIN
    else:  # atypical
        holds = not below_floor(per_planted, count).any() and planted < original
    hard_planted, _ = _per_class(p_planted, y_original, num_classes)
    hard_original, _ = _per_class(p_original, y_original, num_classes)
    p_drop = float(p_original.mean() - p_planted.mean())
    seen = count > 0
    hard = p_drop >= HARDNESS_DROP and bool(((hard_original - hard_planted)[seen] >= HARDNESS_DROP).all())
    return PlantingCheck(kind, measure, planted, original, per_planted, per_original, count, reference,
                         CRITERIA[kind], bool(holds), float(p_planted.mean()), float(p_original.mean()),
                         hard_planted, hard_original, bool(hard))


def check_planted(predict: Callable[[torch.Tensor, np.ndarray], np.ndarray], kind: str, planted: Planted,
                  x_clean: torch.Tensor, num_classes: int) -> PlantingCheck:
    """``check_planting`` of the samples a ``bench.inject.plant`` call planted in the pool whose
    clean inputs are ``x_clean`` (rows of the pool = rows given to ``predict``)."""
    rows = np.flatnonzero(planted.mask)
    index = torch.as_tensor(rows)
    y_clean = planted.y_clean if planted.y_clean is not None else planted.y
    return check_planting(predict, kind, planted.x[index], x_clean[index], planted.y[index], y_clean[index],
                          rows, num_classes)


def fold_predictor(fold_probabilities: Sequence[Callable[[torch.Tensor], np.ndarray]],
                   fold: np.ndarray) -> Callable[[torch.Tensor, np.ndarray], np.ndarray]:
    """An out-of-sample ``predict(x, rows)`` from K-fold models: row r of the pool is read by
    the model that held it out, ``fold_probabilities[fold[r]](inputs) -> (n, C)``
    probabilities (e.g. the clean pool's K-fold models; ``fold`` as the estimation's
    ``folds.npz`` records it). Each model sees only its own rows, in one batch."""
    fold = np.asarray(fold)

    def predict(x: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        which = fold[rows]
        out = None
        for f in np.unique(which):
            picked = np.flatnonzero(which == f)
            probs = np.asarray(fold_probabilities[f](x[torch.as_tensor(picked)]))
            if out is None:
                out = np.empty((len(rows), probs.shape[1]), dtype=probs.dtype)
            out[picked] = probs
        return out if out is not None else np.zeros((0, 0))
    return predict
