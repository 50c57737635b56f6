"""Protocol models: stacked training equals one-at-a-time training; the cache shares
models between identical subsets; pathway and split subsets are what the protocol says."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.metrics import top_k
from bench.protocol import Cell, ProtocolTrainer, cell_key, train_stacked
from bench.recipes import Recipe
from bench.train import train
from bench.tracks.pathways import pathway_sets, stratified_split


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.pooled()


SMALL = Recipe(model="mlp", model_kwargs={"hidden": [32]}, epochs=2, batch_size=64, lr=0.05)


@pytest.mark.parametrize("recipe", [SMALL, replace(SMALL, batch_size=None, momentum=0.0, weight_decay=0.0,
                                                    schedule="constant", lr=0.1)])
def test_stacked_equals_sequential(digits, recipe):
    x, y = digits
    rng = np.random.default_rng(0)
    cells = [Cell(rng.choice(len(y), 500, replace=False), 1000 + i) for i in range(3)]
    cells.append(Cell(cells[0].indices[::-1].copy(), 7))  # order of the subset must not matter
    _, params = train_stacked(recipe, x, y, 10, cells)
    for i, cell in enumerate(cells):
        idx = torch.as_tensor(np.sort(cell.indices))
        state = train(recipe, x[idx], y[idx], 10, cell.seed, record=False).model.state_dict()
        for name, value in state.items():
            torch.testing.assert_close(params[name][i], value, atol=2e-5, rtol=1e-4)


def test_stacked_shared_full_batch_matches(digits):
    """All cells on one subset, full batch: the input is fed once (vmap in_dims None)."""
    x, y = digits
    recipe = replace(SMALL, batch_size=None, momentum=0.0, weight_decay=0.0, schedule="constant", lr=0.1, epochs=3)
    rows = np.arange(0, len(y), 2)
    cells = [Cell(rows, 1000 + i) for i in range(3)]
    _, params = train_stacked(recipe, x, y, 10, cells)
    for i, cell in enumerate(cells):
        state = train(recipe, x[rows], y[rows], 10, cell.seed, record=False).model.state_dict()
        torch.testing.assert_close(params["head.weight"][i], state["head.weight"], atol=2e-5, rtol=1e-4)
    assert not torch.equal(params["head.weight"][0], params["head.weight"][1])  # seeds differ


def test_stacked_needs_equal_sizes(digits):
    x, y = digits
    with pytest.raises(ValueError, match="equal training-set sizes"):
        train_stacked(SMALL, x, y, 10, [Cell(np.arange(10), 0), Cell(np.arange(11), 1)])


def test_cache_shares_identical_subsets(digits, tmp_path):
    x, y = digits
    a = np.arange(0, 600)
    cells = [Cell(a, 1000), Cell(np.random.default_rng(1).permutation(a), 1000),  # same subset, other order
             Cell(a, 1001), Cell(np.arange(1, 601), 1000)]
    assert cell_key(cells[0], SMALL, "pooled") == cell_key(cells[1], SMALL, "pooled")
    assert cell_key(cells[0], SMALL, "pooled") != cell_key(cells[2], SMALL, "pooled")  # seed is in the key
    assert cell_key(cells[0], SMALL, "pooled") != cell_key(cells[0], replace(SMALL, epochs=3), "pooled")
    assert cell_key(cells[0], SMALL, "pooled") != cell_key(cells[0], SMALL, "train")
    trainer = ProtocolTrainer(SMALL, x, y, 10, "pooled", {"pool": x}, tmp_path)
    first = trainer.predict(cells)
    assert trainer.trained == 3  # the reordered subset shares the first model
    assert np.array_equal(first[0]["pool"], first[1]["pool"])
    again = ProtocolTrainer(SMALL, x, y, 10, "pooled", {"pool": x}, tmp_path)
    second = again.predict(cells[::-1])
    assert again.trained == 0  # all from the cache
    assert all(np.array_equal(p["pool"], q["pool"]) for p, q in zip(first, second[::-1]))


def test_batched_and_sequential_trainers_agree(digits):
    x, y = digits
    cells = [Cell(np.arange(0, 800), 1000), Cell(np.arange(200, 1000), 1001)]
    batched = ProtocolTrainer(SMALL, x, y, 10, "p", {"pool": x}, batched=True).predict(cells)
    single = ProtocolTrainer(SMALL, x, y, 10, "p", {"pool": x}, batched=False).predict(cells)
    for b, s in zip(batched, single):
        assert (b["pool"] == s["pool"]).mean() > 0.99


def test_synthetic_rows_train_and_key(digits):
    x, y = digits
    extra_x = x[:5].numpy().reshape(5, -1) + 0.01
    cell = Cell(np.arange(100), 3, extra_x, np.zeros(5, dtype=np.int64))
    assert cell.size == 105
    assert cell_key(cell, SMALL, "p") != cell_key(Cell(np.arange(100), 3), SMALL, "p")
    out = ProtocolTrainer(SMALL, x, y, 10, "p", {"test": x[:50]}).predict([cell, Cell(np.arange(105), 4)])
    assert out[0]["test"].shape == (50,) and out[0]["test"].dtype == np.uint8


def test_batch_norm_falls_back(digits):
    x, y = digits
    recipe = Recipe(model="resnet18", model_kwargs={"width": 4}, epochs=1, batch_size=256)
    trainer = ProtocolTrainer(recipe, x, y, 10, "p", {"pool": x[:20]})
    assert not trainer._use_batched()
    with pytest.raises(ValueError, match="cannot train stacked"):
        ProtocolTrainer(recipe, x, y, 10, "p", {}, batched=True)._use_batched()


def test_top_k_breaks_ties_by_seed():
    scores = np.array([3.0, 1.0, 3.0, 3.0, 0.0])
    assert top_k(scores, 1, seed=0).tolist() in ([0], [2], [3])
    assert sorted(top_k(scores, 3, seed=5).tolist()) == [0, 2, 3]
    picks = {tuple(top_k(scores, 1, seed=s)) for s in range(20)}
    assert len(picks) > 1


def test_stratified_split_keeps_ratio_per_class():
    y = np.repeat(np.arange(3), [40, 60, 100])
    idx = np.arange(200)
    train, test = stratified_split(idx, y, 0.9, np.random.default_rng(0))
    assert np.bincount(y[train]).tolist() == [36, 54, 90]
    assert np.bincount(y[test]).tolist() == [4, 6, 10]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 200


def test_pathway_subsets():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 250)
    scores = rng.normal(size=1000)
    ratios = [0.0, 0.25, 0.5, 1.0]
    s = pathway_sets(scores, y, q=0.2, train_ratio=0.9, ratios=ratios, seed=0)
    hard = np.concatenate([s["hard_train"], s["hard_test"]])
    assert sorted(hard.tolist()) == top_k(scores, 200, 0).tolist()  # the hard set is the top q
    assert len(s["hard_train"]) == 180 and len(s["easy_train"]) == 720  # hard:easy = 1:4 in train ...
    assert len(s["hard_test"]) == 20 and len(s["easy_test"]) == 80  # ... and in test
    everything = np.concatenate([s["hard_train"], s["hard_test"], s["easy_train"], s["easy_test"]])
    assert sorted(everything.tolist()) == list(range(1000))
    tr = s["train"]
    assert np.array_equal(tr[("E", 0.0)], s["hard_train"])  # E at r = 0: hard only
    assert np.array_equal(tr[("H", 0.0)], s["easy_train"])  # H at r = 0: easy only
    assert np.array_equal(tr[("E", 1.0)], tr[("H", 1.0)])  # r = 1 is one set (one shared model)
    assert len(tr[("E", 0.25)]) == 180 + 180 and len(tr[("H", 0.25)]) == 720 + 45
    assert set(tr[("E", 0.25)]) <= set(tr[("E", 0.5)])  # nested as r grows
    assert set(tr[("H", 0.25)]) <= set(tr[("H", 0.5)])
    test = set(s["hard_test"]) | set(s["easy_test"])
    assert all(not (set(rows) & test) for rows in tr.values())  # no test sample in any training set
