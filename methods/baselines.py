"""Baselines every identifier must beat."""
import numpy as np

from bench import register


@register(higher_is_harder=True, needs=(), family="baseline", citation="—")
def random(ctx):
    """Random baseline: s_i ~ U(0, 1) independently, drawn from a generator seeded by the estimation seed;
    the chance level of every metric (no paper: detection AUROC 0.5 in expectation)."""
    return np.random.default_rng([ctx.seed, 0xBA5E]).random(len(ctx))
