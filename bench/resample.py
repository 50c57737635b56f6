"""Hardness-based resampling at class level (docs/protocol.md, "Track R"): pure functions.

Sizes: ``class_targets`` turns class hardness into target class sizes S_c;
``assign_sizes`` re-assigns that multiset of sizes to the classes for the controls
(``permuted``, ``inverse``). Sets: ``prune_balanced`` removes a class-balanced
random fraction of a pool; ``resample`` builds the resampled training set from the
rows it may use, filling classes by ``duplicate``, ``smote`` or ``holdout``
(``holdout_fill``: pruned real samples, each at most once). Metrics:
``class_recall_precision`` per class from predictions, ``spread`` of a per-class
vector (mean, gap, std, MAD, ``quant_diff``).

Every row index here is a pool row; nothing outside the rows a caller passes in
(the train pool, never the test split) is drawn.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

FILLERS = ("duplicate", "smote", "holdout")
KEEPS = ("hardest", "random")
ASSIGNMENTS = ("hardness", "permuted", "inverse")


class Resampled(NamedTuple):
    """A resampled training set: ``rows`` (pool rows, repeats for duplicates, sorted),
    ``extra_x``/``extra_y`` (SMOTE's synthetic rows, flattened inputs, or None) and
    ``duplicated[c]``: how many of class c's holdout fill had to be duplicates because
    its reserve ran out (zeros for the other fillers)."""
    rows: np.ndarray
    extra_x: np.ndarray | None
    extra_y: np.ndarray | None
    duplicated: np.ndarray


# ---- class sizes ---------------------------------------------------------------------------------------------

def class_hardness(natural: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """h_c: mean of a method's natural-unit scores over the samples of class c."""
    counts = np.bincount(y, minlength=num_classes)
    return np.bincount(y, weights=natural, minlength=num_classes) / np.maximum(counts, 1)


def largest_remainder(values: np.ndarray, total: int) -> np.ndarray:
    """Round non-negative reals to integers that sum to ``total`` (Hamilton's method):
    floor everything, then give the missing units to the largest fractional parts
    (ties to the lower class index). Equals plain rounding whenever that keeps the total."""
    values = np.asarray(values, dtype=float)
    floors = np.floor(values).astype(np.int64)
    missing = int(total - floors.sum())
    order = np.lexsort((np.arange(len(values)), -(values - floors)))
    floors[order[:missing]] += 1
    return floors


def class_targets(h: np.ndarray, n: int, alpha: float = 1.0, higher_is_harder: bool = True) -> np.ndarray:
    """Target class sizes S_c from class hardness h_c (natural units), keeping the total n.

    - Orientation "higher = easier" (AUM, confidence): if min(h) < 0, h += -min(h) + 1e-4;
      then r_c = 1 / h_c. Otherwise r_c = h_c (shifted the same way if any h_c < 0).
    - S_c = r_c / sum(r) * n, rounded by largest remainder so that sum(S) = n exactly
      (plain rounding can lose or gain a sample: 3 x 33.3 -> 99).
    - alpha > 1: S_c = m + sign(S_c - m) * int(alpha * |S_c - m|) around m = int(mean S).
    - Clipped to >= 1. Where truncation or clipping moved the total, the part above 1 is
      rescaled, (S_c - 1) * (n - C) / (sum(S) - C), and rounded by largest remainder,
      so the total is n again.
    - alpha <= 0 means no resampling; the caller keeps the class sizes it has.
    """
    h = np.asarray(h, dtype=float).copy()
    if np.any(h < 0):
        h += -h.min() + 1e-4
    r = h if higher_is_harder else 1.0 / h
    c = len(r)
    if n < c:
        raise ValueError(f"cannot give {c} classes at least one sample each out of {n}")
    sizes = largest_remainder(r / r.sum() * n, n)
    if alpha > 1:
        m = int(sizes.mean())
        d = sizes - m
        sizes = m + np.sign(d) * (alpha * np.abs(d)).astype(np.int64)
    sizes = np.maximum(sizes, 1)
    if sizes.sum() != n:
        sizes = 1 + largest_remainder((sizes - 1) * (n - c) / (sizes.sum() - c), n - c)
    return sizes.astype(np.int64)


def assign_sizes(sizes: np.ndarray, assignment: str, seed: int = 0) -> np.ndarray:
    """The same multiset of class sizes, assigned to the classes by ``assignment``:

    - ``hardness``: unchanged (S_c from ``class_targets``: harder classes are larger);
    - ``permuted``: ``sizes[p]`` for one permutation p drawn by ``numpy.random.default_rng(seed)``;
    - ``inverse``: reverse hardness order: the class with the k-th smallest S_c gets the
      k-th largest size (easy classes grow, hard ones shrink; ties in S_c by class index).

    The total and the sorted sizes never change, only which class gets which size.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if assignment == "hardness":
        return sizes.copy()
    if assignment == "permuted":
        return sizes[np.random.default_rng(seed).permutation(len(sizes))]
    if assignment == "inverse":
        order = np.argsort(sizes, kind="stable")
        out = np.empty_like(sizes)
        out[order] = sizes[order[::-1]]
        return out
    raise ValueError(f"unknown assignment {assignment!r}; valid: {', '.join(ASSIGNMENTS)}")


# ---- drawing rows per class -------------------------------------------------------------------------------------

def within_class_rank(labels: np.ndarray, priority: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's rank inside its class, 0 = first: by descending ``priority``, ties in random order."""
    n = len(labels)
    order = np.lexsort((rng.permutation(n), -np.asarray(priority, dtype=float), labels))
    sorted_labels = labels[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    return rank


def take_per_class(rows: np.ndarray, labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
                   priority: np.ndarray | None = None) -> np.ndarray:
    """Without replacement: of the rows of class c, the ``counts[c]`` with the highest ``priority``
    (random ones when ``priority`` is None); all of them where the class has fewer. Sorted."""
    rows = np.asarray(rows, dtype=np.int64)
    priority = np.zeros(len(rows)) if priority is None else priority
    rank = within_class_rank(labels, priority, rng)
    return np.sort(rows[rank < np.asarray(counts)[labels]])


def draw_per_class(rows: np.ndarray, labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """With replacement: ``counts[c]`` uniform draws from the rows of class c."""
    rows, counts = np.asarray(rows, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    sizes = np.bincount(labels, minlength=len(counts))
    empty = np.flatnonzero((counts > 0) & (sizes == 0))
    if len(empty):
        raise ValueError(f"class {int(empty[0])} has no samples to draw from")
    by_class = rows[np.argsort(labels, kind="stable")]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cls = np.repeat(np.arange(len(counts)), counts)
    return by_class[starts[cls] + rng.integers(0, np.maximum(sizes[cls], 1))]


def prune_balanced(y: np.ndarray, fraction: float, seed: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Random, class-balanced pruning: ``(kept, pruned)`` pool rows, both sorted.

    Class c loses ``fraction`` of its n_c samples: the removed counts are fraction * n_c rounded
    by largest remainder to round(fraction * n) in total, capped at n_c - 1 so every class keeps
    a sample. Which samples go is random (``numpy.random.default_rng(seed)``).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"prune fraction must be in [0, 1), got {fraction}")
    y = np.asarray(y)
    counts = np.bincount(y, minlength=num_classes)
    removed = np.minimum(largest_remainder(fraction * counts, round(fraction * len(y))), np.maximum(counts - 1, 0))
    everything = np.arange(len(y))
    pruned = take_per_class(everything, y, removed, np.random.default_rng(seed))
    return np.setdiff1d(everything, pruned), pruned


def holdout_fill(y: np.ndarray, members: np.ndarray, reserve: np.ndarray, need: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fill class c with ``need[c]`` real samples from ``reserve`` (pool rows not in the
    training set, e.g. the pruned ones), drawn at random without replacement, so no reserve
    row is used twice and none is outside ``reserve``. A class whose reserve runs out takes
    the rest as duplicates of its ``members`` (the rows already in the training set).
    Returns ``(rows, duplicated)``, ``duplicated[c]`` = how many of class c's rows are duplicates."""
    reserve = np.asarray(reserve, dtype=np.int64)
    members = np.asarray(members, dtype=np.int64)
    if len(np.unique(reserve)) != len(reserve):
        raise ValueError("the holdout reserve lists a row twice")
    if np.intersect1d(reserve, members).size:
        raise ValueError("the holdout reserve overlaps the training rows")
    need = np.asarray(need, dtype=np.int64)
    taken = take_per_class(reserve, y[reserve], need, rng)
    duplicated = need - np.bincount(y[taken], minlength=len(need))
    return np.concatenate([taken, draw_per_class(members, y[members], duplicated, rng)]), duplicated


def resample(y: np.ndarray, scores: np.ndarray, targets: np.ndarray, filler: str, seed: int,
             keep: str = "hardest", x_flat: np.ndarray | None = None, subset: np.ndarray | None = None,
             reserve: np.ndarray | None = None) -> Resampled:
    """The resampled training set (``Resampled``) with ``targets[c]`` samples of class c.

    ``subset``: the pool rows the training set is made of (default: all of ``y``). Classes
    above their target keep their ``targets[c]`` hardest rows by ``scores`` (oriented,
    higher = harder; ties at random) or random ones (``keep="random"``); classes below keep
    all and are filled by ``filler``:

    - ``duplicate``: random copies of the class's rows (with replacement);
    - ``smote``: imbalanced-learn's SMOTE (k = 5, fewer for tiny classes) on ``x_flat[subset]``;
    - ``holdout``: ``holdout_fill`` from ``reserve`` (pool rows outside ``subset``, e.g. the
      pruned ones), each at most once; duplicates only where a class's reserve runs out.
    """
    if filler not in FILLERS:
        raise ValueError(f"unknown filler {filler!r}; valid: {', '.join(FILLERS)}")
    if keep not in KEEPS:
        raise ValueError(f"unknown keep {keep!r}; valid: {', '.join(KEEPS)}")
    if filler == "holdout" and reserve is None:
        raise ValueError("filler 'holdout' needs a reserve of unused real samples (the pruned ones)")
    rng = np.random.default_rng(seed)
    targets = np.asarray(targets, dtype=np.int64)
    rows = np.arange(len(y)) if subset is None else np.asarray(subset, dtype=np.int64)
    labels = y[rows]
    kept = take_per_class(rows, labels, targets, rng, scores[rows] if keep == "hardest" else None)
    need = np.maximum(targets - np.bincount(labels, minlength=len(targets)), 0)
    duplicated = np.zeros(len(targets), dtype=np.int64)
    extra_x = extra_y = None
    if filler == "duplicate":
        fill = draw_per_class(rows, labels, need, rng)
    elif filler == "holdout":
        fill, duplicated = holdout_fill(y, rows, reserve, need, rng)
    else:
        fill = np.zeros(0, dtype=np.int64)
        if need.any():
            totals = {int(c): int(targets[c]) for c in np.flatnonzero(need)}
            extra_x, extra_y = smote(x_flat[rows], labels, totals, seed)
    return Resampled(np.sort(np.concatenate([kept, fill])), extra_x, extra_y, duplicated)


def smote(x_flat: np.ndarray, y: np.ndarray, totals: dict[int, int], seed: int, k: int = 5):
    """Synthetic samples from imbalanced-learn's SMOTE so that class c reaches ``totals[c]``
    samples: returns only the new rows (x, y)."""
    from imblearn.over_sampling import SMOTE

    smallest = min(int((y == c).sum()) for c in totals)
    sampler = SMOTE(sampling_strategy=totals, k_neighbors=max(1, min(k, smallest - 1)), random_state=seed)
    x_res, y_res = sampler.fit_resample(x_flat, y)
    return x_res[len(y):].astype(np.float32), y_res[len(y):].astype(np.int64)


# ---- per-class metrics ------------------------------------------------------------------------------------------

def confusion(pred: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts: entry [t, p] = test samples of true class t predicted as p."""
    return np.bincount(np.asarray(y, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_recall_precision(pred: np.ndarray, y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class recall TP_c / (samples of class c) and precision TP_c / (predictions of c).
    A class with no samples has recall 0, a class never predicted has precision 0
    (scikit-learn's ``zero_division=0``)."""
    m = confusion(pred, y, num_classes)
    tp = np.diag(m).astype(float)
    return tp / np.maximum(m.sum(1), 1), tp / np.maximum(m.sum(0), 1)


def mad(values: np.ndarray) -> float:
    """Mean absolute deviation from the mean over classes: mean_c |v_c − mean(v)|."""
    values = np.asarray(values, dtype=float)
    return float(np.abs(values - values.mean()).mean())


def quant_k(num_classes: int) -> int:
    """k of ``quant_diff``: 2 for up to 10 classes, C // 10 beyond (10 for 100 classes),
    at most C // 2 (so the top and bottom k do not overlap) and at least 1."""
    k = 2 if num_classes <= 10 else num_classes // 10
    return max(1, min(k, num_classes // 2))


def quant_diff(values: np.ndarray, k: int | None = None) -> float:
    """Mean of the k largest minus mean of the k smallest values (k = ``quant_k(C)`` by default)."""
    values = np.sort(np.asarray(values, dtype=float))
    k = quant_k(len(values)) if k is None else k
    return float(values[-k:].mean() - values[:k].mean())


def spread(values: np.ndarray) -> dict[str, float]:
    """A per-class vector's mean, gap (max − min), std (population, ddof = 0), MAD and quant_diff."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "gap": float(values.max() - values.min()), "std": float(values.std()),
            "mad": mad(values), "quant_diff": quant_diff(values)}
