"""The default recipes on their full datasets: clean test accuracy and seconds per run,
the figures of the README's recipe cards (``python -m pytest tests/benchmarks/test_recipes_full.py
--benchmark-enable -s``). MNIST and Fashion-MNIST are read from ../shared/data."""
import time

import pytest

from bench.data import load_dataset
from bench.recipes import RECIPES
from bench.train import predict_logits, train

#: the bar each default recipe must clear at its default epochs (clean test accuracy)
TARGETS = {"digits": 0.97, "mnist": 0.985, "fashion-mnist": 0.89}


@pytest.mark.parametrize("name", list(TARGETS))
def test_default_recipe_accuracy_on_the_full_dataset(benchmark, name, request):
    root = request.getfixturevalue("shared_data") if name != "digits" else None
    data = load_dataset(name, root) if root else load_dataset(name)
    recipe = RECIPES[name]
    start = time.perf_counter()
    result = benchmark.pedantic(train, args=(recipe, data.x_train, data.y_train, data.num_classes, 0),
                                kwargs={"record": True}, rounds=1, iterations=1)
    seconds = time.perf_counter() - start
    accuracy = float((predict_logits(result.model, data.x_test).argmax(1) == data.y_test).float().mean())
    benchmark.extra_info.update(test_accuracy=accuracy, seconds=seconds, epochs=recipe.epochs)
    print(f"\n{name}: {recipe.model}, {recipe.epochs} epochs, {len(data.y_train)} samples: clean test accuracy "
          f"{100 * accuracy:.2f}%, {seconds:.1f} s per run (recording dynamics)")
    assert accuracy >= TARGETS[name]
