"""Identifiers computed from one recorded training run, with no extra pass.

All read ``ctx.dynamics``: (N, E) arrays of the per-sample statistics of the
training forward pass at every epoch (see ``bench.dynamics``).
"""
import numpy as np

from bench import register


@register(higher_is_harder=True, family="training dynamics", citation="loss-based selection; e.g. Jiang et al. 2019")
def loss(ctx):
    """Mean per-sample cross-entropy over epochs: (1/E) sum_e -log p_y(x; theta_e)."""
    return ctx.dynamics.loss.mean(axis=1)


@register(higher_is_harder=False, family="training dynamics",
          citation="Swayamdipta et al. 2020, Dataset Cartography (EMNLP)")
def confidence(ctx):
    """Data-maps confidence: mean over epochs of the true-class probability p_y."""
    return ctx.dynamics.p_y.mean(axis=1)


@register(higher_is_harder=False, family="training dynamics",
          citation="Pleiss et al. 2020, Identifying Mislabeled Data using the Area Under the Margin Ranking (NeurIPS)")
def aum(ctx):
    """Area Under the Margin: mean over epochs of z_y - max_{k != y} z_k (logits of
    the training forward pass, one measurement per sample per epoch)."""
    return ctx.dynamics.margin.mean(axis=1)


def forgetting_counts(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per sample from an (N, E) correctness trajectory: the number
    of correct -> incorrect transitions between consecutive epochs. A sample never
    classified correctly counts as forgotten E times, more than any learned sample
    can be (at most floor(E/2)), as Toneva et al. rank never-learned samples first."""
    correct = np.asarray(correct, dtype=bool)
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1)
    never_learned = ~correct.any(axis=1)
    return np.where(never_learned, correct.shape[1], events)


@register(higher_is_harder=True, family="training dynamics",
          citation="Toneva et al. 2019, An Empirical Study of Example Forgetting during Deep Neural Network Learning (ICLR)")
def forgetting(ctx):
    """Forgetting events: count of epochs e with correct_e = 1 and correct_{e+1} = 0;
    never-learned samples get E (maximal). Ties are common; the suite breaks them
    with a seeded random order where a hard set is needed."""
    return forgetting_counts(ctx.dynamics.correct).astype(float)
