"""Out-of-sample identifiers: read the K-fold cross-fitted probabilities (``ctx.folds``),
where each sample's probabilities come from a model that never trained on it."""
import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from bench import register


def _labels(ctx) -> np.ndarray:
    return ctx.y.cpu().numpy()


def held_out_label_probability(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(1/R) sum_r probs[r, i, y_i] from (R, N, C) out-of-sample probabilities."""
    return np.take_along_axis(np.asarray(probs, dtype=np.float64), y[None, :, None], axis=2)[..., 0].mean(axis=0)


def confident_learning_scores(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confident learning's decision as a ranking, for (N, C) out-of-sample probabilities:
    ``cleanlab.filter.find_label_issues`` (confident joint, prune by noise rate) flags the
    label issues; the score is the normalized margin p_y - max_{k != y} p_k (cleanlab's
    ``get_label_quality_scores(method="normalized_margin")``, in [0, 1]) minus 1 for a flagged
    sample, so every flagged sample ranks below every kept one and the margin orders within."""
    flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate")
    return get_label_quality_scores(labels, probs, method="normalized_margin") - flagged


@register(higher_is_harder=False, needs={"folds"}, family="out-of-sample",
          citation="Northcutt, Jiang & Chuang 2021, Confident Learning: Estimating Uncertainty in Dataset Labels "
                   "(JAIR); the cleanlab package")
def cleanlab(ctx):
    """Confident learning (Northcutt, Jiang & Chuang 2021) through the cleanlab package: on each K-fold
    repeat's out-of-sample probabilities, the samples ``cleanlab.filter.find_label_issues`` flags
    (confident joint, prune by noise rate) rank first, ordered by normalized margin
    p_y - max_{k != y} p_k; score = normalized margin - [flagged], averaged over the R repeats;
    lower = harder (likely label issue).

    Variant: the paper's prune/keep decision made a ranking by the margin it uses to order its
    prunes; probabilities from K-fold cross-fitting as the paper prescribes. (The package's
    default ranking, self-confidence, is the out-of-sample p_y: that is ``holdout``.)"""
    probs = ctx.folds.probs.astype(np.float64)
    probs = probs / probs.sum(axis=2, keepdims=True)
    labels = _labels(ctx)
    return np.mean([confident_learning_scores(labels, p) for p in probs], axis=0)


@register(higher_is_harder=False, needs={"folds"}, family="out-of-sample",
          citation="Jiang, Zhang, Talwar & Mozer 2021, Characterizing Structural Regularities of Labeled Data in "
                   "Overparameterized Models (ICML)")
def holdout(ctx):
    """Hold-out consistency, a C-score proxy (Jiang et al. 2021): (1/R) sum_r p^(r)(y | x), the probability of
    the label under the one model of K-fold repeat r that did not train on the sample (ctx.folds.probs,
    R repeats); lower = harder (irregular).

    Variant: the C-score is the expected 0/1 accuracy on the sample of models trained on random
    subsets that exclude it; this is its hold-out estimate with few models. Deviations: R K-fold
    repeats (recipe.fold_repeats, default 3, each model trained on (K-1)/K of the pool) instead of
    thousands of models over a range of subset ratios; the probability of the label instead of the
    0/1 correctness keeps the score continuous with so few models."""
    return held_out_label_probability(ctx.folds.probs, _labels(ctx))
