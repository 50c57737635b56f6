"""Identifiers read from one model state: the early checkpoint (EL2N) or the final model."""
import torch
import torch.nn.functional as F

from bench import register
from bench.train import predict_logits

from bench.dynamics import margins


def el2n_scores(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|| softmax(z) - onehot(y) ||_2 per row."""
    return (torch.softmax(logits.float(), dim=1) - F.one_hot(y, logits.shape[1]).float()).norm(dim=1)


@register(higher_is_harder=True, needs={"checkpoints"}, family="final model",
          citation="Paul et al. 2021, Deep Learning on a Data Diet (NeurIPS)")
def el2n(ctx):
    """EL2N (Paul et al. 2021): || softmax(f(x; theta_t)) - onehot(y) ||_2 with theta_t the checkpoint at the early
    epoch t = ctx.early_epoch (10% of training). Paul et al. average over initialisations;
    here one seed's score, the suite averages seeds."""
    return el2n_scores(predict_logits(ctx.model_at(ctx.early_epoch), ctx.x), ctx.y)


@register(higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024, Investigating the Impact of Hard Samples on Accuracy Reveals In-class Data Imbalance")
def margin_final(ctx):
    """Final-model margin (Pukowski & Lu 2024): z_y - max_{k != y} z_k on the trained model (eval mode): the
    confidence identifier in logit units; negative = misclassified."""
    return margins(ctx.final_logits, ctx.y)


@register(higher_is_harder=False, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024 (confidence identifier); Hendrycks & Gimpel 2017 (max-logit baseline)")
def max_logit(ctx):
    """Final-model maximum logit (Pukowski & Lu 2024; Hendrycks & Gimpel 2017): max_k z_k,
    a label-free confidence; low = less confident."""
    return ctx.final_logits.max(dim=1).values


@register(higher_is_harder=True, needs={"final_model"}, family="final model",
          citation="Pukowski & Lu 2024 (energy identifier); Liu et al. 2020, Energy-based Out-of-distribution Detection")
def energy(ctx):
    """Final-model free energy (Liu et al. 2020; Pukowski & Lu 2024): E(x) = -log sum_k exp(z_k),
    temperature 1; high = hard (atypical)."""
    return -torch.logsumexp(ctx.final_logits.float(), dim=1)
