"""Datasets for training and evaluating larq-irnet models.

Images come as raw uint8 pixels (N, H, W, C); models normalize inside themselves, so a
converted .tflite model takes the same input a camera gives.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_DIR", "load_fashion_mnist", "read_idx"]

#: Where the Debian package `dataset-fashion-mnist` installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_IDX_UINT8 = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzip-compressed) into an array.

    IDX: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, each
    dimension as a big-endian uint32, then the data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read ({e}); expected an IDX file") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UINT8:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header truncated")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX data has {len(raw) - header} bytes, header says shape {shape} "
            f"({expected - header} bytes)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST from its four IDX files: ((x_train, y_train), (x_test, y_test)).

    Images are uint8 of shape (N, 28, 28, 1), labels int64 of shape (N,).

    # Arguments
        data_dir: directory holding `train-images-idx3-ubyte.gz`,
            `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz` and
            `t10k-labels-idx1-ubyte.gz`; default /usr/share/datasets/fashion-mnist
            (Debian package `dataset-fashion-mnist`).
    """
    data_dir = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST directory not found: {data_dir}. Expected the four IDX files "
            f"{[n for f in _FASHION_MNIST_FILES.values() for n in f[:2]]} there; install "
            "the Debian package dataset-fashion-mnist or pass the directory."
        )
    splits = []
    for images_name, labels_name, count in _FASHION_MNIST_FILES.values():
        images = read_idx(data_dir / images_name)
        labels = read_idx(data_dir / labels_name)
        if images.shape != (count, 28, 28) or labels.shape != (count,):
            raise ValueError(
                f"{data_dir}: expected {count} images of 28x28 in {images_name} and "
                f"{count} labels in {labels_name}, got shapes {images.shape} and "
                f"{labels.shape}"
            )
        if labels.max() > 9:
            raise ValueError(f"{data_dir / labels_name}: labels must be 0-9")
        splits.append((images[..., None], labels.astype(np.int64)))
    return splits[0], splits[1]
