"""The engine: what a track works with. It ties the estimator (pools and cached
training), the scorer (cached method scores) and the store (records) together, and
records which methods failed. It holds no logic of its own beyond record fingerprints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import store as st
from .context import Pool
from .data import Dataset
from .estimation import Estimator
from .executor import InlineExecutor
from .provenance import provenance
from .recipes import Recipe
from .registry import Method
from .scoring import Scorer, ScoreResult, record_fingerprint
from .timing import device_name

__all__ = ["Engine", "ScoreResult"]


@dataclass
class Engine:
    dataset: Dataset
    recipe: Recipe
    methods: list[Method]
    seeds: list[int]
    device: torch.device
    store: st.Store
    options: dict = field(default_factory=dict)
    quiet: bool = False
    executor: object = field(default_factory=InlineExecutor)  # see bench.executor
    sources: object = None  # bench.inject.PlantingSources
    failures: dict = field(default_factory=dict)  # method -> ScoreResult of its first failure

    def __post_init__(self):
        self.estimator = Estimator(self.dataset, self.recipe, self.device, self.store,
                                   self.options.get("pool_size"), self.sources)
        self.scorer = Scorer(self.estimator, self.methods)

    @property
    def device_label(self) -> str:
        return device_name(self.device)

    def pool(self, kind: str = "train", planting: tuple[str, float] | None = None, seed: int = 0) -> Pool:
        return self.estimator.pool(kind, planting, seed)

    def prepare(self, pools: list[tuple[Pool, int]]) -> None:
        """Train, through the executor, every part the selected methods need on these
        (pool, seed) pairs; then scoring finds them cached."""
        needs = frozenset().union(*(m.needs for m in self.methods)) if self.methods else frozenset()
        self.executor.train(self.estimator, pools, needs, quiet=self.quiet)

    def scores(self, pool: Pool, seed: int) -> dict[str, ScoreResult]:
        results = self.scorer.scores(pool, seed)
        for name, result in results.items():
            if result.status != "ok":
                self.failures.setdefault(name, result)
        return results

    # ---- track records ----------------------------------------------------------
    def record_path(self, track: str, config: dict, method: str, seed: int) -> Path:
        return self.store.record_path(self.dataset.key, track, config, method, seed)

    def has_record(self, track: str, config: dict, method: str, seed: int) -> bool:
        """True when the record exists and was made by the current code."""
        path = self.record_path(track, config, method, seed)
        return path.exists() and st.read_json(path).get("fingerprint") == record_fingerprint(track, method)

    def write_record(self, track: str, config: dict, method: str, seed: int, metrics: dict, **extra) -> None:
        st.write_json(self.record_path(track, config, method, seed), {
            "dataset": self.dataset.key, "track": track, "config": config, "method": method, "seed": seed,
            "metrics": metrics, "recipe": self.recipe.to_dict(), "device": self.device_label,
            "fingerprint": record_fingerprint(track, method), "provenance": provenance(), **extra})
