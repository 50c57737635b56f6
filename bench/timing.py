"""Wall time of a block: CUDA events on a GPU (asynchronous kernels), perf_counter on CPU."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class Elapsed:
    seconds: float = 0.0


@contextmanager
def timed(device: torch.device | str = "cpu"):
    """``with timed(device) as t: ...``; afterwards ``t.seconds`` holds the wall time."""
    elapsed = Elapsed()
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield elapsed
        end.record()
        end.synchronize()
        elapsed.seconds = start.elapsed_time(end) / 1000.0
    else:
        start = time.perf_counter()
        yield elapsed
        elapsed.seconds = time.perf_counter() - start


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"
