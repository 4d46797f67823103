"""larq_irnet.training.data.pipelines: deterministic, resumable streams and ordered passes."""

from larq_irnet.training.data import augmentation, pipelines, sources
from larq_irnet.training.recipes import get_recipe

import numpy as np
import pytest
import tensorflow as tf
from data_helpers import all_batches, jpeg, matching_crop, write_cifar_dir


@pytest.mark.slow
def test_fashion_mnist_test_split_is_every_image_in_order(fashion_mnist):
    _, (x_test, y_test) = fashion_mnist
    images, labels = all_batches(pipelines.make_dataset("fashion_mnist", "test", 1000))
    assert images.dtype == np.float32 and images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(images, x_test.astype(np.float32))
    np.testing.assert_array_equal(labels, y_test)


def test_fashion_mnist_training_stream_is_augmented_raw_pixels(fashion_mnist):
    (x_train, y_train), _ = fashion_mnist
    dataset = pipelines.make_dataset("fashion_mnist", "train", 64, seed=3)
    assert dataset.element_spec[0].shape.as_list() == [64, 28, 28, 1]
    images, labels = (t.numpy() for t in next(iter(dataset)))
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 255.0 and images.max() > 200
    # The same stream unaugmented: training images with their own labels, in the same
    # order, of which the augmented images are padded crops (and flips).
    plain, plain_labels = (
        t.numpy()
        for t in next(
            iter(pipelines.make_dataset("fashion_mnist", "train", 64, seed=3, augment=False))
        )
    )
    index = {image.tobytes(): i for i, image in enumerate(x_train)}
    found = [index[image.astype(np.uint8).tobytes()] for image in plain]
    np.testing.assert_array_equal(plain_labels, y_train[found])
    np.testing.assert_array_equal(labels, plain_labels)
    for image, original in zip(images, plain, strict=True):
        assert matching_crop(original, image) is not None


def test_training_stream_visits_each_example_once_per_epoch_and_resumes_exactly():
    # Image i is filled with the value i, so the stream shows which examples it visits.
    n, batch = 50, 8
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 1))
    labels = np.arange(n) % 10
    stream = pipelines.array_dataset(images, labels, batch, training=True, augment=False, seed=1)
    batches = [(x.numpy(), y.numpy()) for x, y in stream.take(18)]
    per_epoch = n // batch  # 6 full batches; the remaining 2 examples wait for a later epoch
    ids = [x[:, 0, 0, 0].astype(int) for x, _ in batches]
    for epoch in range(3):
        visited = np.concatenate(ids[epoch * per_epoch : (epoch + 1) * per_epoch])
        assert len(set(visited)) == per_epoch * batch
        np.testing.assert_array_equal(batches[epoch * per_epoch][1], ids[epoch * per_epoch] % 10)
    assert not np.array_equal(np.concatenate(ids[:6]), np.concatenate(ids[6:12]))

    resumed = pipelines.array_dataset(
        images, labels, batch, training=True, augment=False, seed=1, start_batch=7
    )
    for (x, y), (x_ref, y_ref) in zip(resumed.take(11), batches[7:], strict=True):
        np.testing.assert_array_equal(x.numpy(), x_ref)
        np.testing.assert_array_equal(y.numpy(), y_ref)
    other_seed = pipelines.array_dataset(
        images, labels, batch, training=True, augment=False, seed=2
    )
    assert not np.array_equal(next(iter(other_seed))[0].numpy(), batches[0][0])


def test_augmented_stream_resumes_exactly(fashion_mnist):
    full = pipelines.make_dataset("fashion_mnist", "train", 32, seed=4, limit=200)
    expected = [x.numpy() for x, _ in full.take(9)]  # crosses into the second data epoch
    resumed = pipelines.make_dataset("fashion_mnist", "train", 32, seed=4, limit=200, start_batch=5)
    for x, x_ref in zip(resumed.take(4), expected[5:], strict=True):
        np.testing.assert_array_equal(x[0].numpy(), x_ref)


def test_cifar10_pipelines_from_the_batch_directory(tmp_path):
    write_cifar_dir(tmp_path, seed=1)
    train = pipelines.make_dataset("cifar10", "train", 8, data_dir=tmp_path, seed=0)
    images, labels = next(iter(train))
    assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
    test_images, test_labels = all_batches(
        pipelines.make_dataset("cifar10", "test", 3, data_dir=tmp_path)
    )
    (_, _), (x_test, y_test) = sources.load_arrays("cifar10", tmp_path)
    np.testing.assert_array_equal(test_images, x_test.astype(np.float32))
    np.testing.assert_array_equal(test_labels, y_test)


def test_jpeg_pipeline_batches_augmented_training_and_ordered_evaluation_images():
    rng = np.random.default_rng(3)
    sizes = [(240, 320), (300, 250), (256, 256), (400, 300), (230, 500)]
    jpegs = [jpeg(rng.integers(0, 256, size=(*s, 3), dtype=np.uint8)) for s in sizes]
    examples = tf.data.Dataset.from_tensor_slices((tf.stack(jpegs), tf.range(5, dtype=tf.int64)))

    train = pipelines.jpeg_dataset(examples, 2, training=True, seed=1, shuffle_buffer=5)
    batches = [(x.numpy(), y.numpy()) for x, y in train.take(6)]  # more than one pass
    for x, y in batches:
        assert x.shape == (2, 224, 224, 3) and x.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 255.0 and set(y) <= set(range(5))
    assert list(np.concatenate([y for _, y in batches[:2]])) != [0, 1, 2, 3]  # shuffled

    test = list(pipelines.jpeg_dataset(examples, 2, training=False))
    assert [len(y) for _, y in test] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in test]), range(5))
    first = augmentation.imagenet_eval_image(jpegs[0]).numpy()
    np.testing.assert_array_equal(test[0][0][0].numpy(), first)


def test_unknown_names_are_errors_that_list_the_known_ones():
    with pytest.raises(ValueError, match="fashion_mnist"):
        pipelines.make_dataset("mnist", "train", 8)
    with pytest.raises(ValueError, match="'train', 'test', 'validation'.*split='val'"):
        pipelines.make_dataset("fashion_mnist", "val", 8)
    with pytest.raises(ValueError, match="cifar10-resnet20-1w1a") as error:
        get_recipe("cifar10-resnet20")
    assert "Unknown recipe 'cifar10-resnet20'" in str(error.value)


@pytest.mark.slow
def test_validation_split_is_the_held_out_end_of_the_training_split(fashion_mnist):
    (x_train, y_train), _ = fashion_mnist
    validation = pipelines.make_dataset("fashion_mnist", "validation", 1000, validation_size=2500)
    images = np.concatenate([x.numpy() for x, _ in validation])
    labels = np.concatenate([y.numpy() for _, y in validation])
    # In order, unaugmented, exactly the last 2,500 training images.
    np.testing.assert_array_equal(images, x_train[-2500:].astype(np.float32))
    np.testing.assert_array_equal(labels, y_train[-2500:])
    # The training stream never shows them: one epoch visits the other 57,500 images.
    train = pipelines.make_dataset(
        "fashion_mnist", "train", 500, augment=False, validation_size=2500
    )
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
        pipelines.make_dataset("fashion_mnist", batch_size=100, **kwargs)
