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


@register(higher_is_harder=True, family="training dynamics",
          citation="Swayamdipta et al. 2020, Dataset Cartography (EMNLP)")
def variability(ctx):
    """Data-maps variability (Swayamdipta et al. 2020): population standard deviation over epochs of p_y,
    sqrt((1/E) sum_e (p_y,e - mean_e p_y)^2). High = ambiguous (the data map's hard region)."""
    return ctx.dynamics.p_y.std(axis=1)


@register(higher_is_harder=False, family="training dynamics",
          citation="Swayamdipta et al. 2020, Dataset Cartography (EMNLP)")
def correctness(ctx):
    """Data-maps correctness (Swayamdipta et al. 2020): fraction of epochs whose training forward pass predicted
    the label, (1/E) sum_e [argmax_k z_k,e = y]."""
    return ctx.dynamics.correct.mean(axis=1)


def learned_epochs(correct: np.ndarray) -> np.ndarray:
    """Iteration learned from an (N, E) correctness trajectory: the first epoch e
    (1-based) such that the sample is classified correctly at e and every later epoch.
    A sample wrong at the last epoch was never learned and gets E + 1 (maximal)."""
    correct = np.asarray(correct, dtype=bool)
    epochs = correct.shape[1]
    # suffix_ok[:, e] = correct at every epoch >= e; it is monotone in e, so counting
    # the epochs where it fails gives the first epoch where it holds.
    suffix_ok = np.flip(np.logical_and.accumulate(np.flip(correct, axis=1), axis=1), axis=1)
    return (epochs - suffix_ok.sum(axis=1)) + 1


@register(higher_is_harder=True, family="training dynamics",
          citation="Baldock, Maennel & Neyshabur 2021, Deep Learning Through the Lens of Example Difficulty (NeurIPS)")
def iteration_learned(ctx):
    """Iteration (here: epoch) learned (Baldock et al. 2021): the first epoch after which the training forward
    pass classifies the sample correctly for the rest of training,
    min{e : correct_e' = 1 for all e' >= e}; never learned = E + 1."""
    return learned_epochs(ctx.dynamics.correct).astype(float)


@register(higher_is_harder=True, family="training dynamics",
          citation="Seedat et al. 2022, Data-IQ: Characterizing subgroups with heterogeneous outcomes (NeurIPS)")
def dataiq_aleatoric(ctx):
    """Data-IQ aleatoric uncertainty (Seedat et al. 2022): (1/E) sum_e p_y,e (1 - p_y,e), the expected variance of
    the label's Bernoulli outcome over training checkpoints (here: epochs)."""
    p = ctx.dynamics.p_y
    return (p * (1.0 - p)).mean(axis=1)
