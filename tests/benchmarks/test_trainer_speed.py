"""Trainer speed, measured with pytest-benchmark (run with ``--benchmark-enable``).

Two comparisons, each in its own group so the table shows their ratio:
- training with dynamics recording vs the same training without it (target: <= 5% overhead);
- our device-resident trainer vs a plain ``DataLoader`` loop over the same tensors and model.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from bench.data import load_dataset
from bench.recipes import Recipe, recipe_for
from bench.train import make_optimizer, seed_everything, train

WORKLOADS = {
    "digits-mlp": lambda: (load_dataset("digits"), recipe_for("digits", epochs=5)),
    "mnist-shaped-cnn": lambda: (_random_images(1024), Recipe(model="cnn", epochs=1, batch_size=128, checkpoints=1)),
}


def _random_images(n):
    g = torch.Generator().manual_seed(0)
    from bench.data import Dataset
    return Dataset("random-28x28", torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g),
                   torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64), 10)


def dataloader_loop(recipe: Recipe, x, y, num_classes, seed):
    """The baseline: the same model and optimiser, batches from a shuffling DataLoader."""
    seed_everything(seed)
    model = recipe.build(tuple(x.shape[1:]), num_classes)
    optimizer = make_optimizer(model, recipe)
    loader = DataLoader(TensorDataset(x, y), batch_size=recipe.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("variant", ["recording", "no-recording", "dataloader"])
def test_training_speed(benchmark, workload, variant):
    data, recipe = WORKLOADS[workload]()
    x, y = data.x_train, data.y_train
    benchmark.group = f"training: {workload}"
    if variant == "dataloader":
        model = benchmark.pedantic(dataloader_loop, args=(recipe, x, y, data.num_classes, 0), rounds=5, warmup_rounds=1)
    else:
        result = benchmark.pedantic(train, args=(recipe, x, y, data.num_classes, 0),
                                    kwargs={"record": variant == "recording"}, rounds=5, warmup_rounds=1)
        assert (result.dynamics is not None) == (variant == "recording")
        model = result.model
    assert all(torch.isfinite(p).all() for p in model.parameters())
