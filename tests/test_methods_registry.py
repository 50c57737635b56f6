"""Every built-in method is documented, cited and runs end to end on a tiny engine."""
import numpy as np
import pytest
import torch

from bench.data import make_blobs
from bench.engine import Engine
from bench.recipes import Recipe
from bench.registry import NEEDS, get_method, list_methods, select_methods
from bench.store import Store
from methods_support import run_cli_in_process, single_thread

ISSUE_METHODS = {"loss", "confidence", "variability", "correctness", "aum", "forgetting", "iteration_learned",
                 "dataiq_aleatoric", "el2n", "margin_final", "max_logit", "energy", "grand", "vog", "curvature",
                 "tracin_self", "prototypicality", "knn_disagreement", "prediction_depth", "stragglers", "cleanlab",
                 "holdout", "random", "el2n_final", "grand_final", "iteration_learned_label", "msp", "curvature_hvp"}


def test_the_issue_methods_are_all_registered():
    assert ISSUE_METHODS <= set(list_methods())


@pytest.mark.parametrize("name", sorted(ISSUE_METHODS))
def test_method_is_documented(name):
    method = get_method(name)
    assert method.needs <= NEEDS
    assert method.summary and method.family and method.citation
    if name != "random":
        assert any(ch.isdigit() for ch in method.citation), "the citation names a year"
        doc = method.fn.__doc__
        assert "Variant" in doc, "the docstring states the variant (and any deviation from the paper)"
        assert any(str(year) in doc for year in range(2015, 2026)), "the docstring cites the paper"


def test_list_details_markdown_names_every_method():
    out = run_cli_in_process("list", "--details", "--markdown")
    assert out.splitlines()[0].startswith("| method")
    for name in ISSUE_METHODS:
        assert f"| {name} " in out


def _tiny_images():
    from bench.data import Dataset

    g = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    x = torch.randn(90, 1, 8, 8, generator=g) + y[:, None, None, None].float()
    return Dataset("tiny-images", x, y, x[:0], y[:0], 3)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_every_method_scores_a_tiny_pool(model):
    if model == "mlp":
        data, kwargs = make_blobs(n=150, dim=4, classes=3), {"hidden": [8, 8]}
    else:
        data, kwargs = _tiny_images(), {"width": 4}
    recipe = Recipe(model=model, model_kwargs=kwargs, epochs=3, batch_size=32, checkpoints=3, folds=2,
                    fold_repeats=1)
    import tempfile

    with tempfile.TemporaryDirectory() as root, single_thread():
        engine = Engine(data, recipe, select_methods("*"), [0], torch.device("cpu"), Store(root), quiet=True)
        results = engine.scores(engine.pool("train"), 0)
    failed = {name: r.error for name, r in results.items() if r.status != "ok"}
    assert not failed
    for result in results.values():
        assert result.scores.shape == (len(data.y_train),) and np.isfinite(result.scores).all()
