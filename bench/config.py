"""One run, described by one frozen dataclass, and the engine built from it.

A ``RunConfig`` holds everything that defines a run: the dataset, the recipe, the
seeds, the methods, each selected track's validated settings, the pool size, where it
runs and where results go. The command line builds one (and validates every track's
settings) before anything is loaded or trained; worker processes and SLURM jobs
receive the same object and rebuild the engine with ``build_engine``.

Profiles (``--profile``, ``bench.profiles``): a seed count, a recipe override and
per-track settings, applied beneath the user's own ``--option`` values.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import cifar_jpeg
from .data import TORCHVISION_FOLDERS, Dataset, load_dataset
from .datacache import cached_dataset, default_cache_dir, source_files
from .errors import UsageError
from .profiles import PROFILES
from .recipes import Recipe

@dataclass(frozen=True)
class DatasetSpec:
    """How to load the dataset: plain values a worker can rebuild it from."""
    name: str = "digits"
    data_root: str = "data"
    download: bool = False
    noise: str | None = None
    layout: str = "auto"

    def load(self) -> Dataset:
        """The dataset; a torchvision one through the dataset cache (``bench.datacache``)."""
        def load():
            return load_dataset(self.name, self.data_root, self.download, noise=self.noise, layout=self.layout)

        if self.name == cifar_jpeg.NAME:  # one file, decoded once; every label set its own cache entry
            sources = source_files(self.data_root, [str(cifar_jpeg.FILE.parent)])
            return cached_dataset(f"{self.name}-{self.noise or 'clean'}", load, sources, default_cache_dir())
        folder = TORCHVISION_FOLDERS.get(self.name)
        sources = source_files(self.data_root, [folder, "cscores"]) if folder else []
        return cached_dataset(self.name, load, sources, default_cache_dir()) if sources else load()


@dataclass(frozen=True)
class ExecutorSettings:
    """Where training units run: ``inline`` (this process, or ``jobs`` local workers),
    submitit's ``local`` executor, or ``slurm``."""
    kind: str = "inline"
    jobs: int = 1
    threads: int = 0  # torch threads per process (0: the cores, divided among the workers)
    slurm: dict = field(default_factory=dict)  # submitit parameters
    array_parallelism: int = 16

    def validate(self) -> None:
        if self.kind not in ("inline", "local", "slurm"):
            raise UsageError(f"The executor must be one of inline, local, slurm. Got {self.kind!r} instead.")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {self.jobs}")
        if self.threads < 0:
            raise UsageError(f"--threads must be at least 1 (or 0 for the default), got {self.threads}")


@dataclass(frozen=True)
class RunConfig:
    dataset: DatasetSpec
    recipe: Recipe
    seeds: int = 3
    methods: tuple[str, ...] = ()
    tracks: tuple = ()  # one validated settings object per selected track, in run order
    pool_size: int | None = None  # --subset: a stratified random subset of every pool
    profile: str = "default"
    device: str = "auto"
    results: str = "results"
    plugins: tuple[str, ...] = ()
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    quiet: bool = True

    def validate(self) -> None:
        """Every check that needs no data: raised before anything is loaded, trained or written."""
        if self.seeds < 1:
            raise UsageError(f"--seeds must be at least 1, got {self.seeds}")
        if self.pool_size is not None and self.pool_size < 2:
            raise UsageError(f"--subset must be at least 2, got {self.pool_size}")
        self.executor.validate()
        for settings in self.tracks:
            settings.validate()


def profile_settings(profile: str) -> dict:
    if profile not in PROFILES:
        from .errors import UnknownName

        raise UnknownName("profile", profile, PROFILES)
    return PROFILES[profile]


def build_engine(config: RunConfig, executor=None):
    """The engine of a run: the dataset loaded and checked, the methods looked up."""
    import numpy as np

    from . import registry
    from .engine import Engine
    from .inject import default_sources
    from .store import Store
    from .train import resolve_device

    registry.load_plugins(config.plugins)
    dataset = config.dataset.load()
    methods = [registry.get_method(name) for name in config.methods]
    for settings in config.tracks:
        settings.check_data(dataset, config.recipe)
    if any("folds" in m.needs for m in methods):
        counts = np.bincount(dataset.y_train.numpy(), minlength=dataset.num_classes)
        if counts.min() < 2:
            raise UsageError(f"class {int(counts.argmin())} has {int(counts.min())} training sample(s); the K-fold "
                             f"methods (cleanlab, holdout) need at least 2 per class (K = {config.recipe.folds} "
                             "is reduced to fit)")
    return Engine(dataset, config.recipe, methods, list(range(config.seeds)), resolve_device(config.device),
                  Store(config.results), settings={s.NAME: s for s in config.tracks}, quiet=config.quiet,
                  executor=executor, sources=default_sources(dataset, config.dataset.data_root),
                  pool_size=config.pool_size, profile=config.profile)
