import numpy as np
import pytest
import torch

from bench.dynamics import DynamicsRecorder
from bench.recipes import Recipe
from bench.train import augment, train
from methods.training_dynamics import forgetting_counts


def _stream(n=24, classes=5, epochs=4, batch=7, seed=0):
    """A scripted stream of (epoch, indices, logits) as a trainer would produce it."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            yield epoch, idx, y, torch.randn(len(idx), classes, generator=g) * 3


def test_aum_equals_the_reference_aum_package(tmp_path):
    aum_package = pytest.importorskip("aum")
    from methods.training_dynamics import aum

    n, epochs = 24, 4
    calculator = aum_package.AUMCalculator(str(tmp_path), compressed=True)
    recorder, y, last_epoch = None, None, 0
    for epoch, idx, y, logits in _stream(n=n, epochs=epochs):
        recorder = recorder or DynamicsRecorder(y, epochs)
        if epoch != last_epoch:
            recorder.end_epoch(last_epoch)
            last_epoch = epoch
        recorder.update(idx, logits)
        calculator.update(logits, y[idx], idx.tolist())
    recorder.end_epoch(last_epoch)

    class Ctx:
        dynamics = recorder.result()

    ours = aum(Ctx)
    reference = np.array([calculator.sums[i] / calculator.counts[i] for i in range(n)])
    assert np.max(np.abs(ours - reference)) <= 1e-5


def test_recorded_statistics_match_hand_computation():
    y = torch.tensor([0, 1, 2])
    logits = torch.tensor([[2.0, 1.0, 0.0], [3.0, 1.0, 0.5], [0.0, 0.0, 4.0]])
    recorder = DynamicsRecorder(y, epochs=1)
    recorder.update(torch.tensor([2, 0]), logits[[2, 0]])
    recorder.update(torch.tensor([1]), logits[[1]])
    recorder.end_epoch(0)
    d = recorder.result()
    assert d.margin[:, 0] == pytest.approx([1.0, -2.0, 4.0])  # z_y - max other
    p = torch.softmax(logits, 1)[torch.arange(3), y].numpy()
    assert d.p_y[:, 0] == pytest.approx(p, rel=1e-6)
    assert d.loss[:, 0] == pytest.approx(-np.log(p), rel=1e-6)
    assert list(d.correct[:, 0]) == [True, False, True] and list(d.pred[:, 0]) == [0, 0, 2]


def test_forgetting_counts_on_a_scripted_trajectory():
    correct = np.array([
        [1, 0, 1, 0, 1, 1],  # forgotten twice
        [0, 0, 1, 1, 1, 1],  # learned once, never forgotten
        [1, 1, 1, 1, 1, 0],  # forgotten at the end
        [0, 0, 0, 0, 0, 0],  # never learned: maximal (E = 6)
    ], dtype=bool)
    assert list(forgetting_counts(correct)) == [2, 0, 1, 6]


def test_recording_does_not_change_training_and_matches_a_frozen_model():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [8]}, epochs=3, batch_size=16, lr=0.0, momentum=0.0,
                    weight_decay=0.0, checkpoints=1)
    result = train(recipe, x, y, 3, seed=0)
    with torch.no_grad():
        logits = result.model(x)
    expected_loss = torch.nn.functional.cross_entropy(logits, y, reduction="none").numpy()
    # lr = 0: the model never moves, so every epoch records the same statistics as a clean pass
    for e in range(3):
        assert result.dynamics.loss[:, e] == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    plain = train(recipe, x, y, 3, seed=0, record=False)
    assert all(torch.equal(a, b) for a, b in zip(result.model.parameters(), plain.model.parameters()))


def test_same_seed_same_numbers_and_different_seed_differs():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 2, (64,), generator=g)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [16]}, epochs=4, batch_size=16, checkpoints=2)
    a = train(recipe, x, y, 2, seed=7, checkpoint_epochs=recipe.checkpoint_epochs())
    b = train(recipe, x, y, 2, seed=7)
    c = train(recipe, x, y, 2, seed=8)
    assert np.array_equal(a.dynamics.margin, b.dynamics.margin)
    assert not np.array_equal(a.dynamics.margin, c.dynamics.margin)
    assert sorted(a.checkpoints) == recipe.checkpoint_epochs()


def test_eval_dynamics_and_checkpoints_on_request():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 2, (40,), generator=g)
    recipe = Recipe(model="mlp", model_kwargs={"hidden": [8]}, epochs=5, batch_size=8)
    result = train(recipe, x, y, 2, seed=0, eval_every_epoch=True, checkpoint_epochs=[2, 5])
    assert result.eval_dynamics.margin.shape == (40, 5) and sorted(result.checkpoints) == [2, 5]
    model = recipe.build((4,), 2)
    model.load_state_dict(result.checkpoints[5])
    with torch.no_grad():
        final = model(x)
    assert result.eval_dynamics.loss[:, -1] == pytest.approx(
        torch.nn.functional.cross_entropy(final, y, reduction="none").numpy(), rel=1e-5)


def test_flip_crop_augmentation_is_a_shifted_window():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    out = augment(x, "crop", torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    # every output row is a contiguous window of a reflect-padded input row
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for b in range(2):
        found = any(torch.equal(out[b, 0], padded[b, 0, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))
        assert found
