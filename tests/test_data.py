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


def _jpeg_file(root, n_train=20, n_test=10):
    """A tiny ``cifar10-jpeg`` file in the shared layout: random 32x32 images as JPEG bytes."""
    import io

    from PIL import Image

    rng = np.random.default_rng(0)

    def encode(n):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        files = []
        for image in images:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=75)
            files.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        return np.concatenate(files), np.cumsum([0, *map(len, files)])

    (train, o_train), (test, o_test) = encode(n_train), encode(n_test)
    clean = np.arange(n_train) % 10
    worst = (clean + (np.arange(n_train) % 4 == 0)) % 10  # every fourth label moved
    path = root / "cifar10-jpeg" / "cifar10_jpeg.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, train_jpeg=train, train_offsets=o_train, test_jpeg=test, test_offsets=o_test, y_train=clean,
             y_test=np.arange(n_test) % 10, y_train_aggre=clean, y_train_worst=worst,
             cscore_train=np.linspace(0, 1, n_train, dtype=np.float32))
    return path


def test_cifar10_jpeg_decodes_as_pillow_and_carries_noise_and_cscores(tmp_path):
    import io

    from PIL import Image

    from bench import cifar_jpeg

    path = _jpeg_file(tmp_path)
    with np.load(path) as z:
        stream, offsets = z["train_jpeg"], z["train_offsets"]
        pillow = np.stack([np.asarray(Image.open(io.BytesIO(stream[a:b].tobytes())).convert("RGB"))
                           for a, b in zip(offsets[:-1], offsets[1:])])
        np.testing.assert_array_equal(cifar_jpeg.decode(stream, offsets), pillow.transpose(0, 3, 1, 2))
    worst = load_dataset("cifar10-jpeg", tmp_path, noise="worst")
    assert worst.name == "cifar10-jpeg-worst" and worst.x_train.shape == (20, 3, 32, 32) and len(worst.y_test) == 10
    assert (worst.y_train != worst.y_clean_train).sum() == 5 and "JPEG q75" in worst.layout_note
    np.testing.assert_allclose(worst.hardness_train, -np.linspace(0, 1, 20), rtol=1e-6)  # a high C-score is easy
    clean = load_dataset("cifar10-jpeg", tmp_path)
    assert clean.name == "cifar10-jpeg" and clean.y_clean_train is None
    assert torch.equal(clean.y_train, worst.y_clean_train) and torch.equal(clean.x_train, worst.x_train)


def test_cifar10_jpeg_missing_file_and_unknown_noise_are_one_line(tmp_path):
    with pytest.raises(DatasetNotFound, match=r"expected .*cifar10-jpeg/cifar10_jpeg.npz") as error:
        load_dataset("cifar10-jpeg", tmp_path)
    assert "\n" not in str(error.value)
    with pytest.raises(UnknownName, match="worse"):
        load_dataset("cifar10-jpeg", tmp_path, noise="worse")


def test_real_cifar10_jpeg_file_lines_up_with_cifar10n_and_cscores(shared_data):
    from bench import cifar_jpeg

    path = shared_data / cifar_jpeg.FILE
    if not path.exists():
        pytest.skip(f"needs {path}")
    with np.load(path) as z:
        assert len(z["train_offsets"]) == 50_001 and len(z["test_offsets"]) == 10_001
        assert (z["y_train_aggre"] != z["y_train"]).mean() == pytest.approx(0.0901, abs=5e-5)
        assert (z["y_train_worst"] != z["y_train"]).mean() == pytest.approx(0.4021, abs=5e-5)
        first = cifar_jpeg.decode(z["train_jpeg"][: z["train_offsets"][8]], z["train_offsets"][:9])
    assert first.shape == (8, 3, 32, 32) and first.dtype == np.uint8


def test_breast_cancer_is_the_bundled_table_split_and_normalised():
    d = load_dataset("breast-cancer")
    assert d.x_train.shape == (455, 30) and d.x_test.shape == (114, 30) and d.num_classes == 2
    assert torch.bincount(d.y_train).tolist() == [170, 285] and torch.bincount(d.y_test).tolist() == [42, 72]
    assert d.x_train.mean(0).abs().max() < 1e-5 and ((d.x_train.std(0) - 1).abs() < 1e-3).all()  # per feature
    assert torch.equal(load_dataset("breast-cancer").x_train, d.x_train) and d.key == "breast-cancer"
