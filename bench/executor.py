"""Executors: where the independent units of work run.

A unit is one training part (``run``, ``folds`` or ``early``) of one (pool, seed). Every unit writes its own records to the store, atomically, and
skips itself when they are already there and current, so the store is the only
point of coordination: a unit run twice, or by two workers at once, is harmless, and
a rerun after a failed or cancelled job computes only what is missing.

- none: this process, in order (the default; ``Engine.prepare``);
- ``ProcessExecutor``: ``--jobs N`` local worker processes, each with its share of the cores;
- ``SubmititExecutor``: a SLURM cluster (or submitit's local executor) through submitit;
  units are grouped into at most ``array_parallelism`` jobs so that scheduling
  overhead does not dominate, and the driver waits for all of them.

Workers rebuild the engine from the run's ``RunConfig`` (``bench.config.build_engine``)
and the pool from its recipe (``Pool.spec``) rather than receiving tensors, so a unit
is a few bytes.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from .config import RunConfig, build_engine
from .estimation import parts_for

Unit = tuple  # (pool spec, seed, part)


def make_executor(config: RunConfig):
    """The executor a run's settings ask for; None trains in this process."""
    settings = config.executor
    if settings.kind == "inline":
        return None if settings.jobs <= 1 else ProcessExecutor(config, settings.jobs, settings.threads)
    return SubmititExecutor(config, str(Path(config.results) / "_submitit"), settings.kind,
                            settings.array_parallelism, dict(settings.slurm), settings.threads)


def run_units(config: RunConfig, units: list[Unit], threads: int | None = None) -> int:
    """Train units in this process (a worker's entry point); returns how many it ran."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    engine = build_engine(config)
    for pool_spec, seed, part in units:
        engine.estimator.ensure(engine.pool(*pool_spec), seed, _PART_NEEDS[part], parts=[part])
    return len(units)


_PART_NEEDS = {"run": {"dynamics", "checkpoints"}, "folds": {"folds"}, "early": {"early_runs"},
               "ensemble": {"ensemble"}}


def training_units(estimator, pools, needs) -> list[Unit]:
    return [(pool.spec, seed, part) for pool, seed in pools for part in parts_for(needs)
            if not estimator.is_ready(pool, seed, part, "eval_dynamics" in needs)]


@dataclass
class ProcessExecutor:
    """``jobs`` local processes; threads per worker set so that the total fits the machine."""
    spec: RunConfig
    jobs: int = 2
    threads: int = field(default=0)

    def train(self, estimator, pools, needs, quiet: bool = True) -> None:
        units = training_units(estimator, pools, needs)
        if not units:
            return
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.jobs)
        # spawn: a forked torch process can deadlock in its thread pools
        with ProcessPoolExecutor(self.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_units, self.spec, [u], threads) for u in _longest_first(units)]
            for future in tqdm(futures, desc="training units", disable=quiet):
                future.result()


@dataclass
class SubmititExecutor:
    """Units on a cluster through submitit. ``cluster="local"`` runs them as local
    processes with the same code path (what the tests use); ``"slurm"`` submits SLURM
    array jobs with ``parameters`` (partition, time, gpus_per_task, extra)."""
    spec: RunConfig
    folder: str
    cluster: str = "slurm"
    array_parallelism: int = 16
    parameters: dict = field(default_factory=dict)
    threads: int = 0  # torch threads per job (0: torch's default for the job's cores)

    def train(self, estimator, pools, needs, quiet: bool = True) -> None:
        import submitit

        units = training_units(estimator, pools, needs)
        if not units:
            return
        executor = submitit.AutoExecutor(folder=str(Path(self.folder)), cluster=self.cluster)
        executor.update_parameters(**self.parameters)
        if self.cluster == "slurm":
            executor.update_parameters(slurm_array_parallelism=self.array_parallelism)
        groups = _groups(_longest_first(units), self.array_parallelism)
        with executor.batch():
            jobs = [executor.submit(run_units, self.spec, group, self.threads) for group in groups]
        for job in tqdm(jobs, desc="cluster jobs", disable=quiet):
            job.result()  # raises with the job's own traceback if it failed


def _longest_first(units: list[Unit]) -> list[Unit]:
    """Estimation runs first, K-fold models next: the longest units start earliest."""
    order = {"run": 0, "ensemble": 1, "folds": 2, "early": 3}
    return sorted(units, key=lambda u: order.get(u[2], 4))


def _groups(units: list[Unit], count: int) -> list[list[Unit]]:
    """At most ``count`` non-empty groups, dealt round-robin so that long and short units mix."""
    count = max(1, min(count, len(units)))
    return [units[i::count] for i in range(count)]
