"""Where the datasets come from: files on disk or tensorflow-datasets, read into arrays.

| name | source |
|---|---|
| `fashion_mnist` | the four IDX files (Debian package `dataset-fashion-mnist`, or `data_dir`) |
| `cifar10` | the python batch directory `cifar-10-batches-py` (`data_dir`), or tfds |
| `imagenet2012` | tfds `imagenet2012`, built from the manually downloaded ILSVRC2012 tars |

All offline except the first-time tensorflow-datasets builds. A missing or corrupt file
is a one-line error that names the file and says what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = [
    "CIFAR10_BATCHES",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DatasetInfo",
    "dataset_info",
    "load_arrays",
    "load_cifar10",
    "load_fashion_mnist",
    "load_split",
    "read_idx",
]

#: Where the Debian package `dataset-fashion-mnist` installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
}
_IDX_UINT8 = 0x08

#: The files of CIFAR-10's python version (cifar-10-python.tar.gz, extracted) per split.
CIFAR10_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR10_LAYOUT = (
    "Expected CIFAR-10's python version (cifar-10-python.tar.gz, extracted): a directory "
    "`cifar-10-batches-py` holding data_batch_1 ... data_batch_5 and test_batch, each a "
    "pickled dict with b'data' (uint8 array N x 3072, each row 1024 red, then 1024 "
    "green, then 1024 blue values of a 32x32 image, row-major) and b'labels' (N ints 0-9)."
)
_IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")

_SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a training recipe needs to know about a dataset.

    # Arguments
        name: the name `make_dataset` takes.
        input_shape: (height, width, channels) of the images the pipelines yield.
        num_classes: number of labels.
        train_size: examples in the training split.
        test_size: examples in the test split (ImageNet: the 50,000 validation images).
        augmentation: `"crop_flip"` (pad 4, random crop, horizontal flip) or
            `"imagenet"` (random resized crop, flip, colour jitter).
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    augmentation: str


#: The datasets `make_dataset` knows, by name.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("fashion_mnist", (28, 28, 1), 10, 60000, 10000, "crop_flip"),
        DatasetInfo("cifar10", (32, 32, 3), 10, 50000, 10000, "crop_flip"),
        DatasetInfo("imagenet2012", (224, 224, 3), 1000, 1281167, 50000, "imagenet"),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The `DatasetInfo` of dataset `name`.

    # Raises
        ValueError: an unknown `name`; the message lists the known ones.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    return DATASETS[name]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzip-compressed) into an array.

    IDX: two zero bytes, a type byte (0x08 = uint8), the number of dimensions, each
    dimension as a big-endian uint32, then the data. A name ending in `.gz` is read
    through gzip.

    # Arguments
        path: the file, e.g. `train-images-idx3-ubyte.gz`.

    # Returns
        A read-only uint8 array of the shape the header gives.

    # Raises
        FileNotFoundError: `path` is not a file.
        ValueError: a one-line message naming `path` and what was expected, for every
            decompression error (not gzip, a corrupt deflate stream, a truncated stream,
            a CRC or length mismatch) and every format error (magic number, header,
            data size).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    compressed = path.suffix == ".gz"
    expected_kind = "a gzip-compressed IDX file" if compressed else "an IDX file"
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            raw = f.read()
    # gzip reports a bad header or CRC as OSError (BadGzipFile), a cut stream as
    # EOFError, and a corrupt deflate stream as zlib.error.
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(
            f"{path}: cannot read ({type(e).__name__}: {e}); expected {expected_kind} of "
            "unsigned bytes"
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UINT8:
        raise ValueError(
            f"{path}: not an IDX file of unsigned bytes: expected the magic number "
            f"00 00 08 <dimensions>, got {raw[:4].hex(' ') or 'an empty file'}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: IDX header truncated: expected {header} bytes for {ndim} dimensions, "
            f"got {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(
            f"{path}: IDX data has {len(raw) - header} bytes, header says shape {shape} "
            f"({expected - header} bytes)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _fashion_mnist_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split of Fashion-MNIST, reading only that split's two files."""
    images_name, labels_name, count = _FASHION_MNIST_FILES[split]
    images = read_idx(data_dir / images_name)
    labels = read_idx(data_dir / labels_name)
    if images.shape != (count, 28, 28) or labels.shape != (count,):
        raise ValueError(
            f"{data_dir}: expected {count} images of 28x28 in {images_name} and "
            f"{count} labels in {labels_name}, got shapes {images.shape} and "
            f"{labels.shape}"
        )
    if labels.max() > 9:
        raise ValueError(
            f"{data_dir / labels_name}: expected labels 0-9, got labels up to {labels.max()}"
        )
    return images[..., None], labels.astype(np.int64)


def _fashion_mnist_dir(data_dir: str | os.PathLike | None, splits: tuple[str, ...]) -> Path:
    data_dir = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    if not data_dir.is_dir():
        names = [n for split in splits for n in _FASHION_MNIST_FILES[split][:2]]
        raise FileNotFoundError(
            f"Fashion-MNIST directory not found: {data_dir}. Expected the IDX files "
            f"{names} there; install the Debian package dataset-fashion-mnist or pass the "
            "directory."
        )
    return data_dir


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST from its four IDX files: ((x_train, y_train), (x_test, y_test)).

    Images are uint8 of shape (N, 28, 28, 1), labels int64 of shape (N,). To read one
    split only (the test split needs only the two `t10k-` files), use
    `load_split("fashion_mnist", data_dir, "test")`.

    # Arguments
        data_dir: directory holding `train-images-idx3-ubyte.gz`,
            `train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz` and
            `t10k-labels-idx1-ubyte.gz`; default /usr/share/datasets/fashion-mnist
            (Debian package `dataset-fashion-mnist`).

    # Raises
        FileNotFoundError: the directory or one of the four files is missing.
        ValueError: a file that cannot be read as IDX (see `read_idx`), or that holds
            other shapes than 60,000/10,000 images of 28x28 and their labels 0-9.
    """
    data_dir = _fashion_mnist_dir(data_dir, _SPLITS)
    train, test = (_fashion_mnist_split(data_dir, split) for split in _SPLITS)
    return train, test


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches only: dicts, lists, bytes and NumPy arrays.

    A pickle can run arbitrary code when loaded; CIFAR-10's batches need no more than
    NumPy's array reconstruction, so anything else is refused.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}. {_CIFAR10_LAYOUT}")
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can raise almost anything
        raise ValueError(
            f"{path}: cannot read as a CIFAR-10 python batch ({type(e).__name__}: {e}). "
            f"{_CIFAR10_LAYOUT}"
        ) from e
    if not (isinstance(batch, dict) and b"data" in batch and b"labels" in batch):
        raise ValueError(
            f"{path}: expected a dict with keys b'data' and b'labels', got "
            f"{type(batch).__name__} {sorted(batch) if isinstance(batch, dict) else ''}. "
            f"{_CIFAR10_LAYOUT}"
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: b'data' must be uint8 of shape (N, 3072), got {data.dtype} of shape "
            f"{data.shape}. {_CIFAR10_LAYOUT}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: b'labels' must hold {len(data)} integers (one per image), got "
            f"{labels.dtype} of shape {labels.shape}. {_CIFAR10_LAYOUT}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be 0-9, got {labels.min()}..{labels.max()}")
    # Rows are channel-major (CHW); the models take NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _cifar10_batch_dir(data_dir: Path) -> Path:
    nested = data_dir / "cifar-10-batches-py"
    return nested if nested.is_dir() else data_dir


def load_cifar10(
    data_dir: str | os.PathLike,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10 from its python batch files: ((x_train, y_train), (x_test, y_test)).

    Images are uint8 of shape (N, 32, 32, 3), labels int64 of shape (N,); 50,000 and
    10,000 images for the real dataset (any N per batch file is accepted).

    # Arguments
        data_dir: the `cifar-10-batches-py` directory of the extracted
            cifar-10-python.tar.gz (or the directory that contains it), with
            `data_batch_1` ... `data_batch_5` and `test_batch`.

    # Raises
        FileNotFoundError: the directory or a batch file is missing.
        ValueError: a batch file that is not a CIFAR-10 python batch (a corrupt or
            foreign pickle, wrong keys, shapes, types or labels), naming the file and the
            expected layout.
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory not found: {data_dir}. {_CIFAR10_LAYOUT}")
    batch_dir = _cifar10_batch_dir(data_dir)
    train, test = (_cifar10_split(batch_dir, split) for split in _SPLITS)
    return train, test


def _cifar10_split(batch_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split of CIFAR-10, reading only that split's batch files."""
    parts = [_read_cifar10_batch(batch_dir / name) for name in CIFAR10_BATCHES[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _tfds_split(
    name: str, data_dir: str | os.PathLike | None, download: bool, split: str
) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow_datasets as tfds

    images, labels = tfds.as_numpy(
        tfds.load(
            name,
            split=split,
            batch_size=-1,
            as_supervised=True,
            data_dir=None if data_dir is None else os.fspath(data_dir),
            download=download,
        )
    )
    return images, labels.astype(np.int64)


def _load_split_uncached(
    name: str, data_dir: str | os.PathLike | None, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `split` of `name`, reading only the files of that split."""
    dataset_info(name)
    if split not in _SPLITS:
        raise ValueError(f"`split` must be one of {_SPLITS}, got split={split!r}.")
    if name == "fashion_mnist":
        if data_dir is not None or FASHION_MNIST_DIR.is_dir():
            return _fashion_mnist_split(_fashion_mnist_dir(data_dir, (split,)), split)
        try:
            return _tfds_split("fashion_mnist", None, True, split)
        except Exception as e:  # tfds raises many kinds when it cannot download
            raise FileNotFoundError(
                f"No Fashion-MNIST data: {FASHION_MNIST_DIR} does not exist (install the "
                "Debian package dataset-fashion-mnist, or pass the directory of the four "
                "IDX files as data_dir / --data-dir), and tensorflow-datasets could not "
                f"download it: {type(e).__name__}: {e}"
            ) from e
    if name == "cifar10":
        if data_dir is None:
            return _tfds_split("cifar10", None, True, split)
        data_dir = Path(data_dir).expanduser()
        batch_dir = _cifar10_batch_dir(data_dir)
        if any((batch_dir / f).exists() for files in CIFAR10_BATCHES.values() for f in files):
            return _cifar10_split(batch_dir, split)
        if (data_dir / "cifar10").is_dir():
            return _tfds_split("cifar10", data_dir, False, split)
        raise FileNotFoundError(
            f"No CIFAR-10 data in {data_dir}: found neither the python batch files nor a "
            f"tensorflow-datasets `cifar10/` directory. {_CIFAR10_LAYOUT}"
        )
    raise ValueError(
        f"load_arrays: {name!r} is too large to load into memory; use make_dataset({name!r}, ...)."
    )


def _load_arrays_uncached(
    name: str, data_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    train, test = (_load_split_uncached(name, data_dir, split) for split in _SPLITS)
    return train, test


def load_arrays(
    name: str, data_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A small dataset in memory: ((x_train, y_train), (x_test, y_test)), uint8 NHWC images.

    # Arguments
        name: `"fashion_mnist"` or `"cifar10"` (ImageNet does not fit in memory: use
            `make_dataset`).
        data_dir: Fashion-MNIST: the directory of its IDX files (default
            `FASHION_MNIST_DIR`; when that is missing too, tfds downloads
            `fashion_mnist`). CIFAR-10: the `cifar-10-batches-py` directory (or its
            parent), or a tensorflow-datasets data directory holding a built `cifar10/`;
            None reads (and, the first time, downloads) tfds `cifar10` in tfds' default
            directory.

    The arrays are cached (read-only) per (name, data_dir, split), so building the
    training and the test pipeline reads the files once. `load_split` reads one split.

    # Raises
        ValueError: an unknown name, ImageNet, or a corrupt file (naming it).
        FileNotFoundError: no data where it was looked for, saying what was expected.
    """
    train, test = (load_split(name, data_dir, split) for split in _SPLITS)
    return train, test


def load_split(
    name: str, data_dir: str | os.PathLike | None, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """One split of a small dataset in memory: (images, labels), uint8 NHWC images.

    Reads only the files of that split: Fashion-MNIST's test split needs only
    `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`, CIFAR-10's only
    `test_batch`. The arrays are the ones `load_arrays` returns (the same cache).

    # Arguments
        name: `"fashion_mnist"` or `"cifar10"`.
        data_dir: where the data is, as for `load_arrays`.
        split: `"train"` or `"test"`.

    # Raises
        ValueError: an unknown name or split, ImageNet, or a corrupt file (naming it).
        FileNotFoundError: no data where it was looked for, saying what was expected.
    """
    key = None if data_dir is None else os.fspath(Path(data_dir).expanduser().resolve())
    return _cached_split(name, key, split)


@functools.lru_cache(maxsize=4)
def _cached_split(name: str, data_dir: str | None, split: str):
    images, labels = _load_split_uncached(name, data_dir, split)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _imagenet_builder(data_dir: str | os.PathLike | None):
    import tensorflow_datasets as tfds

    builder = tfds.builder(
        "imagenet2012", data_dir=None if data_dir is None else os.fspath(data_dir)
    )
    if tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        return builder
    # tfds' layout: <data_dir>/imagenet2012/<version>/ and <data_dir>/downloads/manual/.
    root = Path(builder.data_dir).parents[1]
    manual_dir = root / "downloads" / "manual"
    missing = [f for f in _IMAGENET_MANUAL_FILES if not (manual_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"ImageNet is not built in {root} (no {builder.data_dir}/dataset_info.json) and "
            f"cannot be built: missing {', '.join(str(manual_dir / f) for f in missing)}. "
            "tensorflow-datasets builds `imagenet2012` from the ILSVRC2012 archives, which "
            "need a registration at https://image-net.org: put ILSVRC2012_img_train.tar "
            f"and ILSVRC2012_img_val.tar into {manual_dir} (or pass --data-dir DIR with "
            "them in DIR/downloads/manual), or build it beforehand with `tfds build "
            "imagenet2012 --manual_dir ...`."
        )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))
    )
    return builder
