"""Who made an output: command, commit, date, device and library versions."""
from __future__ import annotations

import datetime as dt
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


#: what `bench report --readme` writes: the boards, the README's top five and the docs' generated blocks
GENERATED = ("leaderboards", "README.md", "docs/methods.md", "docs/recipes.md", "docs/scale.md")


def git_commit(root: Path = Path(__file__).resolve().parent.parent) -> str:
    """The checkout's commit, with ``-dirty`` where tracked code differs from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        # generated outputs do not make the code dirty: `bench report --readme` rewrites them
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":!{path}" for path in GENERATED)], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line() -> str:
    program = "python -m bench" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return " ".join([program, *map(shlex.quote, sys.argv[1:])])


def provenance() -> dict:
    return {
        "command": command_line(),
        "commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
