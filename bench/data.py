"""Datasets as in-memory tensors with a fixed train/test split and normalisation.

Every loader returns a `Dataset` whose inputs are float32, normalised with the
per-channel mean and std of its train split, and whose labels are int64 in
``0..C-1``. Names:

- ``digits``: scikit-learn's bundled 8x8 digits, stratified 80/20 split (seed 0).
- ``breast-cancer``: scikit-learn's bundled Wisconsin diagnostic breast cancer table (569 x 30
  features, 2 classes: 0 malignant, 1 benign), stratified 80/20 split (seed 0), each feature
  normalised: the tabular set of the detection track (H-CAT's tabular ``atypical``).
- ``blobs``, ``moons``, ``spirals``, ``spirals3`` (3 arms), ``blobs2d``: synthetic sets generated from a seed.
- ``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10``, ``cifar100``: torchvision
  datasets read from ``data_root`` (downloaded only when ``download=True``).
- ``cifar10n``, ``cifar100n``: CIFAR with the CIFAR-N human labels (``noise=``), the
  original labels kept as ``y_clean_train``.
- ``cifar10-jpeg``: all of CIFAR-10 as lossy JPEG with CIFAR-10N labels (``noise=`` clean,
  aggre, worst) and C-scores, from one file under ``data_root`` (``bench.cifar_jpeg``).
- ``npz:PATH``: your own arrays ``x``, ``y`` and optionally ``x_test``, ``y_test``;
  optional ``y_clean`` (clean labels of the rows of ``x``: real label noise; without a test
  split, the held-out 20% are labelled with them, so test accuracy is clean accuracy) and
  ``hardness`` (a reference hardness of those rows, higher = harder). Images may be
  channels-first ``(N, C, H, W)`` or channels-last ``(N, H, W, C)`` (``image_layout``).

A dataset's identity is its name plus ``Dataset.fingerprint``, a hash of the arrays as
loaded (subset included): results made from other data are never reused.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import cifar_jpeg
from .errors import DataError, UnknownName, UsageError

SPLIT_SEED = 0  # fixed: the split is part of the dataset's definition, not of a run
LAYOUTS = ("auto", "channels-first", "channels-last")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    subset: int | None = None  # the train split was cut to this many samples (``--subset``)
    y_clean_train: torch.Tensor | None = None  # clean labels of the train split where known (real label noise)
    hardness_train: torch.Tensor | None = None  # an independent per-sample hardness of the train split, higher = harder
    layout_note: str = ""  # how the inputs' layout was read, where it was not already (N, C, H, W)

    @property
    def key(self) -> str:
        """How results and leaderboards name this dataset, in words safe in file names:
        ``mnist``, ``mnist-n10000`` (a stratified subset), ``npz-my_data``."""
        name = self.name.replace("npz:", "npz-").replace("/", "-").replace(" ", "")
        return name if self.subset is None else f"{name}-n{self.subset}"

    @cached_property
    def fingerprint(self) -> str:
        """A hash of every array as loaded (subset included): the dataset's identity in every cache key."""
        h = hashlib.blake2b(digest_size=8)
        for name in ("x_train", "y_train", "x_test", "y_test", "y_clean_train", "hardness_train"):
            value = getattr(self, name)
            h.update(name.encode())
            if value is not None:
                array = np.ascontiguousarray(value.numpy())
                h.update(repr((array.dtype.str, array.shape)).encode())
                h.update(array.data)
        return h.hexdigest()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def pooled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Train and test merged, as the split and pathway tracks use them."""
        return torch.cat([self.x_train, self.x_test]), torch.cat([self.y_train, self.y_test])


class DatasetNotFound(FileNotFoundError):
    pass


def validate(name, x_train, y_train, x_test, y_test, num_classes=None) -> int:
    """Check arrays before anything is trained or written; returns the number of classes.
    Every problem is a one-line ``DataError`` that says what is wrong and where."""
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DataError(f"{name}: {split} inputs and labels differ in length ({len(x)} vs {len(y)})")
        if len(y) and not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
                raise DataError(f"{name}: {split} labels must be integers 0..C-1, got dtype {y.dtype}")
        if x.size and not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{name}: {split} inputs must be numbers, got dtype {x.dtype}")
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if x.size else np.zeros(0, bool)
        if bad.any():
            raise DataError(f"{name}: {int(bad.sum())} {split} samples have non-finite values (NaN or inf); "
                            f"the first is row {int(np.flatnonzero(bad)[0])}")
    if len(y_train) == 0:
        raise DataError(f"{name}: the train split is empty")
    labels = np.concatenate([y_train, y_test]).astype(np.int64)
    classes = num_classes or int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= classes:
        raise DataError(f"{name}: labels must lie in 0..{classes - 1}; found {int(labels.min())}..{int(labels.max())}")
    present = np.unique(np.asarray(y_train, dtype=np.int64)).size
    if present < 2:
        raise DataError(f"{name}: the train split has {present} class; at least 2 are needed")
    return classes


def image_layout(shape: tuple, layout: str = "auto", source: str = "x") -> tuple[bool, str]:
    """Whether 4-D inputs of this shape are channels-last, and a note for board headers.
    ``auto`` reads ``(N, H, W, C)`` with C in {1, 3} and a second axis that is not as
    channels-last; a shape that fits both readings, or neither, needs ``--layout``."""
    if len(shape) != 4:
        return False, ""
    if layout == "channels-first":
        return False, ""
    if layout == "channels-last":
        return True, f"{source} read channels-last {tuple(shape[1:])} and transposed to (N, C, H, W)"
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first != last:
        return (True, f"{source} read channels-last {tuple(shape[1:])} and transposed to (N, C, H, W)") if last \
            else (False, "")
    raise UsageError(f"cannot tell the channel axis of images shaped {tuple(shape)}: pass --layout channels-first "
                     "(N, C, H, W) or --layout channels-last (N, H, W, C)")


def _train_statistics(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std for images (N, C, H, W), per-feature for vectors (N, D), on one thread:
    torch's parallel reductions round differently with the thread count, and these statistics enter
    every array, so the dataset's fingerprint, and with it every cache key, would depend on --threads."""
    dims = (0, 2, 3) if x_train.ndim == 4 else (0,)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return x_train.mean(dim=dims, keepdim=True), x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
    finally:
        torch.set_num_threads(threads)


def _normalised(name, x_train, y_train, x_test, y_test, num_classes=None) -> Dataset:
    num_classes = validate(name, *map(np.asarray, (x_train, y_train, x_test, y_test)), num_classes)
    x_train = torch.as_tensor(np.asarray(x_train), dtype=torch.float32)
    x_test = torch.as_tensor(np.asarray(x_test), dtype=torch.float32)
    mean, std = _train_statistics(x_train)
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


def load_breast_cancer_dataset() -> Dataset:
    """scikit-learn's bundled breast cancer table: 569 rows, 30 real features, 2 classes."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x_tr, x_te, y_tr, y_te = _stratified_split(bunch.data.astype(np.float32), bunch.target)
    return _normalised("breast-cancer", x_tr, y_tr, x_te, y_te, 2)


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


def make_blobs2d(n: int = 1000, classes: int = 4, spread: float = 0.45, seed: int = 0) -> Dataset:
    """2-D Gaussian blobs: one isotropic Gaussian (std ``spread``) per class, centres
    evenly spaced on the unit circle (larger spread = more overlap between neighbours)."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * (np.arange(classes) + 0.5) / classes
    centres = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(scale=spread, size=(n, 2))
    x_tr, x_te, y_tr, y_te = _stratified_split(x, y)
    return _normalised("blobs2d", x_tr, y_tr, x_te, y_te, classes)


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


TORCHVISION_FOLDERS = {name: folder for name, (_, folder, _) in _TORCHVISION.items()}  # what the cache watches


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


def from_arrays(x, y, x_test=None, y_test=None, name: str = "arrays", layout: str = "auto") -> Dataset:
    """A dataset from in-memory arrays (numpy or torch): checked, channels-last images
    transposed, normalised like every loader. Every row of ``x`` is in the train split; the test
    split is ``x_test`` or empty."""
    x, y = np.asarray(x), np.asarray(y)
    if x_test is None:
        x_test, y_test = x[:0], y[:0]
    last, note = image_layout(np.shape(x), layout, "x")
    if last:
        x, x_test = np.transpose(x, (0, 3, 1, 2)), np.transpose(np.asarray(x_test), (0, 3, 1, 2))
    return replace(_normalised(name, x, y, np.asarray(x_test), np.asarray(y_test)), layout_note=note)


def load_npz(path: str | Path, layout: str = "auto") -> Dataset:
    path = Path(path)
    if not path.exists():
        raise DatasetNotFound(f"npz dataset not found: {path} (expected arrays x, y and optionally x_test, y_test)")
    try:
        arrays = np.load(path)
        files = arrays.files
    except (ValueError, OSError, AttributeError) as error:
        raise DataError(f"{path} is not an .npz archive of arrays x, y ({type(error).__name__}: {error})") from None
    missing = {"x", "y"} - set(files)
    if missing:
        raise DataError(f"{path} lacks arrays {sorted(missing)}; it has {arrays.files}")
    n = len(arrays["y"])
    if len(arrays["x"]) != n:
        raise DataError(f"{path}: x and y differ in length ({len(arrays['x'])} vs {n})")
    if "x_test" in arrays.files and "y_test" in arrays.files:
        rows = np.arange(n)
        x_tr, y_tr, x_te, y_te = arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]
    else:  # the same split as splitting x and y themselves; per-row arrays follow their rows
        rows, rows_te, y_tr, y_te = _stratified_split(np.arange(n), arrays["y"])
        x_tr, x_te = arrays["x"][rows], arrays["x"][rows_te]
        if "y_clean" in arrays.files:  # the held-out rows measure clean accuracy: their clean labels
            y_te = np.asarray(arrays["y_clean"])[rows_te]
    last, note = image_layout(np.shape(x_tr), layout)
    if last:
        x_tr, x_te = (np.asarray(a).transpose(0, 3, 1, 2) if np.ndim(a) == 4 else a for a in (x_tr, x_te))
    data = replace(_normalised(f"npz:{path.name}", x_tr, y_tr, x_te, y_te), layout_note=note)
    # optional per-row arrays of x: clean labels (real label noise) and a reference hardness (higher = harder)
    extra = {}
    for key, field, dtype in (("y_clean", "y_clean_train", torch.int64), ("hardness", "hardness_train", torch.float32)):
        if key in arrays.files:
            values = np.asarray(arrays[key])
            if values.shape != (n,) or not np.isfinite(values.astype(float)).all():
                raise DataError(f"{path}: {key!r} must be {n} finite values, one per row of x; got shape {values.shape}")
            if key == "y_clean" and (values.astype(np.int64) != values).any():
                raise DataError(f"{path}: 'y_clean' must hold integer class labels")
            extra[field] = torch.as_tensor(values[rows].astype(np.int64 if key == "y_clean" else np.float32), dtype=dtype)
    return replace(data, **extra) if extra else data


# CIFAR-N (Wei et al. 2022): human labels of the CIFAR train images, https://github.com/UCSC-REAL/cifar-10-100n
# name -> (CIFAR dataset, label file in data_root, noise option -> key in that file, default noise option)
CIFAR_N = {
    "cifar10n": ("cifar10", "CIFAR-10_human.pt", {"aggre": "aggre_label", "random1": "random_label1",
                                                  "random2": "random_label2", "random3": "random_label3",
                                                  "worse": "worse_label"}, "aggre"),
    "cifar100n": ("cifar100", "CIFAR-100_human.pt", {"noisy": "noisy_label"}, "noisy"),
}


def load_cifar_n_labels(path: str | Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) train labels from a CIFAR-N label file: a torch-saved dict of numpy
    arrays, read with ``weights_only=True`` and only numpy's array types allowed."""
    path = Path(path)
    if not path.exists():
        raise DatasetNotFound(f"CIFAR-N label file not found: {path}. It is published at "
                              f"https://github.com/UCSC-REAL/cifar-10-100n (data/{path.name}); "
                              f"put it in --data-root beside the CIFAR folder.")
    from numpy._core import multiarray

    dtypes = [type(np.dtype(t)) for t in ("int64", "int32", "int16", "int8", "uint8", "float32", "float64", "bool")]
    allowed = [np.ndarray, np.dtype, *dtypes, multiarray._reconstruct,
               (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    with torch.serialization.safe_globals(allowed):
        labels = torch.load(path, map_location="cpu", weights_only=True)
    missing = {key, "clean_label"} - set(labels)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}; it has {sorted(labels)}")
    noisy, clean = (np.asarray(labels[k]).astype(np.int64).reshape(-1) for k in (key, "clean_label"))
    if noisy.shape != clean.shape:
        raise ValueError(f"{path}: {key!r} has {noisy.size} labels, 'clean_label' {clean.size}")
    return noisy, clean


def load_cifar_n(name: str, data_root: str | Path = "data", download: bool = False, noise: str | None = None) -> Dataset:
    """CIFAR-10N / CIFAR-100N: the CIFAR train images with one set of human labels
    (``noise``), the original labels as ``y_clean_train``, the CIFAR test split unchanged."""
    base, file_name, keys, default = CIFAR_N[name]
    noise = noise or default
    if noise not in keys:
        raise UnknownName(f"{name} noise option", noise, keys)
    data = load_torchvision(base, data_root, download)
    noisy, clean = load_cifar_n_labels(Path(data_root) / file_name, keys[noise])
    if len(clean) != len(data.y_train) or not np.array_equal(clean, data.y_train.numpy()):
        raise ValueError(f"{file_name}: its clean labels do not match the {base} train labels in canonical order")
    return replace(data, name=name if noise == default else f"{name}-{noise}",
                   y_train=torch.as_tensor(noisy), y_clean_train=data.y_train)


def load_cifar10_jpeg(data_root: str | Path = "data", noise: str | None = None) -> Dataset:
    """All of CIFAR-10 from ``<data_root>/cifar10-jpeg/cifar10_jpeg.npz`` (``bench.cifar_jpeg``):
    the ``noise`` label set, the clean labels as ``y_clean_train`` where they differ, the C-scores
    as ``hardness_train`` = -score, a layout note that says the pixels are lossy JPEG."""
    noise, path = cifar_jpeg.label_set(noise), Path(data_root) / cifar_jpeg.FILE
    if not path.exists():
        raise DatasetNotFound(f"CIFAR-10 JPEG file not found: expected {path} (the file {cifar_jpeg.FILE} under "
                              f"--data-root {data_root}; its README says what it holds)")
    a = cifar_jpeg.read(path, noise)
    data = _normalised(a["name"], a["x_train"], a["y_train"], a["x_test"], a["y_test"], 10)
    return replace(data, y_clean_train=None if a["y_clean"] is None else torch.as_tensor(a["y_clean"]),
                   hardness_train=torch.as_tensor(-a["cscores"]), layout_note=cifar_jpeg.LAYOUT_NOTE)


def with_cscores(data: Dataset, data_root: str | Path) -> Dataset:
    """Attach C-scores (Jiang et al. 2021) from ``<data_root>/cscores/<name>-cscores-orig-order.npz``
    when that file exists, as ``hardness_train`` = -score (a high C-score means easy). The
    file's ``labels`` must equal the train labels (the clean ones where known)."""
    base = next((spec[0] for n, spec in CIFAR_N.items() if data.name == n or data.name.startswith(f"{n}-")), data.name)
    path = Path(data_root) / "cscores" / f"{base}-cscores-orig-order.npz"
    if not path.exists():
        return data
    with np.load(path) as arrays:
        scores, labels = np.asarray(arrays["scores"], dtype=np.float32), np.asarray(arrays["labels"])
    reference = (data.y_clean_train if data.y_clean_train is not None else data.y_train).numpy()
    if scores.shape != reference.shape or not np.array_equal(labels, reference):
        raise ValueError(f"C-score file {path} is not aligned with the {data.name} train split: its labels differ "
                         f"from the dataset's ({len(labels)} vs {len(reference)} labels, "
                         f"{int((labels != reference).sum()) if labels.shape == reference.shape else 'n/a'} differ); "
                         "expected the scores in the dataset's canonical order")
    return replace(data, hardness_train=torch.as_tensor(-scores))


SYNTHETIC = {"blobs": make_blobs, "moons": make_moons, "spirals": make_spirals, "blobs2d": make_blobs2d,
             "spirals3": lambda: replace(make_spirals(arms=3), name="spirals3")}  # 3 arms, the SkelEx paper's task
TABULAR = {"breast-cancer": load_breast_cancer_dataset}  # bundled with scikit-learn: no download
DATASET_NAMES = ["digits", *TABULAR, *SYNTHETIC, *_TORCHVISION, *CIFAR_N, cifar_jpeg.NAME, "npz:PATH"]


def load_dataset(name: str, data_root: str | Path = "data", download: bool = False, subset: int | None = None,
                 noise: str | None = None, layout: str = "auto") -> Dataset:
    """Load a dataset by name; ``subset`` keeps a stratified random subset of the
    train split (and of the test split, in proportion), drawn with a fixed seed.
    ``noise`` picks the human label set of ``cifar10n`` / ``cifar100n``. Torchvision
    datasets carry C-scores as ``hardness_train`` where ``<data_root>/cscores/`` has them."""
    if noise is not None and name not in (*CIFAR_N, cifar_jpeg.NAME):
        raise UnknownName("dataset with a noise option", name, [*CIFAR_N, cifar_jpeg.NAME])
    if name == "digits":
        data = load_digits_dataset()
    elif name in TABULAR:
        data = TABULAR[name]()
    elif name in SYNTHETIC:
        data = SYNTHETIC[name]()
    elif name in _TORCHVISION:
        data = with_cscores(load_torchvision(name, data_root, download), data_root)
    elif name in CIFAR_N:
        data = with_cscores(load_cifar_n(name, data_root, download, noise), data_root)
    elif name == cifar_jpeg.NAME:
        data = load_cifar10_jpeg(data_root, noise)
    elif name.startswith("npz:"):
        data = load_npz(name[4:], layout)
    else:
        raise UnknownName("dataset", name, DATASET_NAMES)
    return subsample(data, subset) if subset else data


def subsample(data: Dataset, n_train: int) -> Dataset:
    """A stratified subset with ``n_train`` train samples and test in proportion."""
    from sklearn.model_selection import train_test_split

    def keep(y, n):
        if n >= len(y):
            return torch.arange(len(y))
        idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y.numpy(), random_state=SPLIT_SEED)
        return torch.as_tensor(np.sort(idx))

    n_test = max(1, round(n_train * len(data.y_test) / len(data.y_train)))
    rows = keep(data.y_train, n_train)
    test_rows = keep(data.y_test, n_test)
    per_row = {k: getattr(data, k)[rows] for k in ("y_clean_train", "hardness_train") if getattr(data, k) is not None}
    return replace(data, subset=n_train, x_train=data.x_train[rows], y_train=data.y_train[rows],
                   x_test=data.x_test[test_rows], y_test=data.y_test[test_rows], **per_row)
