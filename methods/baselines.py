"""Baselines every identifier must beat."""
import numpy as np

from bench import register


@register(higher_is_harder=True, needs=(), family="baseline", citation="—")
def random(ctx):
    """Uniform random scores from the estimation seed: the chance level of every metric."""
    return np.random.default_rng([ctx.seed, 0xBA5E]).random(len(ctx))
