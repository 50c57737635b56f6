"""Real label noise (detection type ``real``, CIFAR-N), reference hardness (track ``reference``,
C-scores) and the per-sample score export."""
import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import data as bench_data
from bench import registry
from bench.data import Dataset, DatasetNotFound, load_cifar_n, load_cifar_n_labels, load_dataset, with_cscores
from bench.engine import Engine
from bench.errors import DataError, UnknownName
from bench.inject import most_confused
from bench.metrics import agreement_metrics
from bench.recipes import Recipe
from bench.store import Store
from bench.tracks import TRACKS, detection, reference
from compare_support import assert_compare_agrees_with_the_board


# ---- fixtures -------------------------------------------------------------------------------
@pytest.fixture
def oracle_registry():
    """A registry in which the test may register methods; restored afterwards."""
    registry.load_builtin_methods()
    saved = dict(registry._METHODS)
    yield registry
    registry._METHODS.clear()
    registry._METHODS.update(saved)


def _noisy_npz(path: Path, n: int = 600, classes: int = 3, noise: float = 0.15, hardness: bool = True) -> Path:
    rng = np.random.default_rng(0)
    y_clean = np.arange(n) % classes
    x = rng.normal(size=(n, 4)) + y_clean[:, None]
    x[:, 0] = np.arange(n)  # the row id, so a test can follow rows through the split
    flip = rng.random(n) < noise
    y = np.where(flip, (y_clean + rng.integers(1, classes, n)) % classes, y_clean)
    arrays = {"x": x, "y": y, "y_clean": y_clean}
    if hardness:
        arrays["hardness"] = np.arange(n, dtype=float) * 0.5
    np.savez(path, **arrays)
    return path


def _engine(dataset, methods, root, seeds=(0, 1, 2), pool_size=None, **settings) -> Engine:
    return Engine(dataset, Recipe(epochs=1, checkpoints=1), [registry.get_method(m) for m in methods], list(seeds),
                  torch.device("cpu"), Store(root), settings=settings, quiet=True, pool_size=pool_size)


# ---- data: per-row arrays -------------------------------------------------------------------------
def test_npz_clean_labels_and_hardness_follow_their_rows_through_split_and_subset(tmp_path):
    path = _noisy_npz(tmp_path / "noisy.npz")
    raw = np.load(path)
    data = load_dataset(f"npz:{path}")
    ids = _row_ids(data.x_train, raw)
    assert len(data.y_train) == 480 and data.y_clean_train.shape == data.hardness_train.shape == (480,)
    assert np.array_equal(data.y_train.numpy(), raw["y"][ids])
    assert np.array_equal(data.y_clean_train.numpy(), raw["y_clean"][ids])
    assert np.allclose(data.hardness_train.numpy(), raw["hardness"][ids])
    small = bench_data.subsample(data, 120)
    small_ids = ids[(small.x_train[:, None, 0] == data.x_train[None, :, 0]).float().argmax(1).numpy()]
    assert len(small.y_train) == 120 and len(np.unique(small_ids)) == 120
    assert np.array_equal(small.y_clean_train.numpy(), raw["y_clean"][small_ids])
    assert np.allclose(small.hardness_train.numpy(), raw["hardness"][small_ids])


def _row_ids(x_train, raw):
    """The original rows of the train split: the first feature holds the row id, normalised
    by an increasing affine map, so its rank among the train rows gives the id."""
    from scipy.stats import rankdata
    from sklearn.model_selection import train_test_split

    rows, _ = train_test_split(np.arange(len(raw["y"])), test_size=0.2, stratify=raw["y"], random_state=0)
    return np.sort(rows)[rankdata(x_train[:, 0].numpy()).astype(int) - 1]


def test_npz_per_row_arrays_are_checked(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros((10, 2)), y=np.arange(10) % 2, y_clean=np.arange(9) % 2)
    with pytest.raises(DataError, match="y_clean.*one per row"):
        load_dataset(f"npz:{path}")


# ---- CIFAR-N -------------------------------------------------------------------------------------------
def _label_file(path: Path, clean: np.ndarray, keys=("aggre_label", "random_label1", "random_label2",
                                                      "random_label3", "worse_label"), seed=0) -> dict:
    rng = np.random.default_rng(seed)
    labels = {"clean_label": clean}
    for key in keys:
        labels[key] = np.where(rng.random(len(clean)) < 0.2, (clean + 1) % 10, clean)
    torch.save(labels, path)
    return labels


def test_cifar_n_label_file_is_read_safely(tmp_path):
    clean = np.arange(50) % 10
    labels = _label_file(tmp_path / "CIFAR-10_human.pt", clean)
    noisy, got_clean = load_cifar_n_labels(tmp_path / "CIFAR-10_human.pt", "worse_label")
    assert np.array_equal(noisy, labels["worse_label"]) and np.array_equal(got_clean, clean)
    with pytest.raises(ValueError, match="noisy_label"):
        load_cifar_n_labels(tmp_path / "CIFAR-10_human.pt", "noisy_label")
    with pytest.raises(DatasetNotFound, match="UCSC-REAL/cifar-10-100n.*--data-root"):
        load_cifar_n_labels(tmp_path / "CIFAR-100_human.pt", "noisy_label")


def test_cifar_n_label_file_saved_with_numpy_1_names(tmp_path):
    """The published files were pickled under numpy 1.x (numpy.core.multiarray._reconstruct)."""
    import zipfile

    path = tmp_path / "new.pt"
    _label_file(path, np.arange(20) % 10, keys=("noisy_label",))
    old = tmp_path / "CIFAR-100_human.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as target:
        for item in source.infolist():
            payload = source.read(item.filename)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in payload
                payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            target.writestr(item, payload)
    noisy, clean = load_cifar_n_labels(old, "noisy_label")
    assert len(noisy) == len(clean) == 20


def test_cifar_n_dataset_assembly(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    clean = torch.arange(60) % 10

    def fake_cifar(name, data_root, download=False):
        return Dataset(name, torch.randn(60, 3, 4, 4, generator=g), clean.clone(), torch.randn(20, 3, 4, 4),
                       torch.arange(20) % 10, 10)

    monkeypatch.setattr(bench_data, "load_torchvision", fake_cifar)
    labels = _label_file(tmp_path / "CIFAR-10_human.pt", clean.numpy())
    data = load_dataset("cifar10n", tmp_path)
    assert data.name == "cifar10n" and np.array_equal(data.y_train.numpy(), labels["aggre_label"])
    assert torch.equal(data.y_clean_train, clean)
    other = load_dataset("cifar10n", tmp_path, noise="random2", subset=30)
    assert other.name == "cifar10n-random2" and len(other.y_clean_train) == 30
    with pytest.raises(UnknownName, match="aggre, random1, random2, random3, worse"):
        load_cifar_n("cifar10n", tmp_path, noise="noisy")
    with pytest.raises(UnknownName, match="noise option"):
        load_dataset("digits", noise="aggre")
    _label_file(tmp_path / "CIFAR-10_human.pt", (clean.numpy() + 1) % 10)
    with pytest.raises(ValueError, match="do not match"):
        load_dataset("cifar10n", tmp_path)


# ---- C-scores -----------------------------------------------------------------------------------------------
def _fake_mnist(n=40):
    x = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return Dataset("mnist", x, torch.arange(n) % 10, x[:5], torch.arange(5), 10)


def test_cscores_become_minus_score_and_a_misaligned_file_is_refused(tmp_path):
    data = _fake_mnist()
    assert with_cscores(data, tmp_path).hardness_train is None  # no file: no reference
    (tmp_path / "cscores").mkdir()
    scores = np.linspace(0.2, 1.0, 40).astype(np.float32)
    np.savez(tmp_path / "cscores" / "mnist-cscores-orig-order.npz", scores=scores, labels=data.y_train.numpy())
    assert np.allclose(with_cscores(data, tmp_path).hardness_train.numpy(), -scores)
    np.savez(tmp_path / "cscores" / "mnist-cscores-orig-order.npz", scores=scores,
             labels=np.roll(data.y_train.numpy(), 1))
    with pytest.raises(ValueError, match="not aligned"):
        with_cscores(data, tmp_path)


def test_real_mnist_cscores_follow_the_subset(shared_data):
    if not (shared_data / "cscores" / "mnist-cscores-orig-order.npz").exists():
        pytest.skip("needs the MNIST C-scores in the shared data")
    full = load_dataset("mnist", shared_data)
    scores = np.load(shared_data / "cscores" / "mnist-cscores-orig-order.npz")["scores"]
    assert np.allclose(full.hardness_train.numpy(), -scores)
    small = load_dataset("mnist", shared_data, subset=2000)
    from sklearn.model_selection import train_test_split

    rows, _ = train_test_split(np.arange(60000), train_size=2000, stratify=full.y_train.numpy(), random_state=0)
    rows = np.sort(rows)
    assert torch.equal(small.x_train, full.x_train[rows])
    assert np.allclose(small.hardness_train.numpy(), -scores[rows])


# ---- reference metrics and track ------------------------------------------------------------------------
def test_agreement_metrics():
    reference = np.arange(200, dtype=float)
    perfect = agreement_metrics(reference * 3 + 1, reference)
    assert perfect["spearman"] == pytest.approx(1) and perfect["kendall"] == pytest.approx(1)
    assert perfect["auprc"] == pytest.approx(1) and perfect["baseline"] == pytest.approx(0.1)
    reverse = agreement_metrics(-reference, reference)
    assert reverse["spearman"] == pytest.approx(-1) and reverse["auprc"] < 0.1


def test_reference_track_and_real_noise_detection_with_an_oracle(tmp_path, oracle_registry, caplog):
    data = load_dataset(f"npz:{_noisy_npz(tmp_path / 'noisy.npz')}")
    clean = data.y_clean_train.numpy()

    @oracle_registry.register(higher_is_harder=True, needs=(), family="test")
    def oracle(ctx):
        """Knows the clean labels and the reference: the planted noise first, then the reference order."""
        return (ctx.y.cpu().numpy() != clean) * 1e6 + ctx.x[:, 0].cpu().numpy()

    real = detection.Settings(types=("real",))
    engine = _engine(data, ["oracle", "random"], tmp_path / "results", detection=real)
    assert detection.configs(engine, detection.Settings(types=("label-uniform",))) == [
        {"type": "label-uniform", "rate": 0.1},
        {"type": "real", "rate": round(float((data.y_train.numpy() != clean).mean()), 4)}]
    engine.run_track(detection)
    records = list(engine.store.records("detection"))
    assert len(records) == 6 and {r["config"]["type"] for r in records} == {"real"}
    base_rate = float((data.y_train.numpy() != clean).mean())
    for record in records:
        assert record["metrics"]["baseline"] == pytest.approx(base_rate)
        if record["method"] == "oracle":
            assert record["metrics"]["auprc"] == 1.0
    random_auprc = np.mean([r["metrics"]["auprc"] for r in records if r["method"] == "random"])
    assert abs(random_auprc - base_rate) < 0.06
    assert "Published figures" not in detection.report(records).markdown  # they concern CIFAR-10N only
    for record in records:
        record["dataset"] = "npz:cifar10n_aggre_first4000.npz"
    text = detection.report(records).markdown
    assert "Published figures (CIFAR-10N aggregate labels)" in text and "4,000 images, not 50,000" in text

    engine.run_track(reference)
    refs = list(engine.store.records("reference"))
    assert len(refs) == 6
    oracle_ref = [r["metrics"] for r in refs if r["method"] == "oracle"]
    random_ref = [r["metrics"] for r in refs if r["method"] == "random"]
    assert all(m["spearman"] > 0.2 for m in oracle_ref)  # the reference (row id) breaks the oracle's ties
    assert all(abs(m["spearman"]) < 0.15 for m in random_ref)
    assert_compare_agrees_with_the_board(engine.store.root, reference, refs)
    assert_compare_agrees_with_the_board(engine.store.root, detection, records)
    text = TRACKS["reference"].report(refs).markdown
    assert "Spearman" in text and "oracle" in text

    plain = _engine(load_dataset("blobs"), ["random"], tmp_path / "plain")
    with caplog.at_level(logging.WARNING, logger="bench"):
        plain.run_track(reference)
        plain.run_track(reference)
    assert sum("no reference hardness" in m for m in caplog.messages) == 1
    assert not list(plain.store.records("reference"))


def test_reference_with_pool_size_follows_the_kept_rows(tmp_path, oracle_registry):
    data = load_dataset(f"npz:{_noisy_npz(tmp_path / 'noisy.npz')}")

    @oracle_registry.register(higher_is_harder=True, needs=(), family="test")
    def row_id(ctx):
        """The row id the test wrote into the first feature: the reference's exact order."""
        return ctx.x[:, 0].cpu().numpy()

    engine = _engine(data, ["row_id"], tmp_path / "results", seeds=(0,), pool_size=200)
    pool = engine.pool("train")
    assert len(pool) == 200
    assert torch.equal(pool.x.cpu(), data.x_train[torch.as_tensor(pool.rows)])
    engine.run_track(reference)
    (record,) = engine.store.records("reference")
    assert record["metrics"]["spearman"] == pytest.approx(1.0) and record["metrics"]["auprc"] == pytest.approx(1.0)


# ---- detection options and label-pair wiring -------------------------------------------------------------------
def test_detection_profiles(tmp_path):
    from bench.config import PROFILES
    from bench.errors import UsageError

    engine = _engine(load_dataset("digits"), ["random"], tmp_path)

    def configs(*layers):
        return detection.configs(engine, detection.Settings.build(*layers))

    assert [c["type"] for c in configs()] == detection.TYPES and {c["rate"] for c in configs()} == {0.1}
    assert configs(PROFILES["smoke"]["detection"]) == [{"type": "label-uniform", "rate": 0.1}]
    assert len(configs(PROFILES["full"]["detection"])) == 3 * len(detection.TYPES)  # every type at 3 rates
    assert len(configs(PROFILES["full"]["detection"], {"types": "near-ood"})) == 3  # a single --option value
    with pytest.raises(UsageError, match="real"):
        detection.Settings.build({"types": ["label-noise"]}).validate()


def test_label_pair_confusion_comes_from_the_cached_k_fold_models(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 3
    x = torch.randn(120, 1, 6, 6, generator=g) + y.view(-1, 1, 1, 1).float()
    data = Dataset("tiny", x, y, x[:6], y[:6], 3)
    registry.load_builtin_methods()
    engine = _engine(data, ["random"], tmp_path, seeds=(0,))
    pool = detection.detection_pool(engine, {"type": "label-pair", "rate": 0.2}, 0)
    assert len(list(tmp_path.glob("tiny*/*/_estimation/train-*/seed0-reference/folds.npz"))) == 1  # the clean K-fold models
    confusion = engine.estimator.clean_confusion()
    assert confusion.sum() == 120  # every sample predicted once, by a model that did not train on it
    moved = torch.as_tensor(pool.planted)
    assert torch.equal(pool.y[moved], torch.as_tensor(most_confused(confusion))[y[moved]])
    assert pool.key.startswith("label-pair-0.2-s0-")


# ---- export of per-sample scores -----------------------------------------------------------------------------
def test_export_scores_equal_the_stored_ones(tmp_path, oracle_registry):
    from bench.cli import main

    data = load_dataset(f"npz:{_noisy_npz(tmp_path / 'noisy.npz', hardness=False)}")
    registry.load_builtin_methods()

    @oracle_registry.register(higher_is_harder=False, needs=(), family="test")
    def easiness(ctx):
        """A method whose natural orientation is higher = easier."""
        return ctx.x[:, 1].cpu().numpy()

    engine = _engine(data, ["random", "easiness"], tmp_path / "results", seeds=(0, 1))
    pool = engine.pool("train")
    stored = {(seed, name): result for seed in (0, 1) for name, result in engine.scores(pool, seed).items()}
    assert main(["export", "--scores", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "index.csv") as handle:
        index = list(csv.DictReader(handle))
    assert len(index) == 4 and {row["method"] for row in index} == {"random", "easiness"}
    with open(tmp_path / "out" / index[0]["file"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * len(pool)
    for (seed, name), result in stored.items():
        mine = [r for r in rows if r["method"] == name and int(r["seed"]) == seed]
        assert [int(r["index"]) for r in mine] == list(range(len(pool)))
        assert np.allclose([float(r["natural"]) for r in mine], result.natural)
        assert np.allclose([float(r["score"]) for r in mine], result.scores)
        assert {r["dataset"] for r in mine} == {data.key} and {r["pool"] for r in mine} == {pool.key}


def test_export_scores_uses_npz_for_large_pools(tmp_path, monkeypatch, oracle_registry):
    from bench import export

    data = load_dataset(f"npz:{_noisy_npz(tmp_path / 'noisy.npz', hardness=False)}")
    engine = _engine(data, ["random"], tmp_path / "results", seeds=(0,))
    result = engine.scores(engine.pool("train"), 0)["random"]
    monkeypatch.setattr(export, "CSV_LIMIT", 100)
    files = export.export_scores(tmp_path / "results", tmp_path / "out")
    (npz,) = [f for f in files if f.suffix == ".npz"]
    arrays = np.load(npz)
    assert arrays["method"].tolist() == ["random"] and arrays["seed"].tolist() == [0]
    assert np.allclose(arrays["scores"][0], result.scores) and np.allclose(arrays["natural"][0], result.natural)


def test_a_board_on_a_whole_unplanted_train_split_releases_its_per_sample_scores(tmp_path):
    import bench
    from bench.cli import main

    data = _noisy_npz(tmp_path / "noisy.npz", n=300)
    boards = tmp_path / "lb"
    assert main(["run", "--dataset", f"npz:{data}", "--methods", "loss,random", "--seeds", "2", "--epochs", "2",
                 "--tracks", "detection,reference", "--option", "detection.types=real", "--threads", "1", "--quiet",
                 "--results", str(tmp_path / "res"), "--leaderboards", str(boards)]) == 0
    (detection_board,) = boards.glob("*/detection*.md")
    scores = bench.load_scores(detection_board)
    assert list(scores.columns) == ["loss", "random"] and scores.index.name == "sample"
    stored = sorted((tmp_path / "res").glob("*/*/scores/train-*/loss/seed*.npz"))
    loss = [np.load(path)["scores"] for path in stored]
    assert len(loss) == 2 and len(scores) == len(loss[0])
    np.testing.assert_allclose(scores["loss"], np.mean(loss, axis=0), rtol=1e-6)  # loss: higher = harder, as stored
    assert f"({detection_board.stem}.scores.npz)" in detection_board.read_text()
    assert (detection_board.parent / "reference-seeds2.scores.npz").exists()


def test_load_scores_of_a_board_without_a_release_names_the_file(tmp_path):
    import bench

    with pytest.raises(FileNotFoundError, match=r"expected .*detection\.scores\.npz"):
        bench.load_scores(tmp_path / "detection.md")
