"""Identifiers computed from one recorded training run, with no extra pass.

All read ``ctx.dynamics``: (N, E) arrays of the per-sample statistics of the
training forward pass at every epoch (see ``bench.dynamics``); each sample is
seen once per epoch, so one measurement per sample per epoch.
"""
import numpy as np

from bench import register

DATA_MAPS = ("Swayamdipta et al. 2020, Dataset Cartography: Mapping and Diagnosing Datasets with Training Dynamics "
             "(EMNLP)")
BALDOCK = "Baldock, Maennel & Neyshabur 2021, Deep Learning Through the Lens of Example Difficulty (NeurIPS)"


@register(higher_is_harder=True, family="training dynamics",
          citation="Jiang et al. 2019, Accelerating Deep Learning by Focusing on the Biggest Losers (arXiv); "
                   "Arazo et al. 2019, Unsupervised Label Noise Modeling and Loss Correction (ICML)")
def loss(ctx):
    """Training loss (Jiang et al. 2019; Arazo et al. 2019): (1/E) sum_e -log p_y(x; theta_e), the per-sample
    cross-entropy of the training forward pass averaged over all epochs; higher = harder.

    Variant: the loss averaged over training rather than at one epoch (Jiang et al. select on the
    current loss; Arazo et al. model the per-sample loss distribution of one epoch), which makes
    the ranking less dependent on the epoch it is read at."""
    return ctx.dynamics.loss.mean(axis=1)


@register(higher_is_harder=False, family="training dynamics", citation=DATA_MAPS)
def confidence(ctx):
    """Data-maps confidence (Swayamdipta et al. 2020): (1/E) sum_e p_y(x; theta_e), the mean over epochs of the
    probability of the (observed) label; lower = harder.

    Variant: the paper's, one measurement per epoch from the training forward pass; no deviation."""
    return ctx.dynamics.p_y.mean(axis=1)


@register(higher_is_harder=False, family="training dynamics",
          citation="Pleiss et al. 2020, Identifying Mislabeled Data using the Area Under the Margin Ranking (NeurIPS)")
def aum(ctx):
    """Area Under the Margin (Pleiss et al. 2020): (1/E) sum_e (z_y,e - max_{k != y} z_k,e), the logits of the
    training forward pass, one measurement per sample per epoch; lower = harder (mislabelled).

    Variant: the AUM ranking itself. Deviation: no threshold samples (the paper's extra fake class
    that turns the ranking into a keep/drop decision): the benchmark needs a ranking, not a cut."""
    return ctx.dynamics.margin.mean(axis=1)


@register(higher_is_harder=False, needs={"ensemble"}, family="training dynamics",
          citation="Pleiss et al. 2020, Identifying Mislabeled Data using the Area Under the Margin Ranking (NeurIPS)")
def aum_ens(ctx):
    """AUM averaged over K networks: (1/K) sum_k AUM_k, AUM_k = (1/E) sum_e (z_y,e - max_{k' != y} z_k',e) of the
    k-th full training run (this estimation run and K - 1 more from fresh initialisations, K =
    ctx.recipe.early_runs: ctx.ensemble); lower = harder.

    Variant: ``aum`` over the same budget of independent networks that ``el2n`` and ``grand`` average
    over, so that averaging is not confounded with the identifier when single-run and averaged
    methods are compared. Deviation: Pleiss et al. rank by one run's AUM; averaging is this suite's
    addition."""
    return ctx.ensemble.aum.mean(axis=0)


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
    """Forgetting events (Toneva et al. 2019): #{e : correct_e = 1 and correct_{e+1} = 0}, correct_e the
    training forward pass's argmax == y at the sample's presentation in epoch e; never-learned
    samples get E (maximal, the paper treats them as forgotten infinitely often); higher = harder.

    Variant: the paper's (one presentation per epoch). Ties are common; the suite breaks them with a
    seeded random order where a hard set is needed."""
    return forgetting_counts(ctx.dynamics.correct).astype(float)


@register(higher_is_harder=True, family="ambiguity", citation=DATA_MAPS)
def variability(ctx):
    """Data-maps variability (Swayamdipta et al. 2020): sqrt((1/E) sum_e (p_y,e - mean_e p_y)^2), the population
    standard deviation over epochs of the label's probability; higher = more ambiguous.

    It measures ambiguity, not hardness: in the data map the hard-to-learn region (where mislabelled
    samples gather) is low ``confidence`` with LOW variability, and high variability marks the
    ambiguous region. Registered with family "ambiguity" and higher = more ambiguous.

    Variant: the paper's, one measurement per epoch from the training forward pass; no deviation."""
    return ctx.dynamics.p_y.std(axis=1)


@register(higher_is_harder=False, family="training dynamics", citation=DATA_MAPS)
def correctness(ctx):
    """Data-maps correctness (Swayamdipta et al. 2020): (1/E) sum_e [argmax_k z_k,e = y], the fraction of
    epochs whose training forward pass predicted the label; lower = harder.

    Variant: the paper's; no deviation."""
    return ctx.dynamics.correct.mean(axis=1)


def stable_from(agree: np.ndarray) -> np.ndarray:
    """From an (N, E) boolean trajectory: the first epoch e (1-based) such that it holds at e and at
    every later epoch; E + 1 where it fails at the last epoch."""
    agree = np.asarray(agree, dtype=bool)
    # suffix[:, e] = holds at every epoch >= e; monotone in e, so counting the epochs where it
    # fails gives the first epoch where it holds.
    suffix = np.flip(np.logical_and.accumulate(np.flip(agree, axis=1), axis=1), axis=1)
    return agree.shape[1] - suffix.sum(axis=1) + 1


def learned_epochs(correct: np.ndarray) -> np.ndarray:
    """Label-based iteration learned from an (N, E) correctness trajectory: the first epoch after
    which the sample is classified as its label for the rest of training; E + 1 if wrong at the end."""
    return stable_from(correct)


def settled_epochs(pred: np.ndarray) -> np.ndarray:
    """Baldock's iteration learned from an (N, E) trajectory of predicted classes: the first epoch
    after which the prediction equals the final prediction pred[:, -1] at every later epoch
    (at most E, since the last epoch always agrees with itself)."""
    pred = np.asarray(pred)
    return stable_from(pred == pred[:, -1:])


@register(label_blind=True, higher_is_harder=True, family="training dynamics", citation=BALDOCK)
def iteration_learned(ctx):
    """Iteration learned (Baldock, Maennel & Neyshabur 2021), here in epochs: min{e : pred_e' = pred_E for all
    e' >= e}, pred_e the argmax of the training forward pass at epoch e (ctx.dynamics.pred) and pred_E
    the network's final prediction; higher = learned later = harder.

    Variant: the paper's, against the network's final prediction, not the label. Baldock et al. train
    to (near) zero training error, where the final prediction is the label and this equals
    ``iteration_learned_label``. When training stops short of that, a sample whose final prediction
    is not its label (e.g. a mislabelled sample never fitted, predicted as its true class all along)
    settles early and is scored easy: the score does not read y. Deviation: epochs instead of SGD
    iterations (one measurement per sample per epoch)."""
    return settled_epochs(ctx.dynamics.pred).astype(float)


@register(higher_is_harder=True, family="training dynamics",
          citation="Baldock, Maennel & Neyshabur 2021 (iteration learned), label-based as in Toneva et al. 2019 "
                   "(learned = classified correctly)")
def iteration_learned_label(ctx):
    """Label-based iteration learned (the common adaptation of Baldock et al. 2021, with Toneva et al. 2019's
    "learned" = classified as the label): min{e : correct_e' = 1 for all e' >= e}, correct_e the training
    forward pass's argmax == y at epoch e; never learned (wrong at the last epoch) = E + 1 (maximal);
    higher = harder.

    Variant: compares with the observed label rather than the final prediction, so a sample the
    network never fits to its label ranks hardest; it equals ``iteration_learned`` wherever the
    final prediction is the label."""
    return learned_epochs(ctx.dynamics.correct).astype(float)


@register(higher_is_harder=True, needs={"eval_dynamics"}, family="ambiguity",
          citation="Seedat et al. 2022, Data-IQ: Characterizing subgroups with heterogeneous outcomes in tabular data "
                   "(NeurIPS)")
def dataiq_aleatoric(ctx):
    """Data-IQ aleatoric uncertainty (Seedat et al. 2022): (1/E) sum_e p_y,e (1 - p_y,e), p_y,e the probability of
    the (observed) label from a clean pass over the whole training set after epoch e (eval mode, no
    augmentation, the epoch's final weights: ctx.eval_dynamics); higher = more ambiguous.

    It measures ambiguity, not hardness: Data-IQ's hard subgroup is low confidence with LOW aleatoric
    uncertainty (where mislabelled samples gather); high aleatoric uncertainty marks the ambiguous
    subgroup. Registered with family "ambiguity" and higher = more ambiguous.

    Variant: the paper's, with the per-epoch models of one training run as its checkpoints. As in the
    authors' code (github.com/vanderschaarlab/Data-IQ, ``DataIQ_Torch``: ``on_epoch_end`` puts the
    network in eval mode and records p_y for every training sample under no_grad; ``aleatoric`` is
    mean(p (1 - p)) over the epochs), the probabilities come from that clean pass, not from the training
    forward pass (augmentation, batch statistics, weights that change within the epoch), which the
    ``dynamics`` methods read. No deviation."""
    p = ctx.eval_dynamics.p_y
    return (p * (1.0 - p)).mean(axis=1)
