"""Every usage error is one line on stderr naming what was wrong and what is allowed,
exit status 2, no traceback, and nothing written to the results folder."""
import shutil
import subprocess

import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli

CLASH = '''
from bench import register

@register(higher_is_harder=True, needs=())
def aum(ctx):
    return ctx.y
'''


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def _cases(tmp):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    x_nan = x.copy()
    x_nan[[5, 9]] = np.nan
    (tmp / "not_npz.npz").write_text("hello")
    (tmp / "clash_plugin.py").write_text(CLASH)
    return {
        "not an npz": (["--dataset", f"npz:{tmp / 'not_npz.npz'}"], "is not an .npz archive"),
        "length mismatch": (["--dataset", _npz(tmp / "short.npz", x=x, y=y[:30])], "x and y differ in length (40 vs 30)"),
        "NaN inputs": (["--dataset", _npz(tmp / "nan.npz", x=x_nan, y=y)], "non-finite values"),
        "float labels": (["--dataset", _npz(tmp / "float.npz", x=x, y=y + 0.5)], "labels must be integers"),
        "negative labels": (["--dataset", _npz(tmp / "neg.npz", x=x, y=y - 1)], "labels must lie in"),
        "one class": (["--dataset", _npz(tmp / "one.npz", x=x, y=np.zeros(40, int))], "at least 2 are needed"),
        "class too small for K-fold": (["--dataset", _npz(tmp / "tiny.npz", x=x, y=np.r_[np.zeros(39, int), 1],
                                                          x_test=x[:4], y_test=np.array([0, 1, 0, 1])),
                                        "--methods", "cleanlab"], "need at least 2 per class"),
        "unknown option key": (["--option", "pathways.seedz=10"], "unknown option pathways.seedz"),
        "renamed option key": (["--option", "pathways.seeds=10"], "renamed: use pathways.protocol_seeds"),
        "option value type": (["--option", "pathways.protocol_seeds=many"], "expects a whole number"),
        "unknown track in option": (["--option", "pathway.seeds=2"], "unknown track 'pathway'"),
        "option of a track not selected": (["--option", "pathways.q=0.2"], "the track 'pathways' is not selected"),
        "bad value of a later track": (["--tracks", "detection,resampling", "--option", "resampling.fillers=smot"],
                                       "The 'fillers' parameter of resampling must be a subset of "
                                       "{duplicate, smote, holdout}. Got 'smot' instead."),
        "renamed track": (["--tracks", "methods"], "the track 'methods' is now called 'meta'"),
        "renamed flag": (["--pool-size", "500"], "--pool-size is now --subset"),
        "ambiguous image layout": (["--dataset", _npz(tmp / "images.npz", x=rng.normal(size=(40, 3, 4, 3)), y=y)],
                                   "--layout channels-first"),
        "plugin import failure": (["--plugin", "no_such_module_here"], "cannot import plugin"),
        "plugin name clash": (["--plugin", "clash_plugin"], "already registered"),
        "bad --jobs": (["--jobs", "0"], "--jobs must be at least 1"),
    }


CASES = ["not an npz", "length mismatch", "NaN inputs", "float labels", "negative labels", "one class",
         "class too small for K-fold", "unknown option key", "renamed option key", "option value type",
         "unknown track in option", "option of a track not selected", "bad value of a later track", "renamed track", "renamed flag",
         "ambiguous image layout", "plugin import failure", "plugin name clash", "bad --jobs"]


@pytest.mark.parametrize("case", CASES)
def test_usage_error_is_one_line_exit_2_and_writes_nothing(tmp_path, case, capsys, monkeypatch):
    """In this process (the command line's own code path, without a new interpreter per case);
    the first case also through a real ``python -m bench`` process."""
    from bench.cli import main

    cases = _cases(tmp_path)
    assert set(cases) == set(CASES)
    args, expected = cases[case]
    results = tmp_path / "results"
    argv = ["run", "--quiet", "--seeds", "1", "--epochs", "1", "--results", str(results), *map(str, args),
            "--leaderboards", str(tmp_path / "lb")]
    if case == CASES[0]:
        result = run_cli(*argv, env={"PYTHONPATH": str(tmp_path)})
        code, stderr = result.returncode, result.stderr
    else:
        monkeypatch.syspath_prepend(str(tmp_path))
        code, stderr = main(argv), capsys.readouterr().err
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hardbench: error: "), stderr
    assert expected in lines[0]
    assert "Traceback" not in stderr
    assert not results.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_usage_error(tmp_path):
    result = run_cli("run", "--device", "cuda", "--results", tmp_path / "res")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "--device cuda" in result.stderr and "--device cpu" in result.stderr


def test_verbose_prints_failed_methods_tracebacks(tmp_path):
    (tmp_path / "boom_plugin.py").write_text(
        "from bench import register\n\n@register(higher_is_harder=True, needs=())\ndef boom(ctx):\n"
        "    raise RuntimeError('boom')\n")
    args = ["run", "--quiet", "--seeds", "1", "--epochs", "2", "--methods", "boom,random", "--plugin", "boom_plugin",
            "--option", "detection.types=label-uniform", "--results", tmp_path / "res", "--leaderboards", tmp_path / "lb"]
    quiet = run_cli(*args, env={"PYTHONPATH": str(tmp_path)})
    assert quiet.returncode == 1 and "boom: RuntimeError: boom" in quiet.stderr and "Traceback" not in quiet.stderr
    verbose = run_cli(*args, "-v", env={"PYTHONPATH": str(tmp_path)})
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr and "raise RuntimeError('boom')" in verbose.stderr


@pytest.mark.skipif(shutil.which("hardbench") is None, reason="the hardbench console script is not installed")
def test_console_script_loads_plugins_from_the_current_directory(tmp_path):
    (tmp_path / "cwd_plugin.py").write_text(
        "from bench import register\n\n@register(higher_is_harder=True, needs=())\ndef from_cwd(ctx):\n"
        "    return ctx.y\n")
    for command in (["hardbench"], ["python", "-m", "bench"]):
        result = subprocess.run([*command, "list", "--plugin", "cwd_plugin"], cwd=tmp_path, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        assert "from_cwd" in result.stdout.split()


def test_readme_plugin_example_leaves_the_readme_unchanged(tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = readme.split("# my_module.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_module.py").write_text(example)
    (tmp_path / "README.md").write_text(readme)
    result = run_cli("run", "--plugin", "my_module", "--methods", "my_aum,aum,random", "--tracks", "detection",
                     "--seeds", "1", "--epochs", "2", "--quiet", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "leaderboards" / "digits-epochs2" / "detection-seeds1.md").exists()
    assert (tmp_path / "README.md").read_text() == readme
