"""Identifiers read from model states: independent early runs (EL2N) or the final model."""
import torch
import torch.nn.functional as F

from bench import register
from bench.dynamics import margins
from bench.train import predict_logits

from ._common import NO_GRAD_COPIES, sample_chunk

DATA_DIET = "Paul, Ganguli & Dziugaite 2021, Deep Learning on a Data Diet (NeurIPS)"


def el2n_scores(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|| softmax(z) - onehot(y) ||_2 per row."""
    return (torch.softmax(logits.float(), dim=1) - F.one_hot(y, logits.shape[1]).float()).norm(dim=1)


def mean_el2n(models, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N averaged over models: (1/K) sum_k || softmax(f(x; theta_k)) - onehot(y) ||_2, each model's
    logits in no-grad passes of as many samples as the activation budget allows (``sample_chunk``)."""
    return torch.stack([el2n_scores(predict_logits(model, x, sample_chunk(model, x, NO_GRAD_COPIES)), y)
                        for model in models]).mean(dim=0)


@register(higher_is_harder=True, needs={"early_runs"}, family="final model", citation=DATA_DIET)
def el2n(ctx):
    """EL2N (Paul et al. 2021): (1/K) sum_k || softmax(f(x; theta_k)) - onehot(y) ||_2, theta_k the k-th of
    K = ctx.recipe.early_runs networks trained independently from fresh initialisations up to the early
    epoch t = ctx.early_epoch (10% of training), each in eval mode (ctx.early_models).

    Variant: the paper's definition (early in training, averaged over independent initialisations).
    Deviation: K = recipe.early_runs (default 4) instead of the paper's 10 initialisations, to bound
    training cost; the early epoch is 10% of the recipe's epochs (the paper scores CIFAR-10 at epoch
    20 of 200). ``el2n_final`` is the final-model variant."""
    return mean_el2n(ctx.early_models, ctx.x, ctx.y)


@register(higher_is_harder=True, needs={"final_model"}, family="final model", citation=DATA_DIET)
def el2n_final(ctx):
    """Final-model EL2N (after Paul et al. 2021): || softmax(f(x; theta_T)) - onehot(y) ||_2 with theta_T the
    trained network of this estimation run (eval mode, ctx.final_logits).

    Variant: the paper scores early in training and averages over initialisations (``el2n``); scoring
    the fully trained model, one run, is how the prior benchmark (H-CAT) and much data-centric
    practice use EL2N, so both are registered."""
    return el2n_scores(ctx.final_logits, ctx.y)


@register(higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024, Investigating the Impact of Hard Samples on Accuracy Reveals In-class Data Imbalance")
def margin_final(ctx):
    """Final-model margin (Pukowski & Lu 2024): z_y - max_{k != y} z_k, z the logits of the trained network
    (eval mode); negative = misclassified, lower = harder.

    Variant: the classification margin in logit units on the final model, as the paper's margin-based
    identifier; no deviation."""
    return margins(ctx.final_logits, ctx.y)


@register(label_blind=True, higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024, Investigating the Impact of Hard Samples on Accuracy Reveals In-class Data "
                   "Imbalance (confidence identifier); Hendrycks & Gimpel 2017, A Baseline for Detecting "
                   "Misclassified and Out-of-Distribution Examples in Neural Networks (ICLR)")
def msp(ctx):
    """Final-model maximum softmax probability (Hendrycks & Gimpel 2017; Pukowski & Lu 2024):
    max_k softmax(z)_k on the trained network (eval mode, ctx.final_logits); lower = less confident =
    harder.

    Variant: the confidence identifier of Pukowski & Lu. Their code (compute_confidences.py,
    ``compute_confidences_and_energies``: ``torch.max(softmax(outputs), dim=1)``; ranking in
    utils.py, ``identify_hard_samples_with_confidences_or_energies``) trains 20 networks (5
    instances each of LeNet, an MLP, a small CNN and a tanh MLP) and ranks by the maximum softmax
    probability averaged over them. Deviation: here one network, the final model of this estimation
    run (`msp_ens` averages over K networks). Label-free: it never reads y, so a mislabelled sample the
    network fits confidently is scored easy."""
    return torch.softmax(ctx.final_logits.float(), dim=1).max(dim=1).values


@register(label_blind=True, higher_is_harder=False, needs={"ensemble"}, family="final model",
          citation="Pukowski & Lu 2024, Investigating the Impact of Hard Samples on Accuracy Reveals In-class Data "
                   "Imbalance (confidence identifier)")
def msp_ens(ctx):
    """Maximum softmax probability averaged over K networks (Pukowski & Lu 2024):
    (1/K) sum_k max_c softmax(z_k)_c, z_k the final logits (eval mode) of the k-th full training run on
    the pool (this estimation run and K - 1 more from fresh initialisations, K = ctx.recipe.early_runs:
    ctx.ensemble); lower = harder.

    Variant: the paper's confidence identifier, averaged over networks as their code does.
    Deviation: K networks of the recipe's one architecture (default K = 4) instead of their 20
    networks of four architectures (compute_confidences.py), to bound training cost."""
    return torch.softmax(ctx.ensemble.final_logits, dim=2).max(dim=2).values.mean(dim=0)


@register(label_blind=True, higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Hendrycks et al. 2022, Scaling Out-of-Distribution Detection for Real-World Settings (ICML), "
                   "the max-logit score; after Hendrycks & Gimpel 2017's maximum softmax probability baseline")
def max_logit(ctx):
    """Final-model maximum logit (Hendrycks et al. 2022, "MaxLogit"): max_k z_k on the trained network (eval
    mode, ctx.final_logits); lower = less confident = harder.

    Variant: the max-logit out-of-distribution score, which replaces Hendrycks & Gimpel's (2017)
    maximum softmax probability (registered as ``msp``) by the unnormalised maximum logit; no
    deviation. Label-free: it never reads y, so a mislabelled sample the network fits confidently
    is scored easy."""
    return ctx.final_logits.max(dim=1).values


@register(label_blind=True, higher_is_harder=True, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024 (energy identifier); Liu, Wang, Owens & Li 2020, Energy-based "
                   "Out-of-distribution Detection (NeurIPS)")
def energy(ctx):
    """Final-model free energy (Liu et al. 2020; Pukowski & Lu 2024): E(x) = -T log sum_k exp(z_k / T) with
    temperature T = 1 on the trained network (eval mode); higher = harder (atypical).

    Variant: label-free, as in both papers (it never reads y); no deviation."""
    return -torch.logsumexp(ctx.final_logits.float(), dim=1)
