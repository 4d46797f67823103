"""`tf.data` pipelines: batches of (float32 raw pixels, int64 labels) for training and testing.

The training split is an endless, deterministic stream: data epoch d is a permutation
drawn from (seed, d), and the augmentation of batch b from (seed, b), so batch b is the
same batch whatever happened before it, which is what lets an interrupted run resume
exactly (`start_batch`).
"""

from __future__ import annotations

import os

from larq_irnet._validation import is_integer
from larq_irnet.training.data.augmentation import (
    imagenet_eval_image,
    imagenet_train_image,
    pad_crop_flip,
)
from larq_irnet.training.data.sources import _SPLITS, _imagenet_builder, dataset_info, load_split

import numpy as np
import tensorflow as tf

__all__ = ["array_dataset", "jpeg_dataset", "make_dataset"]


def _stream_keys(seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Independent root seeds for the shuffle and for the augmentation of a stream."""
    keys = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), num=2)
    return keys[0], keys[1]


def _check_batching(batch_size: int, start_batch: int) -> None:
    if not (is_integer(batch_size) and batch_size > 0):
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    if not (is_integer(start_batch) and start_batch >= 0):
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

    # Returns
        A dataset of (float32 (B, H, W, C) images, int64 (B,) labels).

    # Raises
        ValueError: images not (N, H, W, C) with N > 0 and labels not (N,), a batch size
            that is not a positive integer (or, for training, exceeds N), or a negative
            `start_batch`.
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

    # Returns
        A dataset of (float32 (B, 224, 224, 3) images, labels).

    # Raises
        ValueError: a batch size that is not a positive integer, or a negative
            `start_batch`.
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
        split: `"train"`, `"test"` (ImageNet: its validation set) or `"validation"`
            (the held-out end of the training split, with `validation_size`).
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
    if limit is not None and not (is_integer(limit) and limit > 0):
        raise ValueError(f"`limit` must be a positive integer or None, got limit={limit!r}.")
    if not (is_integer(validation_size) and validation_size >= 0):
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
    if split == "test":
        # Only the test split's files are read (Fashion-MNIST: the two t10k files).
        images, labels = load_split(name, data_dir, "test")
    else:
        train = load_split(name, data_dir, "train")
        if validation_size >= len(train[0]):
            raise ValueError(
                f"validation_size={validation_size} leaves none of the {len(train[0])} "
                f"{name} training examples to train on."
            )
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
