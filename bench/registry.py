"""The method registry: a decorator that records a scoring function, and lookups.

A method turns an estimation context (see `bench.context`) into one score per
sample. It declares its natural orientation; `oriented` flips it so that the
suite only ever sees "higher = harder" scores.

Methods are found through the ``hardbench.methods`` entry-point group: the project's
own ``methods`` package is declared there in ``pyproject.toml``, beside any installed
plugin, so this module never imports the methods that import it.
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable, Iterable

import numpy as np

from .context import NEEDS
from .errors import UnknownName


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    higher_is_harder: bool
    needs: frozenset = field(default_factory=frozenset)
    family: str = "other"
    citation: str = ""
    label_blind: bool = False  # never reads the sample's own label: cannot detect label noise by construction

    @property
    def summary(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


_METHODS: dict[str, Method] = {}


class RegistrationError(ValueError):
    """A method that cannot be registered: unknown needs, or a name already taken."""


def register(name: str | None = None, *, higher_is_harder: bool, needs: Iterable[str] = ("dynamics",),
             family: str = "other", citation: str = "", label_blind: bool = False):
    """Register a hardness identifier.

    >>> @register(higher_is_harder=False, needs={"dynamics"})
    ... def aum(ctx):
    ...     return ctx.dynamics.margin.mean(axis=1)

    The name defaults to the function's name. ``needs`` lists what the runner
    must build (a subset of ``bench.registry.NEEDS``). ``label_blind``: the score never
    reads the sample's own label, so it cannot see label noise; the boards table such a
    method apart on label-noise cells and rank it where it applies.
    """
    needs = frozenset(needs)
    unknown = needs - NEEDS
    if unknown:
        raise RegistrationError(f"unknown needs {sorted(unknown)}; allowed: {sorted(NEEDS)}")

    def decorator(fn: Callable) -> Callable:
        method_name = name or fn.__name__
        if method_name in _METHODS and _METHODS[method_name].fn.__module__ != fn.__module__:
            raise RegistrationError(f"method {method_name!r} is already registered by "
                                    f"{_METHODS[method_name].fn.__module__}; choose another name with @register(name=...)")
        _METHODS[method_name] = Method(method_name, fn, higher_is_harder, needs, family, citation, label_blind)
        return fn

    return decorator


ENTRY_POINTS = "hardbench.methods"
_DISCOVERED: list[bool] = []


def load_builtin_methods() -> None:
    """Import every ``hardbench.methods`` entry point (the built-in methods among them), once."""
    if not _DISCOVERED:
        _DISCOVERED.append(True)
        for entry in sorted(entry_points(group=ENTRY_POINTS), key=lambda e: e.name != "builtin"):
            entry.load()
        if not _METHODS:
            raise RegistrationError(f"no method is registered: the {ENTRY_POINTS!r} entry points are missing; "
                                    "install the project (pip install -e .)")


def load_plugins(modules: Iterable[str] = ()) -> None:
    """The entry points, then plugin modules (``--plugin``), so that a plugin reusing a
    built-in name is caught."""
    load_builtin_methods()
    for module in modules:
        importlib.import_module(module)


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch pattern (``"dyn*"``), sorted."""
    load_builtin_methods()
    return sorted(n for n in _METHODS if fnmatch.fnmatchcase(n, pattern))


def get_method(name: str) -> Method:
    load_builtin_methods()
    if name not in _METHODS:
        raise UnknownName("method", name, sorted(_METHODS))
    return _METHODS[name]


def select_methods(patterns: str | Iterable[str]) -> list[Method]:
    """Methods matching comma-separated names or fnmatch patterns; each pattern must match."""
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen: dict[str, Method] = {}
    for pattern in patterns:
        names = list_methods(pattern) if any(c in pattern for c in "*?[") else [get_method(pattern).name]
        if not names:
            raise UnknownName("method pattern", pattern, list_methods())
        for n in names:
            chosen[n] = _METHODS[n]
    return list(chosen.values())


class MethodFailed(RuntimeError):
    """A method raised or returned something that is not a valid score vector."""


def check_scores(method: Method, raw, n: int) -> np.ndarray:
    """Validate a method's raw output: length n, finite, not constant."""
    scores = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=np.float64).reshape(-1)
    if scores.shape != (n,):
        raise MethodFailed(f"{method.name} returned {scores.size} scores for {n} samples")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise MethodFailed(f"{method.name} returned {int(bad.sum())} non-finite scores (NaN or inf)")
    if np.ptp(scores) == 0:
        raise MethodFailed(f"{method.name} returned a constant score; it cannot rank samples")
    return scores


def oriented(method: Method, natural_scores: np.ndarray) -> np.ndarray:
    """Scores flipped, if needed, so that higher = harder. Metrics only ever see these."""
    return natural_scores if method.higher_is_harder else -natural_scores
