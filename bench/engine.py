"""The engine: pools, cached estimation runs, and method scoring.

Training is the only expensive step, so one estimation run per (pool, recipe,
seed) is trained once, cached on disk, and serves every method; a method added
later reuses it. Scores are records of their own (track ``scores``), so a rerun
only scores what is missing.
"""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold

from . import store as st
from .context import Context, FoldPredictions, Pool
from .data import Dataset
from .dynamics import Dynamics
from .inject import plant
from .recipes import Recipe
from .registry import Method, MethodFailed, check_scores, oriented
from .provenance import provenance
from .timing import device_name, timed
from .train import predict_logits, train

log = logging.getLogger("bench")

TRAINING_NEEDS = frozenset({"dynamics", "eval_dynamics", "checkpoints", "final_model", "features"})


@dataclass
class ScoreResult:
    method: str
    seed: int
    status: str  # ok | failed
    natural: np.ndarray | None = None  # the method's own units and orientation
    scores: np.ndarray | None = None  # oriented: higher = harder
    error: str = ""
    cost: dict = field(default_factory=dict)


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
    failures: dict = field(default_factory=dict)  # method -> first error

    # ---- pools ------------------------------------------------------------------
    def pool(self, kind: str = "train", planting: tuple[str, float] | None = None, seed: int = 0) -> Pool:
        """``train``: the train split; ``pooled``: train + test merged. With a planting
        (type, rate), the train split corrupted with that seed. ``options["pool_size"]``
        (``--pool-size``) keeps a stratified random subset of that many samples of an
        unplanted pool (fixed seed; the key says so, e.g. ``pooled-20000``)."""
        if kind == "pooled":
            x, y = self.dataset.pooled()
            return self._sized(Pool("pooled", x.to(self.device), y.to(self.device), self.dataset.num_classes))
        x, y = self.dataset.x_train, self.dataset.y_train
        if planting is None:
            return self._sized(Pool("train", x.to(self.device), y.to(self.device), self.dataset.num_classes))
        kind_name, rate = planting
        planted = plant(kind_name, x, y, self.dataset.num_classes, rate, seed)
        return Pool(f"{kind_name}-{rate}-s{seed}", planted.x.to(self.device), planted.y.to(self.device),
                    self.dataset.num_classes, planted.mask)

    def _sized(self, pool: Pool) -> Pool:
        size = self.options.get("pool_size")
        if not size or size >= len(pool):
            return pool
        from sklearn.model_selection import train_test_split

        from .data import SPLIT_SEED
        keep, _ = train_test_split(np.arange(len(pool)), train_size=size, stratify=pool.y.cpu().numpy(),
                                   random_state=SPLIT_SEED)
        keep = torch.as_tensor(np.sort(keep), device=pool.x.device)
        return Pool(f"{pool.key}-{size}", pool.x[keep], pool.y[keep], pool.num_classes)

    @property
    def device_label(self) -> str:
        return device_name(self.device)

    def _estimation_dir(self, pool: Pool, seed: int, tag: str = "") -> Path:
        return self.store.root / st.slug(self.dataset.name) / "_estimation" / pool.key / self.recipe.key() / f"seed{seed}{tag}"

    # ---- estimation runs --------------------------------------------------------
    def estimation(self, pool: Pool, seed: int, needs: frozenset) -> Context:
        """The estimation context for one seed, trained now or loaded from the cache."""
        with_eval = "eval_dynamics" in needs
        folder = self._estimation_dir(pool, seed)
        meta_path = folder / "meta.json"
        cached = meta_path.exists() and (st.read_json(meta_path)["eval_dynamics"] or not with_eval)
        if not cached and needs & TRAINING_NEEDS:
            with timed(self.device) as clock:
                result = train(self.recipe, pool.x, pool.y, pool.num_classes, seed, record=True,
                               eval_every_epoch=with_eval, checkpoint_epochs=self.recipe.checkpoint_epochs())
            arrays = result.dynamics.to_arrays()
            if result.eval_dynamics is not None:
                arrays.update(result.eval_dynamics.to_arrays("eval_"))
            st.write_npz(folder / "dynamics.npz", lrs=result.lrs, **arrays)
            st.atomic_write(folder / "checkpoints.pt", lambda tmp: torch.save(result.checkpoints, tmp))
            st.write_json(meta_path, {"train_seconds": clock.seconds, "device": self.device_label,
                                      "eval_dynamics": with_eval, "recipe": self.recipe.to_dict()})
            cached = True
        if not cached:  # a method that needs no training (e.g. random)
            return Context(pool, seed, self.recipe, self.device, fold_builder=lambda: self.folds(pool, seed))
        arrays = st.read_npz(folder / "dynamics.npz")
        checkpoints = torch.load(folder / "checkpoints.pt", map_location=self.device, weights_only=True)
        return Context(pool, seed, self.recipe, self.device, dynamics=Dynamics.from_arrays(arrays),
                       eval_dynamics=Dynamics.from_arrays(arrays, "eval_") if "eval_margin" in arrays else None,
                       checkpoints=checkpoints, lrs=arrays["lrs"], fold_builder=lambda: self.folds(pool, seed))

    def training_seconds(self, pool: Pool, seed: int) -> float:
        meta = self._estimation_dir(pool, seed) / "meta.json"
        return st.read_json(meta)["train_seconds"] if meta.exists() else 0.0

    def folds(self, pool: Pool, seed: int) -> FoldPredictions:
        """K-fold cross-fitting, ``recipe.fold_repeats`` times: every sample's probabilities
        come from a model that never trained on it."""
        folder = self._estimation_dir(pool, seed, "-folds")
        if (folder / "folds.npz").exists():
            arrays = st.read_npz(folder / "folds.npz")
            return FoldPredictions(arrays["probs"], arrays["fold"])
        y = pool.y.cpu().numpy()
        k = min(self.recipe.folds, int(np.bincount(y).min()))
        if k < 2:
            raise MethodFailed(f"K-fold needs at least 2 samples per class; the smallest class has {np.bincount(y).min()}")
        probs = np.zeros((self.recipe.fold_repeats, len(y), pool.num_classes), dtype=np.float32)
        fold = np.zeros((self.recipe.fold_repeats, len(y)), dtype=np.int64)
        fold_recipe = replace(self.recipe, checkpoints=1)
        with timed(self.device) as clock:
            for r in range(self.recipe.fold_repeats):
                splitter = StratifiedKFold(k, shuffle=True, random_state=seed * 1000 + r)
                for f, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
                    train_idx, held_idx = torch.as_tensor(train_idx), torch.as_tensor(held_idx)
                    model = train(fold_recipe, pool.x[train_idx], pool.y[train_idx], pool.num_classes,
                                  seed=10_000 + seed * 100 + r * 10 + f, record=False).model
                    probs[r, held_idx] = torch.softmax(predict_logits(model, pool.x[held_idx]), 1).cpu().numpy()
                    fold[r, held_idx] = f
        st.write_npz(folder / "folds.npz", probs=probs, fold=fold)
        st.write_json(folder / "meta.json", {"train_seconds": clock.seconds, "device": self.device_label})
        return FoldPredictions(probs, fold)

    def folds_seconds(self, pool: Pool, seed: int) -> float:
        meta = self._estimation_dir(pool, seed, "-folds") / "meta.json"
        return st.read_json(meta)["train_seconds"] if meta.exists() else 0.0

    # ---- scoring ----------------------------------------------------------------
    def _score_paths(self, pool: Pool, method: Method, seed: int) -> tuple[Path, Path]:
        json_path = self.store.record_path(self.dataset.name, "scores", {"pool": pool.key, "recipe": self.recipe.key()},
                                           method.name, seed)
        return json_path, json_path.with_suffix(".npz")

    def scores(self, pool: Pool, seed: int) -> dict[str, ScoreResult]:
        """Every selected method's scores on this pool and seed, computing only what is missing."""
        results, missing = {}, []
        for method in self.methods:
            json_path, npz_path = self._score_paths(pool, method, seed)
            record = st.read_json(json_path) if json_path.exists() else {}
            if record.get("status") == "ok":
                natural = st.read_npz(npz_path)["scores"]
                results[method.name] = ScoreResult(method.name, seed, "ok", natural, oriented(method, natural),
                                                   cost=record["cost"])
            else:
                missing.append(method)
        if missing:
            needs = frozenset().union(*(m.needs for m in missing))
            ctx = self.estimation(pool, seed, needs)
            if "folds" in needs:  # train the K-fold models before any method's clock starts: they are shared
                try:
                    ctx.folds
                except MethodFailed:
                    pass  # each fold-using method then fails with the reason
            for method in missing:
                results[method.name] = self._score_one(method, ctx, pool, seed)
        for name, result in results.items():
            if result.status != "ok":
                self.failures.setdefault(name, result.error)
        return results

    def _score_one(self, method: Method, ctx: Context, pool: Pool, seed: int) -> ScoreResult:
        json_path, npz_path = self._score_paths(pool, method, seed)
        record = {"dataset": self.dataset.name, "track": "scores", "method": method.name, "seed": seed,
                  "config": {"pool": pool.key, "recipe": self.recipe.key()}, "recipe": self.recipe.to_dict(),
                  "device": self.device_label, "higher_is_harder": method.higher_is_harder}
        try:
            torch.manual_seed(seed)  # methods that draw random numbers (random, curvature) are seeded too
            with timed(self.device) as clock:
                natural = check_scores(method, method.fn(ctx), len(pool))
        except Exception as error:  # noqa: BLE001 - a failing method must not stop the others
            message = f"{type(error).__name__}: {error}"
            log.debug("method %s failed:\n%s", method.name, traceback.format_exc())
            st.write_json(json_path, {**record, "status": "failed", "error": message, "cost": {}})
            return ScoreResult(method.name, seed, "failed", error=message)
        cost = {"scoring_s": clock.seconds, "shared_s": self._shared_seconds(method, pool, seed)}
        st.write_npz(npz_path, scores=natural)
        st.write_json(json_path, {**record, "status": "ok", "cost": cost})
        return ScoreResult(method.name, seed, "ok", natural, oriented(method, natural), cost=cost)

    def _shared_seconds(self, method: Method, pool: Pool, seed: int) -> float:
        """The method's share of the training it needed, split evenly among the
        selected methods that needed the same training."""
        share = 0.0
        if method.needs & TRAINING_NEEDS:
            users = sum(1 for m in self.methods if m.needs & TRAINING_NEEDS)
            share += self.training_seconds(pool, seed) / users
        if "folds" in method.needs:
            users = sum(1 for m in self.methods if "folds" in m.needs)
            share += self.folds_seconds(pool, seed) / users
        return share

    # ---- track records ----------------------------------------------------------
    def record_path(self, track: str, config: dict, method: str, seed: int) -> Path:
        return self.store.record_path(self.dataset.name, track, config, method, seed)

    def write_record(self, track: str, config: dict, method: str, seed: int, metrics: dict, **extra) -> None:
        st.write_json(self.record_path(track, config, method, seed), {
            "dataset": self.dataset.name, "track": track, "config": config, "method": method, "seed": seed,
            "metrics": metrics, "recipe": self.recipe.to_dict(), "device": self.device_label,
            "provenance": provenance(), **extra})

