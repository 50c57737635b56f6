"""The engine: what a track works with. It ties the estimator (pools and cached
training), the scorer (cached method scores) and the store (records) together, runs
tracks through one path that skips finished work, and records which methods failed.

Every record lives in the engine's *scope*: ``<results>/<label>/<id>``, where the label
names the configuration in words (``mnist-n20000-curvbim``: the board folder)
and the id hashes everything that defines it: the dataset's content hash, the recipe
and the pool size. Below the scope, pool keys hash the loading and planting code, and
record configs hold every track setting that affects them; fingerprints of the code
that made a record are checked on read.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import store as st
from .context import Pool
from .data import Dataset
from .estimation import Estimator
from .fingerprint import digest
from .profiles import PROFILES
from .provenance import provenance
from .recipes import Recipe, recipe_label
from .registry import Method
from .scoring import Scorer, ScoreResult, record_fingerprint
from .timing import device_name

__all__ = ["Engine", "ScoreResult", "configuration_label"]

log = logging.getLogger("bench")


def configuration_label(dataset: Dataset, recipe: Recipe, pool_size: int | None) -> str:
    """A configuration in words, safe in file names: the dataset, the subset size and the recipe
    where it is not the dataset's default, e.g. ``mnist-n10000``, ``mnist-n20000-curvbim``."""
    base = dataset.name.split("-", 1)[0] if dataset.name.startswith("cifar") and "-" in dataset.name else dataset.name
    words = [dataset.key, f"n{pool_size}" if pool_size else "", recipe_label(recipe, base)]
    return "-".join(w for w in words if w)


@dataclass
class Engine:
    dataset: Dataset
    recipe: Recipe
    methods: list[Method]
    seeds: list[int]
    device: torch.device
    store: st.Store
    settings: dict = field(default_factory=dict)  # track name -> its Settings (defaults where absent)
    quiet: bool = False
    executor: object = None  # see bench.executor; None trains in this process
    sources: object = None  # bench.inject.PlantingSources
    pool_size: int | None = None
    profile: str = "default"
    failures: dict = field(default_factory=dict)  # method -> ScoreResult of its first failure
    _warned: set = field(default_factory=set)

    def __post_init__(self):
        self.label = configuration_label(self.dataset, self.recipe, self.pool_size)
        self.scope = self.store.scope(self.label, digest(self.dataset.fingerprint, self.recipe.key(),
                                                         str(self.pool_size))[:10])
        self.estimator = Estimator(self.dataset, self.recipe, self.device, self.store, self.pool_size, self.sources,
                                   self.scope, self.quiet)
        self.scorer = Scorer(self.estimator, self.methods)

    @property
    def device_label(self) -> str:
        return device_name(self.device)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    # ---- pools, training, scores ---------------------------------------------------
    def pool(self, kind: str = "train", planting: tuple[str, float] | None = None, seed: int = 0) -> Pool:
        return self.estimator.pool(kind, planting, seed)

    def prepare(self, pools: list[tuple[Pool, int]]) -> None:
        """Train, through the executor, every part the selected methods need on these
        (pool, seed) pairs; then scoring finds them cached."""
        needs = frozenset().union(*(m.needs for m in self.methods)) if self.methods else frozenset()
        if self.executor is None:
            for pool, seed in pools:
                self.estimator.ensure(pool, seed, needs)
        else:
            self.executor.train(self.estimator, pools, needs, quiet=self.quiet)

    def scores(self, pool: Pool, seed: int) -> dict[str, ScoreResult]:
        results = self.scorer.scores(pool, seed)
        for name, result in results.items():
            if result.status != "ok":
                self.failures.setdefault(name, result)
        return results

    def final_model(self, pool: Pool, seed: int) -> torch.nn.Module:
        """The estimation network of one seed (trained first where missing), in eval mode."""
        self.estimator.ensure(pool, seed, {"final_model"})
        return self.estimator.run(pool, seed).final_model

    def protocol_dir(self, pool: Pool, recipe: Recipe) -> Path:
        return self.store.protocol_dir(self.scope, pool.key, recipe.key())

    # ---- tracks ------------------------------------------------------------------------
    def track_settings(self, track):
        return self.settings.get(track.NAME) or track.Settings()

    def run_track(self, track) -> list:
        """Plan the track's records, compute those without a current record, and write the
        board manifest (what ``bench report`` turns into one board). Returns the plan."""
        settings = self.track_settings(track)
        units = track.plan(self, settings)
        todo = [u for u in units if not self.has_record(track.NAME, u.config, u.method, u.seed)]
        if todo:
            track.run(self, settings, todo)
        if units:
            self.write_board(track, settings, units, computed=bool(todo))
        return units

    def write_board(self, track, settings, units, computed: bool = True) -> None:
        """Write the board's manifest, naming this run, unless it exists and this run computed
        nothing for it: the board then stays credited to the run that made its records."""
        paths = sorted({str(self.record_path(track.NAME, u.config, u.method, u.seed).relative_to(self.scope))
                        for u in units})
        key = digest(track.NAME, repr(sorted(settings.to_dict().items())), *paths)[:12]
        path = self.scope / "_boards" / f"{track.NAME}-{key}.json"
        if not computed and st.read_or_none(path) is not None:
            return
        st.write_json(path, {
            "track": track.NAME, "label": self.label, "dataset": self.dataset.key,
            "dataset_fingerprint": self.dataset.fingerprint, "layout": self.dataset.layout_note,
            "recipe": self.recipe.to_dict(), "pool_size": self.pool_size, "pool_sizes": self.pool_sizes(),
            "seeds": list(self.seeds),
            "methods": sorted(m.name for m in self.methods), "profile": self.profile,
            "settings": settings.to_dict(), "settings_changed": settings.differences(),
            "settings_beyond_profile": settings.differences(track.Settings.build(
                PROFILES.get(self.profile, {}).get(track.NAME, {}))), "records": paths,
            "provenance": provenance()})

    def pool_sizes(self) -> dict[str, int]:
        """How many samples each kind of pool holds (``Estimator.pool``: a stratified subset of
        ``pool_size`` where set) and how many the splits hold whole: what a board's header states."""
        train, test = len(self.dataset.y_train), len(self.dataset.y_test)
        kept = lambda total: min(self.pool_size, total) if self.pool_size else total  # noqa: E731
        return {"train": kept(train), "train_whole": train, "test": test, "pooled": kept(train + test)}

    # ---- track records ----------------------------------------------------------------
    def record_path(self, track: str, config: dict, method: str, seed: int) -> Path:
        return self.store.record_path(self.scope, track, config, method, seed)

    def has_record(self, track: str, config: dict, method: str, seed: int) -> bool:
        """True when the record exists, is whole and was made by the current code."""
        record = st.read_or_none(self.record_path(track, config, method, seed))
        return record is not None and record.get("fingerprint") == record_fingerprint(track, method)

    def write_record(self, track: str, config: dict, method: str, seed: int, metrics: dict, **extra) -> None:
        st.write_json(self.record_path(track, config, method, seed), {
            "dataset": self.dataset.key, "track": track, "config": config, "method": method, "seed": seed,
            "metrics": metrics, "recipe": self.recipe.to_dict(), "device": self.device_label,
            "fingerprint": record_fingerprint(track, method), "provenance": provenance(), **extra})
