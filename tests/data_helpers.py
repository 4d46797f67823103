"""Data files and checks shared by the data tests: written CIFAR batches, JPEGs, crop matching."""

import pickle

from larq_irnet.training.data import sources

import numpy as np
import tensorflow as tf


def write_cifar_dir(root, counts=None, seed=0):
    """A CIFAR-10 python batch directory with a few random images per batch file."""
    rng = np.random.default_rng(seed)
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    counts = counts or {name: 4 for name in (*sources.CIFAR10_BATCHES["train"], "test_batch")}
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


def jpeg(image):
    return tf.io.encode_jpeg(tf.constant(image, tf.uint8), quality=100)
