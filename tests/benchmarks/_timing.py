"""Both sides of a speed ratio, measured in one test.

``ours`` is the pytest-benchmark measurement (``benchmark.pedantic``); every baseline runs
once right before each of its rounds (warm-up included) and is timed with the same timer,
so load drift on a shared machine hits both sides alike. Ratios are of the minimum times.

Timer: wall-clock time on a 2-core machine shared with other processes measures mostly the
neighbours (min-of-7 ratios of identical code drifted by 10-35% under a load average of 9), so
when pytest-benchmark's timer is its default (``time.perf_counter``) and torch runs on one thread,
both sides are timed with ``time.process_time``, this process's CPU time (every workload here
runs in-process, on the CPU). With more threads CPU time would hide a parallel speed-up (and count
threads spinning at barriers), so wall-clock time is kept. ``--benchmark-timer`` with any other
timer is used as given for both sides.
"""
from __future__ import annotations

import time
from typing import Callable

import torch


def interleaved(benchmark, ours: Callable, baselines: dict[str, Callable], rounds: int, warmup_rounds: int = 1):
    """Returns ``(ours_result, {name: min seconds}, {name: last result})``; ours' minimum is
    ``benchmark.stats.stats.min``."""
    timer = getattr(benchmark, "_timer", time.perf_counter)
    if timer is time.perf_counter and torch.get_num_threads() == 1:
        timer = benchmark._timer = time.process_time
    benchmark.extra_info["timer"] = getattr(timer, "__name__", str(timer))
    times: dict[str, list[float]] = {name: [] for name in baselines}
    outputs: dict[str, object] = {}

    def run_baselines():
        for name, fn in baselines.items():
            start = timer()
            outputs[name] = fn()
            times[name].append(timer() - start)

    result = benchmark.pedantic(ours, setup=run_baselines, rounds=rounds, warmup_rounds=warmup_rounds)
    return result, {name: min(t) for name, t in times.items()}, outputs


def ours_min(benchmark) -> float:
    return benchmark.stats.stats.min
