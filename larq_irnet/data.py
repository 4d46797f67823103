r"""Datasets for training and evaluating larq-irnet models, as `tf.data` pipelines.

Images come as raw pixels (uint8 arrays, float32 0..255 in the pipelines); models
normalize inside themselves, so a converted .tflite model takes the same input a camera
gives.

Sources, all offline except the first-time tensorflow-datasets builds:

| name | source |
|---|---|
| `fashion_mnist` | the four IDX files (Debian package `dataset-fashion-mnist`, or `data_dir`) |
| `cifar10` | the python batch directory `cifar-10-batches-py` (`data_dir`), or tfds |
| `imagenet2012` | tfds `imagenet2012`, built from the manually downloaded ILSVRC2012 tars |

```python
from larq_irnet.data import make_dataset

train = make_dataset("cifar10", "train", 128, data_dir="~/data/cifar-10-batches-py")
test = make_dataset("cifar10", "test", 500, data_dir="~/data/cifar-10-batches-py")
model.fit(train, steps_per_epoch=50000 // 128, epochs=400, validation_data=test)
```

The training split is an endless, deterministic stream: data epoch d is a permutation
drawn from (seed, d), and the augmentation of batch b from (seed, b), so batch b is the
same batch whatever happened before it, which is what lets an interrupted run resume
exactly (`start_batch`).

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Sec. 4](https://arxiv.org/abs/1909.10788); augmentation as
  in the authors' CIFAR-10 trainers and ImageNet configs.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import tensorflow as tf

__all__ = [
    "CIFAR10_BATCHES",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DatasetInfo",
    "array_dataset",
    "color_jitter",
    "dataset_info",
    "imagenet_eval_image",
    "imagenet_train_image",
    "jpeg_dataset",
    "load_arrays",
    "load_cifar10",
    "load_fashion_mnist",
    "make_dataset",
    "pad_crop_flip",
    "random_color_jitter",
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
    """The `DatasetInfo` of dataset `name`, or a ValueError listing the known names."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {sorted(DATASETS)}.")
    return DATASETS[name]


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
    """
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory not found: {data_dir}. {_CIFAR10_LAYOUT}")
    batch_dir = _cifar10_batch_dir(data_dir)
    splits = []
    for split in _SPLITS:
        parts = [_read_cifar10_batch(batch_dir / name) for name in CIFAR10_BATCHES[split]]
        splits.append(
            (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        )
    return splits[0], splits[1]


def _tfds_arrays(
    name: str, data_dir: str | os.PathLike | None, download: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import tensorflow_datasets as tfds

    splits = []
    for split in ("train", "test"):
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
        splits.append((images, labels.astype(np.int64)))
    return splits[0], splits[1]


def _load_arrays_uncached(
    name: str, data_dir: str | os.PathLike | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    dataset_info(name)
    if name == "fashion_mnist":
        if data_dir is not None or FASHION_MNIST_DIR.is_dir():
            return load_fashion_mnist(data_dir)
        try:
            return _tfds_arrays("fashion_mnist", None, download=True)
        except Exception as e:  # tfds raises many kinds when it cannot download
            raise FileNotFoundError(
                f"No Fashion-MNIST data: {FASHION_MNIST_DIR} does not exist (install the "
                "Debian package dataset-fashion-mnist, or pass the directory of the four "
                "IDX files as data_dir / --data-dir), and tensorflow-datasets could not "
                f"download it: {type(e).__name__}: {e}"
            ) from e
    if name == "cifar10":
        if data_dir is None:
            return _tfds_arrays("cifar10", None, download=True)
        data_dir = Path(data_dir).expanduser()
        batch_dir = _cifar10_batch_dir(data_dir)
        if any((batch_dir / f).exists() for files in CIFAR10_BATCHES.values() for f in files):
            return load_cifar10(data_dir)
        if (data_dir / "cifar10").is_dir():
            return _tfds_arrays("cifar10", data_dir, download=False)
        raise FileNotFoundError(
            f"No CIFAR-10 data in {data_dir}: found neither the python batch files nor a "
            f"tensorflow-datasets `cifar10/` directory. {_CIFAR10_LAYOUT}"
        )
    raise ValueError(
        f"load_arrays: {name!r} is too large to load into memory; use make_dataset({name!r}, ...)."
    )


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

    The arrays are cached (read-only) per (name, data_dir), so building the training
    and the test pipeline reads the files once.
    """
    key = None if data_dir is None else os.fspath(Path(data_dir).expanduser().resolve())
    return _cached_arrays(name, key)


@functools.lru_cache(maxsize=2)
def _cached_arrays(name: str, data_dir: str | None):
    splits = _load_arrays_uncached(name, data_dir)
    for array in (array for split in splits for array in split):
        array.flags.writeable = False
    return splits


def pad_crop_flip(
    images: tf.Tensor, seed: tf.Tensor, padding: int = 4, flip: bool = True
) -> tf.Tensor:
    """Random crops of the zero-padded images back to their size, then random horizontal flips.

    The CIFAR-10 augmentation of the authors' trainers (torchvision's `RandomCrop(32,
    padding=4)` and `RandomHorizontalFlip()`), for a batch at once and stateless: each
    image gets its own offset (uniform in 0..2*padding on both axes) and coin flip, all
    drawn from `seed`. The padding is 0 (black) in raw pixels, as torchvision pads
    before normalizing.

    # Arguments
        images: a batch (B, H, W, C), any dtype; the result keeps it.
        seed: shape (2,) integer tensor, e.g. from `tf.random.experimental.stateless_split`.
        padding: pixels added on each side before cropping.
        flip: whether to flip each image left-right with probability 1/2.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    offset_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    offsets = tf.random.stateless_uniform(
        [2, batch], seed=offset_seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32
    )
    top, left = offsets[0], offsets[1]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    rows = top[:, None] + tf.range(height)[None, :]
    columns = tf.range(width)[None, :]
    if flip:
        coins = tf.random.stateless_uniform(
            [batch], seed=flip_seed, minval=0, maxval=2, dtype=tf.int32
        )
        flipped = tf.equal(coins, 1)[:, None]
        columns = tf.where(flipped, width - 1 - columns, columns)
    columns = left[:, None] + columns
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    out = tf.gather(out, columns, axis=2, batch_dims=1)
    out.set_shape(images.shape)
    return out


def color_jitter(
    image: tf.Tensor,
    brightness: tf.Tensor | float,
    contrast: tf.Tensor | float,
    saturation: tf.Tensor | float,
    hue: tf.Tensor | float,
) -> tf.Tensor:
    r"""Adjust an RGB image of raw pixels (0..255) by given factors, as torchvision's ColorJitter.

    With g(x) the luma 0.299 R + 0.587 G + 0.114 B and every step clipped to [0, 255]:

    \\[
    x \leftarrow b\,x, \qquad
    x \leftarrow c\,x + (1 - c)\,\overline{g(x)}, \qquad
    x \leftarrow s\,x + (1 - s)\,g(x), \qquad
    \text{hue} \leftarrow \text{hue} + h
    \\]

    b, c, s are factors (1 = unchanged), h a hue shift in turns ([-0.5, 0.5]).
    torchvision applies the four in a random order; here the order is fixed.
    """
    image = tf.cast(image, tf.float32)

    def clip(x):
        return tf.clip_by_value(x, 0.0, 255.0)

    image = clip(image * brightness)
    mean_luma = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = clip(contrast * image + (1.0 - contrast) * mean_luma)
    image = clip(saturation * image + (1.0 - saturation) * tf.image.rgb_to_grayscale(image))
    return clip(tf.image.adjust_hue(image / 255.0, hue) * 255.0)


def random_color_jitter(
    image: tf.Tensor,
    seed: tf.Tensor,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
    hue: float = 0.1,
) -> tf.Tensor:
    """`color_jitter` with factors drawn uniformly from [1 - x, 1 + x] (hue: [-hue, hue]).

    The defaults are the colour jitter 0.2/0.2/0.2/0.1 of the authors' ImageNet configs.
    """
    factors = tf.random.stateless_uniform([4], seed=seed, minval=-1.0, maxval=1.0)
    return color_jitter(
        image,
        1.0 + brightness * factors[0],
        1.0 + contrast * factors[1],
        1.0 + saturation * factors[2],
        hue * factors[3],
    )


def imagenet_train_image(encoded_jpeg: tf.Tensor, seed: tf.Tensor, size: int = 224) -> tf.Tensor:
    """ImageNet training augmentation: random resized crop, flip, colour jitter.

    As torchvision's `RandomResizedCrop(size)` (area 8%-100% of the image, aspect ratio
    3/4-4/3; after 10 failed attempts the whole image), `RandomHorizontalFlip()` and
    `ColorJitter(0.2, 0.2, 0.2, 0.1)`. Only the crop is decoded from the JPEG.

    # Arguments
        encoded_jpeg: a scalar string tensor, one JPEG file.
        seed: shape (2,) integer tensor.
        size: output height and width.

    # Returns
        float32 (size, size, 3), values in [0, 255].
    """
    crop_seed, flip_seed, jitter_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3)
    )
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.image.extract_jpeg_shape(encoded_jpeg),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=crop_seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])
    image = tf.image.decode_and_crop_jpeg(encoded_jpeg, window, channels=3)
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    image = random_color_jitter(image, jitter_seed)
    image.set_shape((size, size, 3))
    return image


def imagenet_eval_image(encoded_jpeg: tf.Tensor, resize: int = 256, size: int = 224) -> tf.Tensor:
    """ImageNet evaluation: shorter side resized to `resize`, then the central `size` crop.

    As torchvision's `Resize(256)` + `CenterCrop(224)`: the longer side becomes
    int(long * resize / short), the crop's offset round((side - size) / 2).

    # Returns
        float32 (size, size, 3), values in [0, 255].
    """
    image = tf.image.decode_jpeg(encoded_jpeg, channels=3)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    new_height = (height * resize) // short
    new_width = (width * resize) // short
    image = tf.image.resize(image, [new_height, new_width], method="bilinear", antialias=True)
    top = tf.cast(tf.round((new_height - size) / 2), tf.int32)
    left = tf.cast(tf.round((new_width - size) / 2), tf.int32)
    image = tf.image.crop_to_bounding_box(image, top, left, size, size)
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape((size, size, 3))
    return image


def _stream_keys(seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Independent root seeds for the shuffle and for the augmentation of a stream."""
    keys = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), num=2)
    return keys[0], keys[1]


def _check_batching(batch_size: int, start_batch: int) -> None:
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if not (isinstance(start_batch, int) and start_batch >= 0):
        raise ValueError(f"`start_batch` must be an integer >= 0, got {start_batch!r}.")


def _with_options(dataset: tf.data.Dataset, shard_by_data: bool) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    if shard_by_data:
        # In-memory sources have no files to split between workers.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def array_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: bool | None = None,
    seed: int = 0,
    start_batch: int = 0,
    flip: bool = True,
) -> tf.data.Dataset:
    """Batches of (float32 raw-pixel images, int64 labels) from arrays in memory.

    With `training=True`: an endless stream of full batches. Data epoch d visits
    the examples in the order of a permutation drawn from (seed, d) (the last
    N mod batch_size of it are left out); batch number b of the stream is augmented
    with `pad_crop_flip` seeded by (seed, b). The stream starts at batch `start_batch`,
    and batch b is the same whatever `start_batch` is. With `training=False`: one pass
    in order, the last batch possibly smaller, no augmentation unless asked.

    # Arguments
        images: uint8 (N, H, W, C).
        labels: integer (N,).
        batch_size: examples per batch (the global batch under `tf.distribute`).
        training: endless shuffled stream (True) or one ordered pass (False).
        augment: apply `pad_crop_flip` (default: `training`).
        seed: seed of the shuffle and the augmentation.
        start_batch: first batch of the training stream (for resuming).
        flip: with augmentation, also flip horizontally.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 4 or labels.shape != (len(images),) or len(images) == 0:
        raise ValueError(
            "array_dataset: expected images of shape (N, H, W, C) and labels of shape (N,) "
            f"with N > 0, got {images.shape} and {labels.shape}."
        )
    _check_batching(batch_size, start_batch)
    augment = training if augment is None else augment
    shuffle_key, augment_key = _stream_keys(seed)
    images_t = tf.constant(images)
    labels_t = tf.constant(labels.astype(np.int64))

    def load(indices, batch_number):
        batch = tf.gather(images_t, indices)
        if augment:
            key = tf.random.experimental.stateless_fold_in(augment_key, batch_number)
            batch = pad_crop_flip(batch, key, flip=flip)
        return tf.cast(batch, tf.float32), tf.gather(labels_t, indices)

    n = len(images)
    if not training:
        dataset = tf.data.Dataset.range(n).batch(batch_size)
        dataset = dataset.map(lambda index: load(index, index[0]))
        return _with_options(dataset, shard_by_data=True)

    per_epoch = n // batch_size
    if per_epoch == 0:
        raise ValueError(
            f"array_dataset: batch_size={batch_size} is larger than the {n} training examples."
        )
    first_epoch, first_batch = divmod(start_batch, per_epoch)

    def epoch_batches(epoch):
        keys = tf.random.stateless_uniform(
            [n], seed=tf.random.experimental.stateless_fold_in(shuffle_key, epoch)
        )
        order = tf.argsort(keys, stable=True)[: per_epoch * batch_size]
        batches = tf.reshape(tf.cast(order, tf.int64), [per_epoch, batch_size])
        numbers = epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((batches, numbers))

    dataset = tf.data.Dataset.counter(start=first_epoch).flat_map(epoch_batches)
    dataset = dataset.skip(first_batch).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return _with_options(dataset, shard_by_data=True)


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


def _resumed_shuffle_seed(seed: int, start_batch: int) -> int:
    # Files and shuffle buffers cannot be fast-forwarded: a resumed stream draws a new
    # shuffle from (seed, start_batch).
    return int(seed) * 1_000_003 + start_batch


def jpeg_dataset(
    examples: tf.data.Dataset,
    batch_size: int,
    *,
    training: bool,
    augment: bool | None = None,
    seed: int = 0,
    start_batch: int = 0,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Batches of (float32 raw-pixel images, labels) from (JPEG bytes, label) examples.

    With `training=True`: an endless stream of full batches, shuffled through a buffer
    of `shuffle_buffer` examples; example number i of the stream (counted from
    `start_batch * batch_size`) gets `imagenet_train_image` seeded by (seed, i). With
    `training=False`: one ordered pass of `imagenet_eval_image` (or the training
    augmentation with `augment=True`), the last batch possibly smaller.

    # Arguments
        examples: a dataset of (scalar string JPEG, label) pairs, e.g. tfds'
            `imagenet2012` read with `tfds.decode.SkipDecoding()` and `as_supervised`.
        batch_size: examples per batch (the global batch under `tf.distribute`).
        training: endless shuffled stream (True) or one ordered pass (False).
        augment: ImageNet training augmentation (default: `training`).
        seed: seed of the shuffle and the augmentation.
        start_batch: number of the first batch, when resuming; the shuffle is then
            drawn anew from (seed, start_batch).
        shuffle_buffer: examples in the shuffle buffer.
    """
    _check_batching(batch_size, start_batch)
    augment = training if augment is None else augment
    _, augment_key = _stream_keys(seed)
    if training:
        shuffle_seed = _resumed_shuffle_seed(seed, start_batch)
        examples = examples.shuffle(shuffle_buffer, seed=shuffle_seed).repeat()

    def preprocess(position, example):
        jpeg, label = example
        if augment:
            key = tf.random.experimental.stateless_fold_in(augment_key, position)
            return imagenet_train_image(jpeg, key), label
        return imagenet_eval_image(jpeg), label

    dataset = examples.enumerate(start=start_batch * batch_size)
    dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return _with_options(dataset, shard_by_data=False)


def _imagenet_dataset(
    split: str,
    batch_size: int,
    augment: bool,
    data_dir: str | os.PathLike | None,
    seed: int,
    start_batch: int,
    limit: int | None,
) -> tf.data.Dataset:
    import tensorflow_datasets as tfds

    builder = _imagenet_builder(data_dir)
    training = split == "train"
    examples = builder.as_dataset(
        split="train" if training else "validation",
        shuffle_files=training and limit is None,
        decoders={"image": tfds.decode.SkipDecoding()},
        as_supervised=True,
        read_config=tfds.ReadConfig(shuffle_seed=_resumed_shuffle_seed(seed, start_batch)),
    )
    if limit is not None:
        examples = examples.take(limit)
    return jpeg_dataset(
        examples,
        batch_size,
        training=training,
        augment=augment,
        seed=seed,
        start_batch=start_batch,
    )


def make_dataset(
    name: str,
    split: str,
    batch_size: int,
    *,
    augment: bool | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    start_batch: int = 0,
    limit: int | None = None,
    validation_size: int = 0,
) -> tf.data.Dataset:
    """A batched, prefetched `tf.data` pipeline of (float32 raw-pixel images, int64 labels).

    `"train"` is an endless stream of full, shuffled, augmented batches (use
    `steps_per_epoch`); `"test"` is one ordered pass over the whole test split (the last
    batch may be smaller), not augmented; `"validation"` is one ordered, unaugmented pass
    over the last `validation_size` examples of the training split, which `"train"` then
    leaves out (a validation split carved from the training data, for choosing
    hyper-parameters without looking at the test set). Augmentation (`DatasetInfo.augmentation`):
    Fashion-MNIST and CIFAR-10 get the authors' CIFAR augmentation (`pad_crop_flip`:
    4-pixel padding, random crop, horizontal flip, which suits clothing as well);
    ImageNet gets `imagenet_train_image`, and `imagenet_eval_image` (resize 256, centre
    crop 224) for testing.

    # Arguments
        name: `"fashion_mnist"`, `"cifar10"` or `"imagenet2012"` (see `DATASETS`).
        split: `"train"` or `"test"` (ImageNet's validation set).
        batch_size: examples per batch (global batch under `tf.distribute`).
        augment: augment the images (default: for `"train"`).
        data_dir: where the data is; see `load_arrays` (Fashion-MNIST, CIFAR-10). ImageNet:
            a tensorflow-datasets data directory (default tfds' own) with a built
            `imagenet2012`, or with ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar
            in `downloads/manual/` to build it from.
        seed: seed of the shuffle and augmentation.
        start_batch: first batch of the training stream, to resume a run. Exact for the
            in-memory datasets; ImageNet draws a new shuffle from (seed, start_batch).
        limit: use only the first `limit` training examples (after the validation
            examples are carved off).
        validation_size: hold out the last `validation_size` training examples as the
            `"validation"` split (Fashion-MNIST and CIFAR-10; 0: none).

    # Raises
        ValueError: an unknown split, a non-positive batch size or limit, a
            `validation_size` that is negative, leaves no training examples, or is asked
            of ImageNet, or split `"validation"` with `validation_size=0`.
    """
    info = dataset_info(name)
    if split not in (*_SPLITS, "validation"):
        raise ValueError(f"`split` must be one of {(*_SPLITS, 'validation')}, got split={split!r}.")
    _check_batching(batch_size, start_batch)
    if limit is not None and not (isinstance(limit, int) and limit > 0):
        raise ValueError(f"`limit` must be a positive integer or None, got limit={limit!r}.")
    if not (isinstance(validation_size, int) and validation_size >= 0):
        raise ValueError(
            f"`validation_size` must be an integer >= 0, got validation_size={validation_size!r}."
        )
    if split == "validation" and validation_size == 0:
        raise ValueError("split 'validation' needs validation_size > 0.")
    training = split == "train"
    augment = training if augment is None else augment
    if info.augmentation == "imagenet":
        if validation_size:
            raise ValueError(
                f"`validation_size` is supported for the in-memory datasets, not {name!r} "
                "(use its own validation split)."
            )
        return _imagenet_dataset(
            split, batch_size, augment, data_dir, seed, start_batch, limit if training else None
        )
    train, test = load_arrays(name, data_dir)
    if validation_size >= len(train[0]):
        raise ValueError(
            f"validation_size={validation_size} leaves none of the {len(train[0])} "
            f"{name} training examples to train on."
        )
    if split == "test":
        images, labels = test
    else:
        cut = len(train[0]) - validation_size
        part = slice(None, cut) if training else slice(cut, None)
        images, labels = train[0][part], train[1][part]
    if training and limit is not None:
        images, labels = images[:limit], labels[:limit]
    return array_dataset(
        images,
        labels,
        batch_size,
        training=training,
        augment=augment,
        seed=seed,
        start_batch=start_batch,
    )
