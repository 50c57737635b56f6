import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _restore_registry():
    """Methods a test registers are gone after it: no test sees another's registrations."""
    from bench import registry

    registry.load_builtin_methods()
    saved = dict(registry._METHODS)
    yield
    registry._METHODS.clear()
    registry._METHODS.update(saved)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "MNIST" / "raw").exists():
        pytest.skip(f"real-data tests need MNIST in {SHARED_DATA}")
    return SHARED_DATA


def run_cli(*args, cwd=None, env=None, **kwargs):
    """Run `python -m bench ...` in a subprocess; returns the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), (env or {}).get("PYTHONPATH")]))}
    full_env.update({k: v for k, v in (env or {}).items() if k != "PYTHONPATH"})
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, **kwargs)
