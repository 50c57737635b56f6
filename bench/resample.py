"""Hardness-based resampling at class level (PROTOCOL.md, "Track R"): pure functions.

``class_targets`` turns class hardness into target class sizes; ``resample`` builds
the resampled training set (pool rows, possibly repeated, plus synthetic rows).
"""
from __future__ import annotations

import numpy as np

FILLERS = ("duplicate", "smote", "holdout")
KEEPS = ("hardest", "random")


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


def resample(y: np.ndarray, scores: np.ndarray, targets: np.ndarray, filler: str, seed: int,
             keep: str = "hardest", x_flat: np.ndarray | None = None, reserve: dict | None = None):
    """The resampled training set: ``(rows, extra_x, extra_y)``.

    ``rows``: pool indices (repeats for duplicates); ``extra_x``/``extra_y``: SMOTE's
    synthetic samples (flattened inputs) or None. Classes above their target keep
    their ``targets[c]`` hardest samples by ``scores`` (oriented, higher = harder) or
    a random subset (``keep="random"``); classes below are filled by ``filler``:

    - ``duplicate``: random copies of the class's samples (with replacement);
    - ``smote``: imbalanced-learn's SMOTE (k = 5, fewer for tiny classes) on ``x_flat``;
    - ``holdout``: unused real samples, ``reserve[c]`` = row indices (beyond the pool's
      rows, where the caller appended them) drawn without replacement; a class whose
      reserve runs out is topped up with duplicates.
    """
    if filler not in FILLERS:
        raise ValueError(f"unknown filler {filler!r}; valid: {', '.join(FILLERS)}")
    if keep not in KEEPS:
        raise ValueError(f"unknown keep {keep!r}; valid: {', '.join(KEEPS)}")
    rng = np.random.default_rng(seed)
    num_classes = len(targets)
    rows, over = [], {}
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        t = int(targets[c])
        if t <= len(members):
            if keep == "hardest":
                order = np.lexsort((rng.permutation(len(members)), -scores[members]))
                rows.append(members[order[:t]])
            else:
                rows.append(rng.choice(members, t, replace=False))
        else:
            rows.append(members)
            over[c] = t - len(members)
    extra_x = extra_y = None
    if filler == "duplicate":
        for c, k in over.items():
            rows.append(rng.choice(np.flatnonzero(y == c), k, replace=True))
    elif filler == "holdout":
        for c, k in over.items():
            spare = np.asarray((reserve or {}).get(c, []), dtype=np.int64)
            take = rng.permutation(spare)[:k]
            rows.append(take)
            if len(take) < k:
                rows.append(rng.choice(np.flatnonzero(y == c), k - len(take), replace=True))
    elif over:  # smote
        extra_x, extra_y = smote(x_flat, y, {c: int(targets[c]) for c in over}, seed)
    return np.sort(np.concatenate(rows)), extra_x, extra_y


def smote(x_flat: np.ndarray, y: np.ndarray, totals: dict[int, int], seed: int, k: int = 5):
    """Synthetic samples from imbalanced-learn's SMOTE so that class c reaches ``totals[c]``
    samples: returns only the new rows (x, y)."""
    from imblearn.over_sampling import SMOTE

    smallest = min(int((y == c).sum()) for c in totals)
    sampler = SMOTE(sampling_strategy=totals, k_neighbors=max(1, min(k, smallest - 1)), random_state=seed)
    x_res, y_res = sampler.fit_resample(x_flat, y)
    return x_res[len(y):].astype(np.float32), y_res[len(y):].astype(np.int64)
