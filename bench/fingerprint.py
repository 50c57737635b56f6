"""Fingerprints: short hashes of the code that made a cached result.

A cached result is valid only while the code that made it is unchanged, so every
record carries the fingerprint of that code and is recomputed when it differs:

- a method's fingerprint hashes its registration (name, orientation, needs, family)
  and the source of its function plus every project function or class it calls,
  followed transitively through module globals (so editing a helper in
  ``methods/_common.py`` rescores exactly the methods that use it);
- the estimation fingerprint hashes the modules that train and record (trainer,
  recorder, models, recipes, estimation): changing any of them retrains;
- a track's fingerprint hashes its module and, transitively, every project function or class
  its functions call (metrics, resampling, protocol helpers), so changed metric code rewrites
  its records wherever that code lives.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import types
from functools import lru_cache

#: the code that decides what an estimation run (and its K-fold and early runs) produces: modules,
#: or ``module:attribute`` where only one class counts (a recipe's values are in its key already,
#: so adding a recipe to the table retrains nothing)
ESTIMATION_MODULES = ("bench.train", "bench.dynamics", "bench.models", "bench.recipes:Recipe", "bench.estimation")
#: the code that decides what a protocol model predicts
PROTOCOL_MODULES = ("bench.train", "bench.models", "bench.recipes:Recipe", "bench.protocol")


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def module_fingerprint(names: tuple[str, ...]) -> str:
    """Hash of the source of the named modules, or of one object with ``module:attribute``."""
    def source(name: str) -> str:
        module, _, attribute = name.partition(":")
        obj = importlib.import_module(module)
        return inspect.getsource(getattr(obj, attribute) if attribute else obj)

    return digest(*(source(n) for n in sorted(names)))


def _is_project_code(obj, own_module: str) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return (isinstance(obj, (types.FunctionType, type))
            and (module == own_module or module.split(".")[0] in ("bench", "methods")))


def _referenced_sources(fn, own_module: str, seen: set) -> list[str]:
    """Source of ``fn`` and, transitively, of the project functions and classes it names."""
    key = (getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)))
    if key in seen:
        return []
    seen.add(key)
    try:
        sources = [inspect.getsource(fn)]
    except (OSError, TypeError):  # defined in a REPL or generated: fall back to its bytecode
        code = getattr(fn, "__code__", None)
        sources = [code.co_code.hex() if code else repr(fn)]
    codes = [fn.__code__] if isinstance(fn, types.FunctionType) else []
    names: set[str] = set()
    while codes:  # nested functions and lambdas name globals too
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    namespace = getattr(fn, "__globals__", None) or vars(sys.modules.get(fn.__module__, types))
    for name in sorted(names):
        obj = namespace.get(name)
        if _is_project_code(obj, own_module):
            sources += _referenced_sources(obj, own_module, seen)
    return sources


def method_fingerprint(method) -> str:
    """Hash of a registered method's registration and the code it runs."""
    registration = repr((method.name, method.higher_is_harder, sorted(method.needs), method.family,
                         method.label_blind))
    return digest(registration, *_referenced_sources(method.fn, method.fn.__module__, set()))


@lru_cache(maxsize=None)
def track_fingerprint(module_name: str) -> str:
    """Hash of a track module's source (every module of a track package) and of the project code
    its functions name, followed transitively (``bench.resample``, ``bench.metrics``, ...)."""
    module = importlib.import_module(module_name)
    modules = [module] + [m for name, m in sorted(sys.modules.items()) if name.startswith(f"{module_name}.")]
    sources, seen = [inspect.getsource(m) for m in modules], set()
    for m in modules:
        for _, obj in sorted(vars(m).items()):
            if isinstance(obj, types.FunctionType) and obj.__module__ == m.__name__:
                sources += _referenced_sources(obj, m.__name__, seen)
    return digest(*sources)


def estimation_fingerprint() -> str:
    return module_fingerprint(ESTIMATION_MODULES)


def protocol_fingerprint() -> str:
    return module_fingerprint(PROTOCOL_MODULES)
