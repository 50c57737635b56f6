"""Datasets as in-memory tensors with a fixed train/test split and normalisation.

Every loader returns a `Dataset` whose inputs are float32, normalised with the
per-channel mean and std of its train split, and whose labels are int64 in
``0..C-1``. Names:

- ``digits``: scikit-learn's bundled 8x8 digits, stratified 80/20 split (seed 0).
- ``blobs``, ``moons``, ``spirals``: synthetic sets generated from a seed.
- ``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10``, ``cifar100``: torchvision
  datasets read from ``data_root`` (downloaded only when ``download=True``).
- ``npz:PATH``: your own arrays ``x``, ``y`` and optionally ``x_test``, ``y_test``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .errors import UnknownName

SPLIT_SEED = 0  # fixed: the split is part of the dataset's definition, not of a run


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test merged, as the split and pathway tracks use them."""
        return torch.cat([self.x_train, self.x_test]), torch.cat([self.y_train, self.y_test])


class DatasetNotFound(FileNotFoundError):
    pass


def _normalised(name, x_train, y_train, x_test, y_test, num_classes=None) -> Dataset:
    x_train = torch.as_tensor(np.asarray(x_train), dtype=torch.float32)
    x_test = torch.as_tensor(np.asarray(x_test), dtype=torch.float32)
    # per-channel statistics for images (N, C, H, W), per-feature for vectors (N, D)
    dims = (0, 2, 3) if x_train.ndim == 4 else (0,)
    mean = x_train.mean(dim=dims, keepdim=True)
    std = x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
    y_train = torch.as_tensor(np.asarray(y_train), dtype=torch.int64)
    y_test = torch.as_tensor(np.asarray(y_test), dtype=torch.int64)
    classes = num_classes or int(max(y_train.max(), y_test.max() if len(y_test) else 0)) + 1
    return Dataset(name, (x_train - mean) / std, y_train, (x_test - mean) / std, y_test, classes)


def _stratified_split(x, y, test_size=0.2):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=test_size, stratify=y, random_state=SPLIT_SEED)


def load_digits_dataset() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0
    x_tr, x_te, y_tr, y_te = _stratified_split(x, bunch.target)
    return _normalised("digits", x_tr, y_tr, x_te, y_te, 10)


def make_blobs(n: int = 2000, dim: int = 10, classes: int = 5, overlap: float = 0.5, seed: int = 0) -> Dataset:
    """Gaussian mixture: one unit-variance Gaussian per class, centres at distance
    ``1/overlap`` from the origin in random directions (larger overlap = harder)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres *= (1.0 / overlap) / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(size=(n, dim))
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y)
    return _normalised("blobs", x_tr, y_tr, x_te, y_te, classes)


def make_moons(n: int = 1000, noise: float = 0.2, seed: int = 0) -> Dataset:
    from sklearn.datasets import make_moons as sk_moons

    x, y = sk_moons(n_samples=n, noise=noise, random_state=seed)
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y)
    return _normalised("moons", x_tr, y_tr, x_te, y_te, 2)


def make_spirals(n: int = 1000, arms: int = 2, noise: float = 0.2, turns: float = 1.5, seed: int = 0) -> Dataset:
    """Interleaved Archimedean spirals, one per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % arms
    t = np.sqrt(rng.uniform(size=n)) * turns * 2 * np.pi
    angle = t + 2 * np.pi * y / arms
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (turns * 2 * np.pi)
    x += rng.normal(scale=noise / (turns * 2 * np.pi) * 2, size=x.shape)
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y)
    return _normalised("spirals", x_tr, y_tr, x_te, y_te, arms)


# name -> (torchvision class name, folder under data_root, files expected there)
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "kmnist": ("KMNIST", "KMNIST/raw", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", ["data_batch_1", "...", "data_batch_5", "test_batch"]),
    "cifar100": ("CIFAR100", "cifar-100-python", ["train", "test", "meta"]),
}


def load_torchvision(name: str, data_root: str | Path = "data", download: bool = False) -> Dataset:
    import torchvision

    cls_name, folder, files = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root=str(data_root), train=True, download=download)
        test = cls(root=str(data_root), train=False, download=download)
    except RuntimeError as error:
        where = Path(data_root) / folder
        raise DatasetNotFound(
            f"dataset {name!r} not found: expected {', '.join(files)} in {where}/ "
            f"(torchvision's layout under --data-root {data_root}). "
            f"Pass --download to fetch it, or --data-root to point at an existing copy. ({error})") from None

    def arrays(split):
        x = np.asarray(split.data, dtype=np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # to (N, C, H, W)
        return x, np.asarray(split.targets)

    (x_tr, y_tr), (x_te, y_te) = arrays(train), arrays(test)
    return _normalised(name, x_tr, y_tr, x_te, y_te, len(train.classes))


def load_npz(path: str | Path) -> Dataset:
    path = Path(path)
    if not path.exists():
        raise DatasetNotFound(f"npz dataset not found: {path} (expected arrays x, y and optionally x_test, y_test)")
    arrays = np.load(path)
    missing = {"x", "y"} - set(arrays.files)
    if missing:
        raise ValueError(f"{path} lacks arrays {sorted(missing)}; it has {arrays.files}")
    if "x_test" in arrays.files and "y_test" in arrays.files:
        x_tr, y_tr, x_te, y_te = arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]
    else:
        x_tr, x_te, y_tr, y_te = _stratified_split(arrays["x"], arrays["y"])
    return _normalised(f"npz:{path.name}", x_tr, y_tr, x_te, y_te)


SYNTHETIC = {"blobs": make_blobs, "moons": make_moons, "spirals": make_spirals}
DATASET_NAMES = ["digits", *SYNTHETIC, *_TORCHVISION, "npz:PATH"]


def load_dataset(name: str, data_root: str | Path = "data", download: bool = False, subset: int | None = None) -> Dataset:
    """Load a dataset by name; ``subset`` keeps a stratified random subset of the
    train split (and of the test split, in proportion), drawn with a fixed seed."""
    if name == "digits":
        data = load_digits_dataset()
    elif name in SYNTHETIC:
        data = SYNTHETIC[name]()
    elif name in _TORCHVISION:
        data = load_torchvision(name, data_root, download)
    elif name.startswith("npz:"):
        data = load_npz(name[4:])
    else:
        raise UnknownName("dataset", name, DATASET_NAMES)
    return subsample(data, subset) if subset else data


def subsample(data: Dataset, n_train: int) -> Dataset:
    """A stratified subset with ``n_train`` train samples and test in proportion."""
    from sklearn.model_selection import train_test_split

    def keep(x, y, n):
        if n >= len(y):
            return x, y
        idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y.numpy(), random_state=SPLIT_SEED)
        idx = torch.as_tensor(np.sort(idx))
        return x[idx], y[idx]

    n_test = max(1, round(n_train * len(data.y_test) / len(data.y_train)))
    x_tr, y_tr = keep(data.x_train, data.y_train, n_train)
    x_te, y_te = keep(data.x_test, data.y_test, n_test)
    return replace(data, name=f"{data.name}[{n_train}]", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
