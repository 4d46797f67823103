"""training.data.sources: reading Fashion-MNIST, CIFAR-10 and ImageNet; bad files named."""

import gzip
import os
import pickle
import zlib

from larq_irnet.training.data import pipelines, sources

import numpy as np
import pytest
from data_helpers import write_cifar_dir


def test_dataset_metadata():
    info = sources.dataset_info("fashion_mnist")
    assert (info.input_shape, info.num_classes, info.train_size, info.test_size) == (
        (28, 28, 1),
        10,
        60000,
        10000,
    )
    assert sources.dataset_info("imagenet2012").input_shape == (224, 224, 3)
    assert sources.dataset_info("cifar10").augmentation == "crop_flip"


def test_load_cifar10_turns_channel_major_rows_into_hwc_images(tmp_path):
    _, written = write_cifar_dir(tmp_path)
    (x_train, y_train), (x_test, y_test) = sources.load_cifar10(tmp_path)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (4, 32, 32, 3)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    rows, labels = written["data_batch_2"]
    for i in range(4):
        image = x_train[4 + i]
        for channel in range(3):
            for r, c in ((0, 0), (5, 17), (31, 31)):
                assert image[r, c, channel] == rows[i, channel * 1024 + r * 32 + c]
    np.testing.assert_array_equal(y_train[4:8], labels)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])
    # The batch directory itself works as well as its parent.
    np.testing.assert_array_equal(
        sources.load_cifar10(tmp_path / "cifar-10-batches-py")[0][0], x_train
    )


def test_missing_cifar_batch_names_the_file_and_the_layout(tmp_path):
    counts = {name: 2 for name in ("data_batch_1", "data_batch_2", "test_batch")}
    write_cifar_dir(tmp_path, counts=counts)
    with pytest.raises(FileNotFoundError, match="data_batch_3") as error:
        sources.load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(error.value) and "b'labels'" in str(error.value)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        pipelines.make_dataset("cifar10", "train", 2, data_dir=tmp_path / "nowhere")


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    batch_dir, _ = write_cifar_dir(tmp_path)
    (batch_dir / "data_batch_4").write_bytes(b"\x80\x04this is not a pickle")
    with pytest.raises(ValueError, match="data_batch_4.*cannot read"):
        sources.load_cifar10(tmp_path)


def test_cifar_batch_with_wrong_shape_or_foreign_objects_is_refused(tmp_path):
    batch_dir, _ = write_cifar_dir(tmp_path)
    with open(batch_dir / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"test_batch.*\(N, 3072\)"):
        sources.load_cifar10(tmp_path)
    # A pickle that would call a function when loaded is never executed.
    with open(batch_dir / "test_batch", "wb") as f:
        pickle.dump({b"data": os.getcwd, b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load posix.getcwd"):
        sources.load_cifar10(tmp_path)


def test_corrupt_fashion_mnist_file_names_the_file(tmp_path):
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ):
        (tmp_path / name).symlink_to(sources.FASHION_MNIST_DIR / name)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x27\x10" + bytes(100))  # 100 of 10,000 labels
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*10000"):
        pipelines.make_dataset("fashion_mnist", "test", 100, data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        sources.load_fashion_mnist(tmp_path / "missing")


T10K_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def test_the_fashion_mnist_test_split_needs_only_the_t10k_files(tmp_path, fashion_mnist):
    for name in T10K_FILES:
        (tmp_path / name).symlink_to(sources.FASHION_MNIST_DIR / name)
    _, (x_test, y_test) = fashion_mnist
    images, labels = sources.load_split("fashion_mnist", tmp_path, "test")
    np.testing.assert_array_equal(images, x_test)
    np.testing.assert_array_equal(labels, y_test)
    batches = pipelines.make_dataset("fashion_mnist", "test", 5000, data_dir=tmp_path)
    assert sum(len(y) for _, y in batches) == 10000
    # The training split still names its missing file.
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        sources.load_split("fashion_mnist", tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        sources.load_split("fashion_mnist", tmp_path / "missing", "test")
    with pytest.raises(ValueError, match="split"):
        sources.load_split("fashion_mnist", tmp_path, "validation")


def test_the_cifar10_test_split_needs_only_test_batch(tmp_path):
    _, written = write_cifar_dir(tmp_path, counts={"test_batch": 3})
    images, labels = sources.load_split("cifar10", tmp_path, "test")
    assert images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(labels, written["test_batch"][1])
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        sources.load_split("cifar10", tmp_path, "train")


def test_fashion_mnist_without_files_or_internet_says_what_to_do(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def no_internet(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", tmp_path / "missing")
    monkeypatch.setattr(tfds, "load", no_internet)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist.*no route to host"):
        sources._load_arrays_uncached("fashion_mnist")


def test_imagenet_without_data_names_the_manual_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar") as error:
        pipelines.make_dataset("imagenet2012", "train", 8, data_dir=tmp_path)
    assert str(tmp_path / "downloads" / "manual") in str(error.value)


IDX_LABELS = b"\x00\x00\x08\x01\x00\x00\x00\x64" + bytes(i % 10 for i in range(100))


def corrupt_deflate(blob):
    # The first byte of the deflate stream (after gzip's 10-byte header) set to 0xFF:
    # BFINAL=1 with the reserved block type 11, which zlib refuses ("invalid block type").
    return blob[:10] + b"\xff" + blob[11:]


def wrong_crc(blob):
    return blob[:-8] + bytes(b ^ 0xFF for b in blob[-8:-4]) + blob[-4:]


@pytest.mark.parametrize(
    "name, damage, cause, expected",
    [
        ("labels.gz", corrupt_deflate, zlib.error, "expected a gzip-compressed IDX file"),
        ("labels.gz", lambda blob: blob[: len(blob) // 2], EOFError, "gzip-compressed IDX"),
        ("labels.gz", wrong_crc, OSError, "expected a gzip-compressed IDX file"),
        ("labels.gz", lambda blob: IDX_LABELS, OSError, "expected a gzip-compressed IDX file"),
        ("labels.gz", lambda blob: gzip.compress(b"PK\x03\x04"), None, "magic number 00 00 08"),
        ("labels", lambda blob: IDX_LABELS[:6], None, "expected 8 bytes for 1 dimensions"),
        ("labels", lambda blob: IDX_LABELS[:-1], None, r"header says shape \(100,\)"),
        ("labels", lambda blob: b"", None, "got an empty file"),
    ],
)
def test_every_bad_idx_file_is_a_one_line_error_naming_it(tmp_path, name, damage, cause, expected):
    path = tmp_path / name
    intact = gzip.compress(IDX_LABELS, mtime=0) if name.endswith(".gz") else IDX_LABELS
    np.testing.assert_array_equal(sources.read_idx(_written(path, intact)), list(IDX_LABELS[8:]))
    _written(path, damage(intact))
    with pytest.raises(ValueError, match=expected) as error:
        sources.read_idx(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    if cause is not None:
        assert isinstance(error.value.__cause__, cause)


def _written(path, content):
    path.write_bytes(content)
    return path


def test_corrupt_deflate_stream_in_fashion_mnist_names_the_file(tmp_path, fashion_mnist):
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ):
        (tmp_path / name).symlink_to(sources.FASHION_MNIST_DIR / name)
    labels = (sources.FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    # A real file whose deflate stream goes bad midway: a byte flipped past the header.
    damaged = bytearray(labels)
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: cannot read") as error:
        sources.load_fashion_mnist(tmp_path)
    assert "expected a gzip-compressed IDX file" in str(error.value)
    assert isinstance(error.value.__cause__, (zlib.error, OSError))
