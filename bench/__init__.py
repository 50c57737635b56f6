"""hardbench: a benchmark suite for hard-sample identification methods."""
from .registry import get_method, list_methods, register, select_methods

__all__ = ["register", "list_methods", "get_method", "select_methods", "score", "results", "load_scores"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``bench.score`` and ``bench.results`` (``bench.api``) and ``bench.load_scores``
    (``bench.release``), imported on first use: methods import ``bench`` for ``register`` and need
    none of the engine."""
    if name in ("score", "results"):
        from . import api

        return getattr(api, name)
    if name == "load_scores":
        from .release import load_scores

        return load_scores
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
