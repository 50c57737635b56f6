"""Scores to numbers: detection metrics, hard sets, confidence intervals.

Every function takes scores oriented so that higher = harder; none of them
ever flips a metric that comes out below chance.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score


def detection_metrics(scores: np.ndarray, planted: np.ndarray, seed: int = 0) -> dict[str, float]:
    """AUPRC (planted = positive), AUROC, precision@|M| and the random AUPRC baseline. The |M|
    highest scores for precision@|M| are taken with ties broken by a random order seeded by
    ``seed`` (``top_k``), so tied scores neither gain nor lose by their position."""
    planted = np.asarray(planted, dtype=bool)
    top = top_k(scores, int(planted.sum()), seed)
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
    """Mean and half-width of the Student-t confidence interval; the half-width is NaN for one
    value (no interval: one value says nothing about its spread)."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean()), float(half)


def format_ci(values, digits: int = 3, scale: float = 1.0) -> str:
    """"mean ± half-width" over two or more values; one value prints as "value (n=1)", with no
    interval; none as "–"."""
    values = np.asarray(list(values), dtype=float) * scale
    mean, half = mean_ci(values)
    if math.isnan(mean):
        return "–"
    if math.isnan(half):
        return f"{mean:.{digits}f} (n=1)"
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


# ---- tests over settings and seeds -----------------------------------------------------------
# Rows are tidy tuples (method, block, seed, value): a block is a setting (e.g. (type, rate)), a
# seed one estimation run inside it; higher values are better unless stated.

def seed_averaged_matrix(rows, methods=None) -> tuple[np.ndarray, list, list]:
    """The (blocks x methods) matrix of each method's value averaged over seeds within each block,
    for ``friedman_nemenyi``: settings, not seeds, are the blocks, so seeds of one setting are not
    counted as independent evidence. Non-finite values are skipped; blocks where a method (of
    ``methods``, default all, sorted) has no value are dropped. Returns (matrix, blocks, methods)."""
    cells: dict = {}
    for method, block, _seed, value in rows:
        if value is not None and np.isfinite(value):
            cells.setdefault((block, method), []).append(float(value))
    methods = sorted({m for _, m in cells}) if methods is None else list(methods)
    blocks = list(dict.fromkeys(b for b, _ in cells))
    blocks = [b for b in blocks if all((b, m) in cells for m in methods)]
    matrix = np.array([[np.mean(cells[b, m]) for m in methods] for b in blocks], dtype=float).reshape(len(blocks),
                                                                                                       len(methods))
    return matrix, blocks, methods


#: fewest pairs for the Wilcoxon signed-rank test; below it the paired t-test is used (the exact
#: Wilcoxon p-value cannot fall below 2 / 2^n, 0.0625 at n = 5, so with few pairs it can never reject)
MIN_WILCOXON_PAIRS = 10


def _paired(rows) -> dict:
    """method -> {(block, seed): value}, finite values only."""
    out: dict = {}
    for method, block, seed, value in rows:
        if value is not None and np.isfinite(value):
            out.setdefault(method, {})[(block, seed)] = float(value)
    return out


def paired_test(a, b) -> tuple[float, str]:
    """Two-sided p-value of a paired test of a - b: Wilcoxon signed-rank (scipy.stats.wilcoxon, zero
    differences dropped) with at least ``MIN_WILCOXON_PAIRS`` pairs, else the paired t-test
    (scipy.stats.ttest_rel); where the differences are all equal (and non-zero) the t statistic is
    undefined and the exact sign test (scipy.stats.binomtest) stands in: p = 2^(1 - n), so two equal
    differences are not evidence. All differences zero: p = 1; fewer than two pairs: NaN. Returns
    (p, test)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) < 2:
        return math.nan, "none"
    if not d.any():
        return 1.0, "none"
    if len(d) >= MIN_WILCOXON_PAIRS:
        return float(stats.wilcoxon(d, zero_method="wilcox").pvalue), "wilcoxon"
    if np.allclose(d, d[0], rtol=1e-9, atol=1e-12):  # equal differences (up to rounding): no variance for t
        return float(stats.binomtest(int((d > 0).sum()), len(d)).pvalue), "sign"
    return float(stats.ttest_rel(a, b).pvalue), "t"


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``multipletests(method="holm")``), in the given order;
    NaN entries stay NaN and do not count among the tests."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


#: the three answers of a method against the board's best (``compare_with_best``)
AS_GOOD, WORSE, UNDECIDED = "as good", "worse", "undecided"


def compare_with_best(rows, delta: float = 0.0, alpha: float = 0.05, higher_is_better: bool = True,
                      confidence: float = 0.95, control: str | None = None) -> dict:
    """Each method against the best, paired over the (block, seed) pairs both have.

    The best is the method with the highest mean value (lowest with ``higher_is_better=False``),
    ``control`` excluded: a control is compared, never the best. Per other method: ``diff`` the
    mean of (method - best) over the shared pairs, oriented so that negative = worse, with its
    Student-t half-width ``ci`` (NaN under two pairs); ``p`` the two-sided p-value of
    ``paired_test``; ``p_holm`` Holm-corrected over all the methods compared with the best
    (``holm``); ``n`` the number of pairs, ``test`` the test used, and ``state`` (``state_of``):

    - *as good* (``AS_GOOD``): the interval lies above ``-delta``, the practical margin (an
      equivalence bound, one-sided: a difference smaller than ``delta`` is no difference to a
      user, even where it is significant);
    - *worse* (``WORSE``): otherwise, p_holm < alpha with diff < 0;
    - *undecided* (``UNDECIDED``): neither; ``pairs_needed`` says how many pairs would settle
      it at the observed mean and spread (``pairs_to_settle``).

    The best itself gets diff 0, state as good. Returns {method: {...}} ordered from the best
    down by mean value."""
    sign = 1.0 if higher_is_better else -1.0
    paired = _paired(rows)
    means = {m: sign * np.mean(list(v.values())) for m, v in paired.items()}
    order = sorted(means, key=lambda m: (m == control, -means[m]))
    best = order[0]
    out = {best: {"diff": 0.0, "ci": math.nan, "p": math.nan, "p_holm": math.nan, "n": len(paired[best]),
                  "test": "best", "state": AS_GOOD, "pairs_needed": None, "best": best, "sd": math.nan}}
    for m in sorted(order[1:], key=lambda m: -means[m]):
        shared = sorted(set(paired[m]) & set(paired[best]), key=repr)
        a = np.array([paired[m][k] for k in shared])
        b = np.array([paired[best][k] for k in shared])
        d = sign * (a - b)
        diff, half = mean_ci(d, confidence)
        p, test = paired_test(a, b)
        out[m] = {"diff": diff, "ci": half, "p": p, "n": len(shared), "test": test, "best": best,
                  "sd": float(np.std(d, ddof=1)) if len(d) > 1 else math.nan}
    adjusted = holm([out[m]["p"] for m in list(out)[1:]])
    for m, p in zip(list(out)[1:], adjusted):
        entry = out[m]
        entry["p_holm"] = float(p)
        entry["state"] = state_of(entry, delta, alpha)
        entry["pairs_needed"] = (pairs_to_settle(entry["diff"], entry["sd"], delta, confidence)
                                 if entry["state"] == UNDECIDED else None)
    return out


def state_of(entry: dict, delta: float, alpha: float = 0.05) -> str:
    """*as good*, *worse* or *undecided* (``compare_with_best``) from a comparison's ``diff``,
    ``ci`` and ``p_holm``, at the practical margin ``delta``."""
    if entry.get("test") == "best":
        return AS_GOOD
    if np.isfinite(entry["ci"]) and entry["diff"] - entry["ci"] > -delta:
        return AS_GOOD
    if entry["p_holm"] < alpha and entry["diff"] < 0:
        return WORSE
    return UNDECIDED


def pairs_to_settle(diff: float, sd: float, delta: float, confidence: float = 0.95, most: int = 10_000) -> int | None:
    """The fewest pairs whose Student-t interval, at the observed mean ``diff`` and standard
    deviation ``sd`` of the paired differences, would lie above ``-delta`` (as good) or below 0
    (worse, before the Holm correction): the first n with t(n - 1) sd / sqrt(n) below
    max(diff + delta, -diff). None where the spread is unknown (under two pairs) or more than
    ``most`` pairs would be needed."""
    if not np.isfinite(sd) or not np.isfinite(diff):
        return None
    room = max(diff + delta, -diff)
    if sd == 0:
        return 2
    for n in range(2, most + 1):
        if stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) < room:
            return n
    return None


def beats_control(rows, best: str, control: str, delta: float, higher_is_better: bool = True,
                  confidence: float = 0.95) -> dict | None:
    """Whether ``best`` beats the ``control`` by more than the practical margin: the paired
    difference (best - control, oriented so that positive = better) over the (block, seed)
    pairs both have, its Student-t half-width, and ``beats`` = the interval lies above
    ``delta``. None where the control did not run."""
    paired = _paired(rows)
    if control not in paired or best not in paired:
        return None
    sign = 1.0 if higher_is_better else -1.0
    shared = sorted(set(paired[best]) & set(paired[control]), key=repr)
    d = sign * np.array([paired[best][k] - paired[control][k] for k in shared])
    diff, half = mean_ci(d, confidence)
    return {"diff": diff, "ci": half, "n": len(shared), "beats": bool(np.isfinite(half) and diff - half > delta)}


def compact_letters(order, significant) -> dict:
    """Compact letter display (Piepho 2004, insert-and-absorb): ``order`` lists the methods best
    first; ``significant`` holds the pairs (a, b) whose difference is significant. Returns
    {method: letters} such that two methods share a letter exactly when no significant difference
    separates them within a group: every pair inside a letter's group is non-significant, and every
    non-significant pair shares at least one letter. Letters go a, b, ... in the order of each
    group's best member."""
    groups = [set(order)]
    for a, b in significant:
        split = []
        for g in groups:
            split.extend([g - {a}, g - {b}] if a in g and b in g else [g])
        groups = [g for i, g in enumerate(split)  # absorb: drop groups inside another (and duplicates)
                  if not any(g < h or (g == h and j < i) for j, h in enumerate(split) if j != i)]
    rank = {m: i for i, m in enumerate(order)}
    groups.sort(key=lambda g: sorted(rank[m] for m in g))
    letters = {m: "" for m in order}
    for i, g in enumerate(groups):
        for m in g:
            letters[m] += chr(ord("a") + i) if i < 26 else f"[{i}]"
    return letters


def significance_letters(rows, alpha: float = 0.05, higher_is_better: bool = True) -> dict:
    """Group letters for all methods of ``rows``: every pair of methods is compared with
    ``paired_test`` over the (block, seed) pairs they share, the p-values are Holm-corrected over
    all pairs (``holm``), and ``compact_letters`` turns the pairs with p_holm < alpha into letters
    (methods ordered by mean value, best first). Methods that share a letter are not significantly
    different; "a" marks the best method's group. Returns {method: letters}."""
    sign = 1.0 if higher_is_better else -1.0
    paired = _paired(rows)
    order = sorted(paired, key=lambda m: -sign * np.mean(list(paired[m].values())))
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    pvalues = []
    for a, b in pairs:
        shared = sorted(set(paired[a]) & set(paired[b]), key=repr)
        pvalues.append(paired_test([paired[a][k] for k in shared], [paired[b][k] for k in shared])[0])
    adjusted = holm(pvalues)
    return compact_letters(order, [pair for pair, p in zip(pairs, adjusted) if p < alpha])


def equal_halves(seeds) -> tuple[list, list]:
    """Two disjoint halves of equal size from the seeds (sorted; even and odd positions), the
    highest seed left out when their number is odd, so that both means average as many runs
    (stability compares them; unequal halves make the smaller one noisier)."""
    seeds = sorted(seeds)
    seeds = seeds[: len(seeds) - len(seeds) % 2]
    return seeds[0::2], seeds[1::2]
