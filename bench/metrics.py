"""Scores to numbers: detection metrics, hard sets, confidence intervals.

Every function takes scores oriented so that higher = harder; none of them
ever flips a metric that comes out below chance.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(scores: np.ndarray, planted: np.ndarray) -> dict[str, float]:
    """AUPRC (planted = positive), AUROC, precision@|M| and the random AUPRC baseline."""
    planted = np.asarray(planted, dtype=bool)
    top = np.argsort(-scores, kind="stable")[: planted.sum()]
    return {
        "auprc": float(average_precision_score(planted, scores)),
        "auroc": float(roc_auc_score(planted, scores)),
        "precision_at_m": float(planted[top].mean()),
        "baseline": float(planted.mean()),
    }


def agreement_metrics(scores: np.ndarray, truth: np.ndarray, q: float = 0.1) -> dict[str, float]:
    """How oriented scores agree with a ground-truth hardness (higher = harder): Spearman and
    Kendall (tau-b) rank correlations, AUPRC of the scores for the truth's hardest q (its
    ``hard_set``) and that set's share as the AUPRC ``baseline``."""
    scores, truth = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    positives = np.zeros(len(truth), dtype=bool)
    positives[hard_set(truth, q)] = True
    return {"spearman": float(stats.spearmanr(scores, truth).statistic),
            "kendall": float(stats.kendalltau(scores, truth).statistic),
            "auprc": float(average_precision_score(positives, scores)),
            "baseline": float(positives.mean())}


def top_k(scores: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of the k highest scores, ties broken by a seeded random order."""
    tiebreak = np.random.default_rng(seed).permutation(len(scores))
    return np.sort(np.lexsort((tiebreak, -np.asarray(scores)))[:k])  # last key is primary: score descending


def hard_set(scores: np.ndarray, q: float = 0.1, seed: int = 0, classes: np.ndarray | None = None) -> np.ndarray:
    """H(q): indices of the ceil(q*N) highest scores, ties broken by a seeded random order.
    With ``classes``, the top q inside each class instead."""
    scores = np.asarray(scores)
    if classes is None:
        return top_k(scores, math.ceil(q * len(scores)), seed)
    picked = [idx[hard_set(scores[idx], q, seed)] for idx in (np.flatnonzero(classes == c) for c in np.unique(classes))]
    return np.sort(np.concatenate(picked))


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (0 for one value)."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), 0.0
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean()), float(half)


def format_ci(values, digits: int = 3, scale: float = 1.0) -> str:
    mean, half = mean_ci(np.asarray(list(values), dtype=float) * scale)
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def friedman_nemenyi(matrix: np.ndarray, alpha: float = 0.05) -> dict:
    """Friedman test over blocks (rows) and methods (columns, higher = better), the
    methods' mean ranks (1 = best) and the Nemenyi critical difference
    CD = q_alpha * sqrt(k (k + 1) / (6 n)), q_alpha the studentized range quantile / sqrt 2
    (Demšar 2006). Two methods whose mean ranks differ by less than CD are not
    distinguishable at level alpha."""
    matrix = np.asarray(matrix, dtype=float)
    n, k = matrix.shape
    mean_ranks = stats.rankdata(-matrix, axis=1).mean(axis=0)
    q_alpha = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    result = {"mean_ranks": mean_ranks, "cd": float(q_alpha * math.sqrt(k * (k + 1) / (6 * n))),
              "statistic": math.nan, "p": math.nan, "blocks": n}
    if n >= 2 and k >= 3:
        result["statistic"], result["p"] = map(float, stats.friedmanchisquare(*matrix.T))
    return result
