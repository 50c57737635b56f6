import numpy as np
import pytest
import torch

from bench.data import DatasetNotFound, load_dataset
from bench.errors import UnknownName
from bench.inject import plant


def test_digits_is_the_fixed_stratified_split():
    d = load_dataset("digits")
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8) and d.num_classes == 10
    assert d.x_train.mean().abs() < 1e-5 and (d.x_train.std() - 1).abs() < 1e-3  # train-split normalisation
    counts_train, counts_test = torch.bincount(d.y_train), torch.bincount(d.y_test)
    assert np.allclose(counts_test / counts_train, 0.25, atol=0.03)  # 80/20 in every class
    assert torch.equal(load_dataset("digits").y_train, d.y_train)  # the split is fixed


@pytest.mark.parametrize("name,classes,dims", [("blobs", 5, (10,)), ("moons", 2, (2,)), ("spirals", 2, (2,))])
def test_synthetic_sets(name, classes, dims):
    d = load_dataset(name)
    assert d.num_classes == classes and d.input_shape == dims
    assert torch.equal(load_dataset(name).x_train, d.x_train)


def test_torchvision_mnist_from_local_files(shared_data):
    d = load_dataset("mnist", data_root=shared_data, download=False)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_train)[1] == 6742
    small = load_dataset("mnist", data_root=shared_data, subset=1000)
    assert len(small.y_train) == 1000 and len(small.y_test) == 167
    assert torch.bincount(small.y_train, minlength=10).min() >= 80  # stratified


def test_missing_dataset_names_files_place_and_flag(tmp_path):
    with pytest.raises(DatasetNotFound) as error:
        load_dataset("fashion-mnist", data_root=tmp_path)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "--download" in message


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownName, match="Did you mean mnist.*Valid datasets: digits"):
        load_dataset("mnsit")


def test_npz_arrays(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.normal(size=(100, 3)), y=np.arange(100) % 4)
    d = load_dataset(f"npz:{path}")
    assert d.name == "npz:mine.npz" and len(d.y_train) == 80 and d.num_classes == 4
    np.savez(path, x=rng.normal(size=(30, 3)), y=np.arange(30) % 3, x_test=rng.normal(size=(9, 3)), y_test=np.arange(9) % 3)
    assert len(load_dataset(f"npz:{path}").y_test) == 9


def test_the_arrays_do_not_depend_on_the_thread_count(tmp_path):
    # 12k images are enough for torch to split its reductions across threads and round differently
    rng = np.random.default_rng(0)
    path = tmp_path / "images.npz"
    np.savez(path, x=rng.integers(0, 256, size=(12000, 1, 28, 28)).astype(np.uint8), y=np.arange(12000) % 10)
    threads = torch.get_num_threads()
    try:
        fingerprints = set()
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            fingerprints.add(load_dataset(f"npz:{path}").fingerprint)
            assert torch.get_num_threads() == n  # the caller's setting is restored
    finally:
        torch.set_num_threads(threads)
    assert len(fingerprints) == 1


def test_label_uniform_always_changes_the_label_at_the_exact_rate():
    y = torch.arange(1000) % 10
    planted = plant("label-uniform", torch.zeros(1000, 2), y, 10, 0.1, seed=3)
    assert planted.mask.sum() == 100
    assert (planted.y[planted.mask] != y[planted.mask]).all()
    assert torch.equal(planted.y[~planted.mask], y[~planted.mask])
    assert len(torch.unique(planted.y[planted.mask])) == 10  # every class is a possible target
    again = plant("label-uniform", torch.zeros(1000, 2), y, 10, 0.1, seed=3)
    assert torch.equal(again.y, planted.y)
