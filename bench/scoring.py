"""Scoring: every selected method on one estimation run, isolated from each other.

A score record (JSON + the score vector in .npz) is reused only while its
fingerprint matches the current code: the method's own fingerprint, plus the
estimation code's when the method reads a trained model. A method that raises,
returns the wrong length or a non-finite value is recorded as failed with its
reason and traceback; the others go on.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from . import store as st
from .context import Context, EstimationRun, Pool
from .estimation import Estimator, parts_for
from .fingerprint import digest, estimation_fingerprint, method_fingerprint, track_fingerprint
from .provenance import provenance
from .registry import Method, check_scores, get_method, list_methods, oriented
from .timing import device_name, timed

log = logging.getLogger("bench")


@dataclass
class ScoreResult:
    method: str
    seed: int
    status: str  # ok | failed
    natural: np.ndarray | None = None  # the method's own units and orientation
    scores: np.ndarray | None = None  # oriented: higher = harder
    error: str = ""
    traceback: str = ""
    cost: dict = field(default_factory=dict)


def score_fingerprint(method: Method) -> str:
    """What a method's scores depend on: its code, and the training code if it reads a model."""
    return digest(method_fingerprint(method), estimation_fingerprint() if parts_for(method.needs) else "")


def record_fingerprint(track: str, method: str) -> str:
    """A record depends on its method's scores and, for a track record, on the track's code.
    A name that is not registered (records a caller wrote for its own scores) has only its name."""
    scores = score_fingerprint(get_method(method)) if method in list_methods() else digest("unregistered", method)
    if track == "scores":
        return scores
    from .tracks import TRACKS

    return digest(scores, track_fingerprint(TRACKS[track].__name__))


@dataclass
class Scorer:
    estimator: Estimator
    methods: list[Method]

    @property
    def store(self) -> st.Store:
        return self.estimator.store

    def _paths(self, pool: Pool, method: Method, seed: int):
        return self.store.score_paths(self.estimator.scope, pool.key, method.name, seed)

    def cached(self, pool: Pool, method: Method, seed: int) -> ScoreResult | None:
        """The stored result, if it is whole, was made by the current code and succeeded."""
        json_path, npz_path = self._paths(pool, method, seed)
        record = st.read_or_none(json_path)
        if record is None or record.get("status") != "ok" or record.get("fingerprint") != score_fingerprint(method):
            return None
        arrays = st.read_or_none(npz_path, st.read_npz)
        if arrays is None or arrays.get("scores") is None or len(arrays["scores"]) != len(pool):
            return None
        natural = arrays["scores"]
        return ScoreResult(method.name, seed, "ok", natural, oriented(method, natural), cost=record["cost"])

    def scores(self, pool: Pool, seed: int) -> dict[str, ScoreResult]:
        """Every selected method's scores on this pool and seed, computing only what is missing."""
        results = {m.name: self.cached(pool, m, seed) for m in self.methods}
        missing = [m for m in self.methods if results[m.name] is None]
        if missing:
            needs = frozenset().union(*(m.needs for m in missing))
            # train before any method's clock starts: the training is shared, and charged separately
            self.estimator.ensure(pool, seed, needs)
            run = self.estimator.run(pool, seed)
            for method in missing:
                results[method.name] = self.score_one(method, run)
        return results

    def score_one(self, method: Method, run: EstimationRun) -> ScoreResult:
        pool, seed = run.pool, run.seed
        json_path, npz_path = self._paths(pool, method, seed)
        record = {"dataset": self.estimator.dataset.key, "track": "scores", "method": method.name, "seed": seed,
                  "config": {"pool": pool.key, "recipe": self.estimator.recipe.key()},
                  "recipe": self.estimator.recipe.to_dict(), "device": device_name(run.device),
                  "higher_is_harder": method.higher_is_harder, "fingerprint": score_fingerprint(method),
                  "provenance": provenance()}
        if "run" in parts_for(method.needs):
            record["estimation"] = self.estimator.quality(pool, seed)
        try:
            torch.manual_seed(seed)  # methods that draw random numbers (random, curvature) are seeded too
            with timed(run.device) as clock:
                natural = check_scores(method, method.fn(Context(run, method.needs, method.name)), len(pool))
        except Exception as error:  # noqa: BLE001 - a failing method must not stop the others
            message = f"{type(error).__name__}: {error}"
            trace = traceback.format_exc()
            log.debug("method %s failed:\n%s", method.name, trace)
            st.write_json(json_path, {**record, "status": "failed", "error": message, "traceback": trace, "cost": {}})
            return ScoreResult(method.name, seed, "failed", error=message, traceback=trace)
        cost = {"scoring_s": clock.seconds, "shared_s": self._shared_seconds(method, pool, seed),
                "standalone_s": clock.seconds + self._training_seconds(method, pool, seed)}
        st.write_npz(npz_path, scores=natural)
        st.write_json(json_path, {**record, "status": "ok", "cost": cost})
        return ScoreResult(method.name, seed, "ok", natural, oriented(method, natural), cost=cost)

    def _training_seconds(self, method: Method, pool: Pool, seed: int) -> float:
        """The training the method needs were it run alone: every part it needs, whole."""
        return sum(self.estimator.training_seconds(pool, seed, part) for part in parts_for(method.needs))

    def _shared_seconds(self, method: Method, pool: Pool, seed: int) -> float:
        """The method's share of the training it needed: each training part's time split
        evenly among the selected methods that needed that part (changes with the company
        a method runs in; ``standalone_s`` does not)."""
        share = 0.0
        for part in parts_for(method.needs):
            users = sum(1 for m in self.methods if part in parts_for(m.needs))
            share += self.estimator.training_seconds(pool, seed, part) / users
        return share
