"""Out-of-sample identifiers: read the K-fold cross-fitted probabilities (``ctx.folds``),
where each sample's probabilities come from a model that never trained on it."""
import numpy as np
from cleanlab.rank import get_label_quality_scores

from bench import register


def _labels(ctx) -> np.ndarray:
    return ctx.y.cpu().numpy()


@register(higher_is_harder=False, needs={"folds"}, family="out-of-sample",
          citation="Northcutt, Jiang & Chuang 2021, Confident Learning (JAIR); the cleanlab package")
def cleanlab(ctx):
    """cleanlab label quality (Northcutt, Jiang & Chuang 2021): ``cleanlab.rank.get_label_quality_scores`` (self-confidence,
    i.e. the out-of-sample p_y) on each repeat's K-fold out-of-sample probabilities, averaged
    over the repeats."""
    probs = ctx.folds.probs.astype(np.float64)
    probs = probs / probs.sum(axis=2, keepdims=True)
    labels = _labels(ctx)
    return np.mean([get_label_quality_scores(labels, p) for p in probs], axis=0)


@register(higher_is_harder=False, needs={"folds"}, family="out-of-sample",
          citation="Jiang et al. 2021, Characterizing Structural Regularities of Labeled Data in Overparameterized Models (ICML)")
def holdout(ctx):
    """Hold-out consistency, a C-score estimate (Jiang et al. 2021): share of the models that did not train on
    the sample (one per K-fold repeat) whose prediction equals its label."""
    return (ctx.folds.probs.argmax(axis=2) == _labels(ctx)[None, :]).mean(axis=0)
