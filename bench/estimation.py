"""Estimation: the pools hardness is estimated on, and the cached training runs on them.

Training is the only expensive step, so it is cached in the results store and
shared by every method. Per (pool, recipe, seed) there are three independent
parts, each trained once, each a unit of work an executor may run anywhere:

- ``run``: the estimation run, with dynamics recorded and checkpoints kept;
- ``folds``: K-fold cross-fitting, ``recipe.fold_repeats`` partitions, no recording;
- ``early``: ``recipe.early_runs`` short runs from fresh initialisations to the early epoch;
- ``ensemble``: ``recipe.early_runs - 1`` more full runs from fresh initialisations, which
  with the estimation run make the K networks that the ensemble variants average over.

A part's ``meta.json`` holds the fingerprint of the code that trained it; a part
made by other code is trained again (see ``bench.fingerprint``). Every part lives in
its scope (the dataset's content hash, the recipe, the pool size: ``bench.store``),
under its pool's key, which names the pool and hashes the code that made it
(``pool_fingerprint``): an edited loader or planter trains again.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split

from . import store as st
from .context import EstimationRun, FoldPredictions, Pool
from .data import SPLIT_SEED, Dataset
from .dynamics import Dynamics
from .fingerprint import digest, estimation_fingerprint, module_fingerprint
from .progress import Progress
from .inject import PlantingSources, default_sources, plant
from .recipes import Recipe
from .registry import MethodFailed
from .timing import device_name, timed
from .train import predict_logits, train

#: the needs that the estimation run itself provides
RUN_NEEDS = frozenset({"dynamics", "eval_dynamics", "checkpoints", "final_model", "features"})
PARTS = ("run", "folds", "early", "ensemble")


def parts_for(needs) -> list[str]:
    """The training parts a set of needs requires (an ensemble includes the estimation run)."""
    needs = frozenset(needs)
    return [p for p, wanted in (("run", needs & RUN_NEEDS or "ensemble" in needs), ("folds", "folds" in needs),
                                ("early", "early_runs" in needs), ("ensemble", "ensemble" in needs)) if wanted]


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers with ``np.random.SeedSequence``: distinct inputs
    give independent seeds, with no arithmetic that could make two of them collide."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] >> 1)


FOLD_STREAM, EARLY_STREAM, ENSEMBLE_STREAM = 0xF01D, 0xEA21, 0xE25E  # tags that keep the seed streams apart
LOADING_CODE, PLANTING_CODE = ("bench.data", "bench.cifar_jpeg"), ("bench.inject",)


def pool_fingerprint(planted: bool) -> str:
    """The code that made a pool's arrays: the loader, and the planter for a planted pool."""
    return digest(module_fingerprint(LOADING_CODE), module_fingerprint(PLANTING_CODE) if planted else "")[:8]


@dataclass
class Estimator:
    dataset: Dataset
    recipe: Recipe
    device: torch.device
    store: st.Store
    pool_size: int | None = None
    sources: PlantingSources | None = None  # what some planters need (far-ood images, a confusion matrix)
    scope: Path | None = None  # this configuration's folder in the store (``Engine.scope``)
    quiet: bool = True  # no progress bars
    _clean: dict = field(default_factory=dict, repr=False)  # the clean pool's K-fold models, once read

    def __post_init__(self):
        if self.scope is None:  # an estimator on its own (tests, benchmarks): one scope for its dataset
            self.scope = self.store.scope(self.dataset.key, self.dataset.fingerprint[:10])
        if self.sources is None:
            self.sources = default_sources(self.dataset)
        if self.sources.confusion is None and self.dataset.x_train.ndim > 2:
            # label-pair on images follows a clean model's confusions; vectors use a fixed permutation
            self.sources = replace(self.sources, confusion=self.clean_confusion)
        if self.sources.clean_predict is None:  # label-instance, near-ood's calibration, the planting checks
            self.sources = replace(self.sources, clean_predict=self.clean_predict)

    # ---- pools ------------------------------------------------------------------
    def pool(self, kind: str = "train", planting: tuple[str, float] | None = None, seed: int = 0) -> Pool:
        """``train``: the train split; ``pooled``: train + test merged. With a planting
        (type, rate), the train split corrupted with that seed. ``pool_size``
        (``--pool-size``) first keeps a stratified random subset of that many samples of
        the split (fixed seed), planted pools included. The key names the pool in words
        (``pooled-n20000``, ``label-uniform-0.1-s0``) and ends with ``pool_fingerprint``."""
        spec = (kind, planting, seed if planting else 0)
        if kind == "pooled":
            x, y = self.dataset.pooled()
        elif kind == "train":
            x, y = self.dataset.x_train, self.dataset.y_train
        else:
            raise ValueError(f"unknown pool kind {kind!r}; valid: train, pooled")
        rows = self._sized_rows(y)
        size = f"-n{len(rows)}" if len(rows) < len(y) else ""
        x, y = x[torch.as_tensor(rows)], y[torch.as_tensor(rows)]
        if planting is None:
            return Pool(f"{kind}{size}-{pool_fingerprint(False)}", x.to(self.device), y.to(self.device),
                        self.dataset.num_classes, spec=spec, rows=rows)
        kind_name, rate = planting
        planted = plant(kind_name, x, y, self.dataset.num_classes, rate, seed, self.sources)
        return Pool(f"{kind_name}-{rate}-s{seed}{size}-{pool_fingerprint(True)}", planted.x.to(self.device),
                    planted.y.to(self.device), self.dataset.num_classes, planted.mask, spec, rows)

    def _sized_rows(self, y: torch.Tensor) -> np.ndarray:
        """The rows a pool keeps: all of them, or a stratified subset of ``pool_size``."""
        if not self.pool_size or self.pool_size >= len(y):
            return np.arange(len(y))
        keep, _ = train_test_split(np.arange(len(y)), train_size=self.pool_size, stratify=y.numpy(),
                                   random_state=SPLIT_SEED)
        return np.sort(keep)

    def clean_confusion(self) -> np.ndarray:
        """(C, C) out-of-sample confusion counts (rows: label, columns: prediction) of the
        K-fold models on the clean train split (seed 0, one partition: the ``reference`` part)."""
        pool = self.pool("train")
        if not self.is_ready(pool, 0, "reference"):
            self.train_part(pool, 0, "reference")
        probs = self._read(pool, 0, "reference", "folds.npz", st.read_npz)["probs"][0]
        c = pool.num_classes
        return np.bincount(pool.y.cpu().numpy() * c + probs.argmax(1), minlength=c * c).reshape(c, c)

    def clean_predict(self, x: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        """(len(rows), C) probabilities for inputs ``x`` of the clean train pool's rows ``rows``
        from the K-fold model (seed 0, one partition: the ``reference`` part) that held each row
        out: a clean model that never trained on them."""
        from .train import fold_model_predict

        pool = self.pool("train")
        if "fold_models" not in self._clean:
            if not self.is_ready(pool, 0, "reference"):
                self.train_part(pool, 0, "reference")
            self._clean["fold_models"] = self._read(pool, 0, "reference", "fold_models.pt", self._load_torch)
            self._clean["fold"] = self._read(pool, 0, "reference", "folds.npz", st.read_npz)["fold"]
        fold_recipe = replace(self.recipe, checkpoints=1, epochs=self.recipe.fold_epochs or self.recipe.epochs)
        probs = fold_model_predict(self._clean["fold_models"]["states"], self._clean["fold"], fold_recipe,
                                   self.dataset.input_shape, self.dataset.num_classes, x.to(self.device), rows)
        return probs.cpu().numpy()

    # ---- the cache ----------------------------------------------------------------
    def folder(self, pool: Pool, seed: int, part: str) -> Path:
        return self.store.estimation_dir(self.scope, pool.key, seed, "" if part == "run" else part)

    def _meta(self, pool: Pool, seed: int, part: str) -> dict | None:
        """The part's metadata if it is cached, whole, and was made by the current code."""
        meta = st.read_or_none(self.folder(pool, seed, part) / "meta.json")
        return meta if meta is not None and meta.get("fingerprint") == estimation_fingerprint() else None

    def is_ready(self, pool: Pool, seed: int, part: str, with_eval: bool = False) -> bool:
        meta = self._meta(pool, seed, part)
        return meta is not None and (part != "run" or meta["eval_dynamics"] or not with_eval)

    def training_seconds(self, pool: Pool, seed: int, part: str) -> float:
        meta = self._meta(pool, seed, part)
        return meta["train_seconds"] if meta else 0.0

    def _write_meta(self, pool: Pool, seed: int, part: str, seconds: float, **extra) -> None:
        st.write_json(self.folder(pool, seed, part) / "meta.json", {
            "train_seconds": seconds, "device": device_name(self.device), "fingerprint": estimation_fingerprint(),
            "recipe": self.recipe.to_dict(), **extra})

    # ---- training -----------------------------------------------------------------
    def ensure(self, pool: Pool, seed: int, needs, parts: list[str] | None = None) -> None:
        """Train every part ``needs`` requires (or only ``parts``) that is not cached yet. A K-fold
        part that cannot be built (a class too small) is left out: the methods that need it fail."""
        needs = frozenset(needs)
        for part in parts or parts_for(needs):
            if self.is_ready(pool, seed, part, "eval_dynamics" in needs):
                continue
            try:
                self.train_part(pool, seed, part, with_eval="eval_dynamics" in needs)
            except MethodFailed:
                if part != "folds":
                    raise

    def train_part(self, pool: Pool, seed: int, part: str, with_eval: bool = False) -> None:
        {"run": self._train_run, "folds": self._train_folds, "early": self._train_early,
         "ensemble": self._train_ensemble, "reference": self._train_reference}[part](pool, seed, with_eval)

    def _progress(self, desc: str, epochs: int) -> Progress:
        return Progress(desc, epochs, self.quiet)

    def _train_run(self, pool: Pool, seed: int, with_eval: bool) -> None:
        folder = self.folder(pool, seed, "run")
        progress = self._progress(f"estimation run, seed {seed}, {pool.key}", self.recipe.epochs)
        with timed(self.device) as clock:
            result = train(self.recipe, pool.x, pool.y, pool.num_classes, seed, record=True,
                           eval_every_epoch=with_eval, checkpoint_epochs=self.recipe.checkpoint_epochs(),
                           progress=progress)
        progress.close()
        arrays = result.dynamics.to_arrays()
        if result.eval_dynamics is not None:
            arrays.update(result.eval_dynamics.to_arrays("eval_"))
        st.write_npz(folder / "dynamics.npz", lrs=result.lrs, **arrays)
        st.atomic_write(folder / "checkpoints.pt", lambda tmp: torch.save(result.checkpoints, tmp))
        # a clean pass of the final model (eval mode, no augmentation), not the running training-pass accuracy
        pred = predict_logits(result.model, pool.x).argmax(1)
        train_accuracy = float((pred == pool.y).float().mean())
        self._write_meta(pool, seed, "run", clock.seconds, eval_dynamics=with_eval,
                         final_train_accuracy=train_accuracy, test_accuracy=self._test_accuracy(result.model))

    def _test_accuracy(self, model) -> float | None:
        """Accuracy on the dataset's test split (clean labels): shows an underfit recipe."""
        if len(self.dataset.y_test) == 0:
            return None
        pred = predict_logits(model, self.dataset.x_test.to(self.device)).argmax(1).cpu()
        return float((pred == self.dataset.y_test).float().mean())

    def _train_reference(self, pool: Pool, seed: int, with_eval: bool = False) -> None:
        """One K-fold partition of a clean pool (part ``reference``): the out-of-sample clean
        model behind label-pair's confusions, label-instance, near-ood's calibration and the
        planting checks; a third of the ``folds`` part's models, which none of them need."""
        self._train_folds(pool, seed, repeats=1, part="reference")

    def _train_folds(self, pool: Pool, seed: int, with_eval: bool = False, repeats: int | None = None,
                     part: str = "folds") -> None:
        """K-fold cross-fitting, ``recipe.fold_repeats`` times: every sample's probabilities
        come from a model that never trained on it. Fold models record nothing; they train
        together where that pays (``bench.train.train_models``), each with its own seed and
        data order. Their state dicts are kept in ``fold_models.pt`` (``states[r][f]``: the
        model of partition r trained without fold f; ``pool_rows``: the train-split row of each
        pool position), read by ``bench.train.fold_model_predict``."""
        from .train import train_models

        y = pool.y.cpu().numpy()
        smallest = int(np.bincount(y, minlength=pool.num_classes).min())
        k = min(self.recipe.folds, smallest)
        if k < 2:
            raise MethodFailed(f"K-fold needs at least 2 samples per class; the smallest class has {smallest}")
        repeats = repeats or self.recipe.fold_repeats
        probs = np.zeros((repeats, len(y), pool.num_classes), dtype=np.float32)
        fold = np.zeros((repeats, len(y)), dtype=np.int64)
        fold_recipe = replace(self.recipe, checkpoints=1, epochs=self.recipe.fold_epochs or self.recipe.epochs)
        splits, seeds = [], []
        for r in range(repeats):
            splitter = StratifiedKFold(k, shuffle=True, random_state=derived_seed(FOLD_STREAM, seed, r))
            for f, (train_idx, held_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
                splits.append((r, f, train_idx, held_idx))
                seeds.append(derived_seed(FOLD_STREAM, seed, r, f))
        progress = self._progress(f"{len(splits)} K-fold models, seed {seed}, {pool.key}",
                                  len(splits) * fold_recipe.epochs)
        with timed(self.device) as clock:
            states = train_models(fold_recipe, pool.x, pool.y, pool.num_classes, [s[2] for s in splits], seeds,
                                  progress=progress)
            progress.close()
            model = fold_recipe.build(tuple(pool.x.shape[1:]), pool.num_classes).to(pool.x.device).eval()
            for (r, f, _, held_idx), state in zip(splits, states):
                model.load_state_dict(state)
                held = torch.as_tensor(held_idx, device=pool.x.device)
                probs[r, held_idx] = torch.softmax(predict_logits(model, pool.x[held]).float(), 1).cpu().numpy()
                fold[r, held_idx] = f
        folder = self.folder(pool, seed, part)
        st.write_npz(folder / "folds.npz", probs=probs, fold=fold)
        nested = [[states[r * k + f] for f in range(k)] for r in range(repeats)]
        st.atomic_write(folder / "fold_models.pt",
                        lambda tmp: torch.save({"states": nested, "pool_rows": torch.as_tensor(
                            np.arange(len(y)) if pool.rows is None else np.asarray(pool.rows))}, tmp))
        self._write_meta(pool, seed, part, clock.seconds, k=k)

    def _train_early(self, pool: Pool, seed: int, with_eval: bool = False) -> None:
        """``recipe.early_runs`` runs from fresh seeds, each stopped after the early epoch
        with the learning rate it would have had in a full run (trained together where that
        pays, ``bench.train.train_models``)."""
        from .train import train_models

        runs = self.recipe.early_runs
        progress = self._progress(f"{runs} early runs, seed {seed}, {pool.key}", runs * self.recipe.early_epoch)
        with timed(self.device) as clock:
            rows = [np.arange(len(pool))] * runs
            states = train_models(self.recipe, pool.x, pool.y, pool.num_classes, rows,
                                  [derived_seed(EARLY_STREAM, seed, k) for k in range(runs)],
                                  stop_after=self.recipe.early_epoch, progress=progress)
        progress.close()
        folder = self.folder(pool, seed, "early")
        st.atomic_write(folder / "early.pt", lambda tmp: torch.save(states, tmp))
        self._write_meta(pool, seed, "early", clock.seconds, runs=len(states), epoch=self.recipe.early_epoch)

    def _train_ensemble(self, pool: Pool, seed: int, with_eval: bool = False) -> None:
        """``recipe.early_runs - 1`` full runs from fresh seeds, recorded like the estimation run;
        only what the ensemble variants read is kept: each run's AUM (mean training margin) and
        its final model's logits (eval mode)."""
        runs = max(self.recipe.early_runs - 1, 1)
        progress = self._progress(f"{runs} ensemble runs, seed {seed}, {pool.key}", runs * self.recipe.epochs)
        aum, logits = [], []
        with timed(self.device) as clock:
            for k in range(runs):
                result = train(self.recipe, pool.x, pool.y, pool.num_classes, derived_seed(ENSEMBLE_STREAM, seed, k),
                               record=True, progress=progress)
                aum.append(result.dynamics.margin.mean(axis=1))
                logits.append(predict_logits(result.model, pool.x).float().cpu().numpy())
        progress.close()
        st.write_npz(self.folder(pool, seed, "ensemble") / "ensemble.npz", aum=np.stack(aum), logits=np.stack(logits))
        self._write_meta(pool, seed, "ensemble", clock.seconds, runs=runs)

    # ---- reading ------------------------------------------------------------------
    def _read(self, pool: Pool, seed: int, part: str, name: str, read, with_eval: bool = False):
        """A cached part's file; a missing or damaged one (said in one line) is trained again."""
        path = self.folder(pool, seed, part) / name
        value = st.read_or_none(path, read)
        if value is None:
            self.train_part(pool, seed, part, with_eval)
            value = read(path)
        return value

    def _load_torch(self, path: Path):
        return torch.load(path, map_location=self.device, weights_only=True)

    def run(self, pool: Pool, seed: int) -> EstimationRun:
        """The estimation run of one seed, its parts read lazily from the cache (trained
        first where missing)."""
        def arrays():
            with_eval = self.is_ready(pool, seed, "run", True)
            self.ensure(pool, seed, {"dynamics"})
            return self._read(pool, seed, "run", "dynamics.npz", st.read_npz, with_eval)

        cache: dict = {}

        def dynamics_arrays():
            if "arrays" not in cache:
                cache["arrays"] = arrays()
            return cache["arrays"]

        def eval_dynamics():
            self.ensure(pool, seed, {"eval_dynamics"})
            cache.pop("arrays", None)
            return Dynamics.from_arrays(dynamics_arrays(), "eval_")

        def checkpoints():
            self.ensure(pool, seed, {"checkpoints"})
            return self._read(pool, seed, "run", "checkpoints.pt", self._load_torch,
                              self.is_ready(pool, seed, "run", True))

        def folds():
            self.ensure(pool, seed, {"folds"})
            path = self.folder(pool, seed, "folds") / "folds.npz"
            if not path.exists():  # ensure() could not build them; say why
                self._train_folds(pool, seed)
            data = self._read(pool, seed, "folds", "folds.npz", st.read_npz)
            return FoldPredictions(data["probs"], data["fold"])

        def early_runs():
            self.ensure(pool, seed, {"early_runs"})
            return self._read(pool, seed, "early", "early.pt", self._load_torch)

        def ensemble():
            self.ensure(pool, seed, {"ensemble"})
            return self._read(pool, seed, "ensemble", "ensemble.npz", st.read_npz)

        loaders = {"dynamics": lambda: Dynamics.from_arrays(dynamics_arrays()), "eval_dynamics": eval_dynamics,
                   "lrs": lambda: dynamics_arrays()["lrs"], "checkpoints": checkpoints, "folds": folds,
                   "early_runs": early_runs, "ensemble": ensemble}
        return EstimationRun(pool, seed, self.recipe, self.device, loaders)

    def quality(self, pool: Pool, seed: int) -> dict:
        """Clean test accuracy and final training accuracy of the estimation run, if trained."""
        meta = self._meta(pool, seed, "run") or {}
        return {k: meta.get(k) for k in ("test_accuracy", "final_train_accuracy")}
