"""CIFAR-10 in full as lossy JPEG: ``--dataset cifar10-jpeg --noise clean|aggre|worst``.

The file ``<data_root>/cifar10-jpeg/cifar10_jpeg.npz`` holds the 50,000 train and 10,000 test
images of CIFAR-10 in canonical order as their original JPEG byte streams (quality 75; mean
absolute error 5.8/255 against the exact pixels), the clean labels, the CIFAR-10N aggregate
(9.01% noise) and worst (40.21%) human labels of the train images (Wei et al. 2022, ICLR) and
their C-scores (Jiang et al. 2021). The images are decoded once (``torchvision.io.decode_jpeg``,
batched: twice as fast as Pillow here and bit-identical to it) and kept in the dataset cache.

- ``clean``: the clean labels; ``aggre`` / ``worst``: the human labels, the clean ones kept as
  ``y_clean_train`` (real label noise for the detection track);
- the official 10,000 test images are the test split;
- the C-scores enter as ``hardness_train`` = -score (a high C-score means easy).

Board folders and headers name the data "CIFAR-10 (JPEG q75)": results on these pixels are close
to, not the same as, results on the original ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

NAME = "cifar10-jpeg"
FILE = Path("cifar10-jpeg") / "cifar10_jpeg.npz"
#: --noise -> the array of train labels
LABELS = {"clean": "y_train", "aggre": "y_train_aggre", "worst": "y_train_worst"}
LAYOUT_NOTE = ("CIFAR-10 (JPEG q75): the original JPEG files at quality 75, lossy (mean absolute error 5.8/255 "
               "against the exact pixels), not the original PNG pixels")


def decode(stream: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, 3, H, W) uint8 images from concatenated JPEG byte streams (image i is
    ``stream[offsets[i]:offsets[i + 1]]``)."""
    import torchvision

    data = torch.from_numpy(np.ascontiguousarray(stream))
    files = [data[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    return torch.stack(torchvision.io.decode_jpeg(files, mode=torchvision.io.ImageReadMode.RGB)).numpy()


def label_set(noise: str | None) -> str:
    """The ``--noise`` option, checked: ``clean`` where none is given."""
    from .errors import UnknownName

    if (noise or "clean") not in LABELS:
        raise UnknownName(f"{NAME} noise option", noise, LABELS)
    return noise or "clean"


def read(path: Path, noise: str | None = None) -> dict:
    """The arrays of the file at ``path`` with the ``noise`` label set (default ``clean``): the
    decoded images in [0, 1] as (N, 3, 32, 32) float32, the given and clean train labels, the test
    labels and the C-scores (``bench.data.load_cifar10_jpeg`` makes the dataset of them)."""
    noise = label_set(noise)
    with np.load(path) as z:
        return {"name": NAME if noise == "clean" else f"{NAME}-{noise}",
                "x_train": decode(z["train_jpeg"], z["train_offsets"]).astype(np.float32) / 255.0,
                "x_test": decode(z["test_jpeg"], z["test_offsets"]).astype(np.float32) / 255.0,
                "y_train": z[LABELS[noise]].astype(np.int64), "y_test": z["y_test"].astype(np.int64),
                "y_clean": None if noise == "clean" else z["y_train"].astype(np.int64),
                "cscores": z["cscore_train"].astype(np.float32)}
