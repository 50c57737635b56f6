"""Fakes for the method tests: a Context built by hand, with no training."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.context import NEEDS, Context, EstimationRun, FoldPredictions, Pool
from bench.dynamics import Dynamics
from bench.recipes import Recipe


def dynamics_from(p_y=None, correct=None, margin=None) -> Dynamics:
    """A Dynamics whose unspecified statistics are filled consistently with the given ones."""
    base = next(np.asarray(a, dtype=float) for a in (p_y, correct, margin) if a is not None)
    p_y = np.full(base.shape, 0.5) if p_y is None else np.asarray(p_y, dtype=np.float32)
    correct = (np.asarray(p_y) > 0.5) if correct is None else np.asarray(correct, dtype=bool)
    margin = np.zeros(base.shape, np.float32) if margin is None else np.asarray(margin, dtype=np.float32)
    return Dynamics(margin=margin, p_y=p_y, loss=-np.log(np.clip(p_y, 1e-12, None)), correct=correct,
                    pred=np.zeros(base.shape, dtype=np.int16))


def make_context(x, y, num_classes, *, recipe: Recipe | None = None, dynamics=None, eval_dynamics=None,
                 checkpoints=None, lrs=None, folds: FoldPredictions | None = None, early_runs=None, ensemble=None,
                 seed: int = 0, needs=NEEDS) -> Context:
    """A context over hand-made parts: ``checkpoints`` {epoch: state_dict}, ``early_runs``
    [state_dict, ...], ``folds``, ``dynamics``, ``eval_dynamics``, ``ensemble`` (the extra runs:
    {"aum": (K-1, N), "logits": (K-1, N, C)}); ``needs`` limits what the method may read."""
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    recipe = recipe or Recipe(model="mlp", model_kwargs={"hidden": []}, epochs=max(checkpoints or {1: None}))
    given = {"dynamics": dynamics, "eval_dynamics": eval_dynamics, "checkpoints": checkpoints, "folds": folds, "early_runs": early_runs,
             "ensemble": ensemble, "lrs": None if lrs is None else np.asarray(lrs, dtype=float)}
    run = EstimationRun(Pool("fake", x, y, num_classes), seed, recipe, torch.device("cpu"),
                        **{k: v for k, v in given.items() if v is not None})
    return Context(run, needs, "the method under test")


def linear_state(weight, bias) -> dict:
    """The state_dict of ``mlp(hidden=[])``: a BlockNet whose only block is Flatten, head = Linear."""
    return {"head.weight": torch.as_tensor(weight, dtype=torch.float32),
            "head.bias": torch.as_tensor(bias, dtype=torch.float32)}


class single_thread:
    """Tiny models train faster on one thread, and a second busy process on a 2-core machine
    makes two-thread OpenMP barriers pathologically slow; restores the thread count after."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def run_cli_in_process(*args) -> str:
    """``python -m bench ARGS`` in this process; returns what it printed."""
    import contextlib
    import io

    from bench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def loop_grad_norms(model, x, y):
    """The GraNd reference: one backward pass per sample, ||grad_theta CE||_2."""
    norms = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())))
    return torch.stack(norms)


def rss_status() -> dict[str, int]:
    """This process's current (``VmRSS``) and peak (``VmHWM``) resident memory, in bytes (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
