"""larq_irnet.data: sources, pipelines and the paper's augmentation, on real and written files."""

import colorsys
import gzip
import os
import pickle

import larq_irnet  # noqa: F401
from larq_irnet import data
from larq_irnet.recipes import get_recipe

import numpy as np
import pytest
import tensorflow as tf


def write_cifar_dir(root, counts=None, seed=0):
    """A CIFAR-10 python batch directory with a few random images per batch file."""
    rng = np.random.default_rng(seed)
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    counts = counts or {name: 4 for name in (*data.CIFAR10_BATCHES["train"], "test_batch")}
    written = {}
    for name, count in counts.items():
        rows = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=count)]
        with open(batch_dir / name, "wb") as f:
            pickle.dump({b"batch_label": b"test", b"labels": labels, b"data": rows}, f)
        written[name] = (rows, labels)
    return batch_dir, written


def all_batches(dataset):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def test_fashion_mnist_test_split_is_every_image_in_order(fashion_mnist):
    _, (x_test, y_test) = fashion_mnist
    images, labels = all_batches(data.make_dataset("fashion_mnist", "test", 1000))
    assert images.dtype == np.float32 and images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(images, x_test.astype(np.float32))
    np.testing.assert_array_equal(labels, y_test)


def test_fashion_mnist_training_stream_is_augmented_raw_pixels(fashion_mnist):
    (x_train, y_train), _ = fashion_mnist
    dataset = data.make_dataset("fashion_mnist", "train", 64, seed=3)
    assert dataset.element_spec[0].shape.as_list() == [64, 28, 28, 1]
    images, labels = (t.numpy() for t in next(iter(dataset)))
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200
    # The same stream unaugmented: training images with their own labels, in the same
    # order, of which the augmented images are padded crops (and flips).
    plain, plain_labels = (
        t.numpy()
        for t in next(iter(data.make_dataset("fashion_mnist", "train", 64, seed=3, augment=False)))
    )
    index = {image.tobytes(): i for i, image in enumerate(x_train)}
    found = [index[image.astype(np.uint8).tobytes()] for image in plain]
    np.testing.assert_array_equal(plain_labels, y_train[found])
    np.testing.assert_array_equal(labels, plain_labels)
    for image, original in zip(images, plain, strict=True):
        assert matching_crop(original, image) is not None


def matching_crop(original, augmented, padding=4):
    """The (top, left, flipped) whose crop of the zero-padded original is `augmented`."""
    padded = np.pad(original, ((padding, padding), (padding, padding), (0, 0)))
    height, width = original.shape[:2]
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[top : top + height, left : left + width]
            for flipped, candidate in ((False, crop), (True, crop[:, ::-1])):
                if np.array_equal(candidate, augmented):
                    return top, left, flipped
    return None


def test_pad_crop_flip_is_a_padded_crop_and_a_flip_of_each_image(fashion_mnist):
    (x_train, _), _ = fashion_mnist
    originals = x_train[:64]
    augmented = data.pad_crop_flip(tf.constant(originals), tf.constant([5, 7])).numpy()
    assert augmented.dtype == np.uint8 and augmented.shape == originals.shape
    found = [matching_crop(o, a) for o, a in zip(originals, augmented, strict=True)]
    assert all(f is not None for f in found)
    tops, lefts, flips = zip(*found, strict=True)
    # Independent draws per image: many offsets, both flip states.
    assert len(set(zip(tops, lefts, strict=True))) > 10 and 10 < sum(flips) < 54
    again = data.pad_crop_flip(tf.constant(originals), tf.constant([5, 7])).numpy()
    np.testing.assert_array_equal(again, augmented)


def test_training_stream_visits_each_example_once_per_epoch_and_resumes_exactly():
    # Image i is filled with the value i, so the stream shows which examples it visits.
    n, batch = 50, 8
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 1))
    labels = np.arange(n) % 10
    stream = data.array_dataset(images, labels, batch, training=True, augment=False, seed=1)
    batches = [(x.numpy(), y.numpy()) for x, y in stream.take(18)]
    per_epoch = n // batch  # 6 full batches; the remaining 2 examples wait for a later epoch
    ids = [x[:, 0, 0, 0].astype(int) for x, _ in batches]
    for epoch in range(3):
        visited = np.concatenate(ids[epoch * per_epoch : (epoch + 1) * per_epoch])
        assert len(set(visited)) == per_epoch * batch
        np.testing.assert_array_equal(batches[epoch * per_epoch][1], ids[epoch * per_epoch] % 10)
    assert not np.array_equal(np.concatenate(ids[:6]), np.concatenate(ids[6:12]))

    resumed = data.array_dataset(
        images, labels, batch, training=True, augment=False, seed=1, start_batch=7
    )
    for (x, y), (x_ref, y_ref) in zip(resumed.take(11), batches[7:], strict=True):
        np.testing.assert_array_equal(x.numpy(), x_ref)
        np.testing.assert_array_equal(y.numpy(), y_ref)
    other_seed = data.array_dataset(images, labels, batch, training=True, augment=False, seed=2)
    assert not np.array_equal(next(iter(other_seed))[0].numpy(), batches[0][0])


def test_augmented_stream_resumes_exactly(fashion_mnist):
    full = data.make_dataset("fashion_mnist", "train", 32, seed=4, limit=200)
    expected = [x.numpy() for x, _ in full.take(9)]  # crosses into the second data epoch
    resumed = data.make_dataset("fashion_mnist", "train", 32, seed=4, limit=200, start_batch=5)
    for x, x_ref in zip(resumed.take(4), expected[5:], strict=True):
        np.testing.assert_array_equal(x[0].numpy(), x_ref)


def test_load_cifar10_turns_channel_major_rows_into_hwc_images(tmp_path):
    _, written = write_cifar_dir(tmp_path)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(tmp_path)
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
        data.load_cifar10(tmp_path / "cifar-10-batches-py")[0][0], x_train
    )


def test_cifar10_pipelines_from_the_batch_directory(tmp_path):
    write_cifar_dir(tmp_path, seed=1)
    train = data.make_dataset("cifar10", "train", 8, data_dir=tmp_path, seed=0)
    images, labels = next(iter(train))
    assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
    test_images, test_labels = all_batches(
        data.make_dataset("cifar10", "test", 3, data_dir=tmp_path)
    )
    (_, _), (x_test, y_test) = data.load_arrays("cifar10", tmp_path)
    np.testing.assert_array_equal(test_images, x_test.astype(np.float32))
    np.testing.assert_array_equal(test_labels, y_test)


def test_missing_cifar_batch_names_the_file_and_the_layout(tmp_path):
    counts = {name: 2 for name in ("data_batch_1", "data_batch_2", "test_batch")}
    write_cifar_dir(tmp_path, counts=counts)
    with pytest.raises(FileNotFoundError, match="data_batch_3") as error:
        data.load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(error.value) and "b'labels'" in str(error.value)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        data.make_dataset("cifar10", "train", 2, data_dir=tmp_path / "nowhere")


def test_corrupt_cifar_batch_names_the_file(tmp_path):
    batch_dir, _ = write_cifar_dir(tmp_path)
    (batch_dir / "data_batch_4").write_bytes(b"\x80\x04this is not a pickle")
    with pytest.raises(ValueError, match="data_batch_4.*cannot read"):
        data.load_cifar10(tmp_path)


def test_cifar_batch_with_wrong_shape_or_foreign_objects_is_refused(tmp_path):
    batch_dir, _ = write_cifar_dir(tmp_path)
    with open(batch_dir / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"test_batch.*\(N, 3072\)"):
        data.load_cifar10(tmp_path)
    # A pickle that would call a function when loaded is never executed.
    with open(batch_dir / "test_batch", "wb") as f:
        pickle.dump({b"data": os.getcwd, b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load posix.getcwd"):
        data.load_cifar10(tmp_path)


def test_corrupt_fashion_mnist_file_names_the_file(tmp_path):
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ):
        (tmp_path / name).symlink_to(data.FASHION_MNIST_DIR / name)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x27\x10" + bytes(100))  # 100 of 10,000 labels
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*10000"):
        data.make_dataset("fashion_mnist", "test", 100, data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        data.load_fashion_mnist(tmp_path / "missing")


def jpeg(image):
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=100)


def test_imagenet_evaluation_resizes_the_short_side_and_crops_the_centre():
    rng = np.random.default_rng(0)
    encoded = jpeg(rng.integers(0, 256, size=(256, 320, 3), dtype=np.uint8))
    decoded = tf.io.decode_jpeg(encoded).numpy().astype(np.float32)
    out = data.imagenet_eval_image(encoded).numpy()
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    # The short side is 256 already: the result is the central 224 x 224 window.
    np.testing.assert_allclose(out, decoded[16:240, 48:272], atol=1e-3)
    tall = data.imagenet_eval_image(jpeg(np.full((500, 300, 3), 77, np.uint8))).numpy()
    assert tall.shape == (224, 224, 3) and np.allclose(tall, 77, atol=2)


def test_imagenet_training_augmentation_shapes_ranges_and_determinism():
    rng = np.random.default_rng(1)
    encoded = jpeg(rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    outs = [data.imagenet_train_image(encoded, tf.constant([0, s])).numpy() for s in range(4)]
    for out in outs:
        assert out.shape == (224, 224, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(outs[0], outs[1])
    again = data.imagenet_train_image(encoded, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(again, outs[0])


def test_jpeg_pipeline_batches_augmented_training_and_ordered_evaluation_images():
    rng = np.random.default_rng(3)
    sizes = [(240, 320), (300, 250), (256, 256), (400, 300), (230, 500)]
    jpegs = [jpeg(rng.integers(0, 256, size=(*s, 3), dtype=np.uint8)) for s in sizes]
    examples = tf.data.Dataset.from_tensor_slices((tf.stack(jpegs), tf.range(5, dtype=tf.int64)))

    train = data.jpeg_dataset(examples, 2, training=True, seed=1, shuffle_buffer=5)
    batches = [(x.numpy(), y.numpy()) for x, y in train.take(6)]  # more than one pass
    for x, y in batches:
        assert x.shape == (2, 224, 224, 3) and x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 255.0 and set(y) <= set(range(5))
    assert list(np.concatenate([y for _, y in batches[:2]])) != [0, 1, 2, 3]  # shuffled

    test = list(data.jpeg_dataset(examples, 2, training=False))
    assert [len(y) for _, y in test] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in test]), range(5))
    first = data.imagenet_eval_image(jpegs[0]).numpy()
    np.testing.assert_array_equal(test[0][0][0].numpy(), first)


def numpy_jitter(image, brightness, contrast, saturation, hue):
    """torchvision's ColorJitter steps, written out in NumPy (fixed order, clip each step)."""

    def luma(x):
        return x[..., 0] * 0.2989 + x[..., 1] * 0.587 + x[..., 2] * 0.114

    x = np.clip(image * brightness, 0, 255)
    x = np.clip(contrast * x + (1 - contrast) * luma(x).mean(), 0, 255)
    x = np.clip(saturation * x + (1 - saturation) * luma(x)[..., None], 0, 255)
    out = np.empty_like(x)
    for index in np.ndindex(x.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*(x[index] / 255))
        out[index] = np.array(colorsys.hsv_to_rgb((h + hue) % 1.0, s, v)) * 255
    return np.clip(out, 0, 255)


def test_color_jitter_matches_torchvision_semantics():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 255, size=(6, 5, 3)).astype(np.float32)
    for factors in ((1.2, 0.8, 1.1, 0.05), (0.8, 1.2, 0.8, -0.1), (1.0, 1.0, 1.0, 0.0)):
        actual = data.color_jitter(tf.constant(image), *factors).numpy()
        np.testing.assert_allclose(actual, numpy_jitter(image, *factors), atol=0.05)
    unchanged = data.color_jitter(tf.constant(image), 1.0, 1.0, 1.0, 0.0).numpy()
    np.testing.assert_allclose(unchanged, image, atol=1e-3)


def test_imagenet_without_data_names_the_manual_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar") as error:
        data.make_dataset("imagenet2012", "train", 8, data_dir=tmp_path)
    assert str(tmp_path / "downloads" / "manual") in str(error.value)


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(ValueError, match="fashion_mnist"):
        data.make_dataset("mnist", "train", 8)
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.make_dataset("fashion_mnist", "validation", 8)
    with pytest.raises(ValueError, match="cifar10-resnet20-1w1a") as error:
        get_recipe("cifar10-resnet20")
    assert "Unknown recipe 'cifar10-resnet20'" in str(error.value)


def test_dataset_metadata():
    info = data.dataset_info("fashion_mnist")
    assert (info.input_shape, info.num_classes, info.train_size, info.test_size) == (
        (28, 28, 1),
        10,
        60000,
        10000,
    )
    assert data.dataset_info("imagenet2012").input_shape == (224, 224, 3)
    assert data.dataset_info("cifar10").augmentation == "crop_flip"


def test_fashion_mnist_without_files_or_internet_says_what_to_do(monkeypatch, tmp_path):
    import tensorflow_datasets as tfds

    def no_internet(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "missing")
    monkeypatch.setattr(tfds, "load", no_internet)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist.*no route to host"):
        data._load_arrays_uncached("fashion_mnist")


def test_validation_split_is_the_held_out_end_of_the_training_split(fashion_mnist):
    (x_train, y_train), _ = fashion_mnist
    validation = data.make_dataset("fashion_mnist", "validation", 1000, validation_size=2500)
    images = np.concatenate([x.numpy() for x, _ in validation])
    labels = np.concatenate([y.numpy() for _, y in validation])
    # In order, unaugmented, exactly the last 2,500 training images.
    np.testing.assert_array_equal(images, x_train[-2500:].astype(np.float32))
    np.testing.assert_array_equal(labels, y_train[-2500:])
    # The training stream never shows them: one epoch visits the other 57,500 images.
    train = data.make_dataset("fashion_mnist", "train", 500, augment=False, validation_size=2500)
    seen = np.concatenate([x.numpy() for x, _ in train.take(57_500 // 500)])
    held_out = {x_train[i].tobytes() for i in range(len(x_train) - 2500, len(x_train))}
    kept = {x_train[i].tobytes() for i in range(len(x_train) - 2500)}
    seen_bytes = {image.astype(np.uint8).tobytes() for image in seen}
    assert seen_bytes == kept
    assert not (seen_bytes & (held_out - kept))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"split": "validation"}, "needs validation_size > 0"),
        ({"split": "train", "validation_size": -1}, "validation_size"),
        ({"split": "train", "validation_size": 60_000}, "leaves none of the 60000"),
    ],
)
def test_bad_validation_split_is_an_error_naming_it(kwargs, message, fashion_mnist):
    with pytest.raises(ValueError, match=message):
        data.make_dataset("fashion_mnist", batch_size=100, **kwargs)
