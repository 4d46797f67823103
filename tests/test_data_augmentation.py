"""training.data.augmentation: the authors' CIFAR crop-and-flip and ImageNet preprocessing."""

import colorsys

from larq_irnet.training.data import augmentation

import numpy as np
import tensorflow as tf
from data_helpers import jpeg, matching_crop


def test_pad_crop_flip_is_a_padded_crop_and_a_flip_of_each_image(fashion_mnist):
    (x_train, _), _ = fashion_mnist
    originals = x_train[:64]
    augmented = augmentation.pad_crop_flip(tf.constant(originals), tf.constant([5, 7])).numpy()
    assert augmented.dtype == np.uint8 and augmented.shape == originals.shape
    found = [matching_crop(o, a) for o, a in zip(originals, augmented, strict=True)]
    assert all(f is not None for f in found)
    tops, lefts, flips = zip(*found, strict=True)
    # Independent draws per image: many offsets, both flip states.
    assert len(set(zip(tops, lefts, strict=True))) > 10 and 10 < sum(flips) < 54
    again = augmentation.pad_crop_flip(tf.constant(originals), tf.constant([5, 7])).numpy()
    np.testing.assert_array_equal(again, augmented)


def test_imagenet_evaluation_resizes_the_short_side_and_crops_the_centre():
    rng = np.random.default_rng(0)
    encoded = jpeg(rng.integers(0, 256, size=(256, 320, 3), dtype=np.uint8))
    decoded = tf.io.decode_jpeg(encoded).numpy().astype(np.float32)
    out = augmentation.imagenet_eval_image(encoded).numpy()
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    # The short side is 256 already: the result is the central 224 x 224 window.
    np.testing.assert_allclose(out, decoded[16:240, 48:272], atol=1e-3)
    tall = augmentation.imagenet_eval_image(jpeg(np.full((500, 300, 3), 77, np.uint8))).numpy()
    assert tall.shape == (224, 224, 3) and np.allclose(tall, 77, atol=2)


def test_imagenet_training_augmentation_shapes_ranges_and_determinism():
    rng = np.random.default_rng(1)
    encoded = jpeg(rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8))
    outs = [
        augmentation.imagenet_train_image(encoded, tf.constant([0, s])).numpy() for s in range(4)
    ]
    for out in outs:
        assert out.shape == (224, 224, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 255.0
    assert not np.allclose(outs[0], outs[1])
    again = augmentation.imagenet_train_image(encoded, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(again, outs[0])


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
        actual = augmentation.color_jitter(tf.constant(image), *factors).numpy()
        np.testing.assert_allclose(actual, numpy_jitter(image, *factors), atol=0.05)
    unchanged = augmentation.color_jitter(tf.constant(image), 1.0, 1.0, 1.0, 0.0).numpy()
    np.testing.assert_allclose(unchanged, image, atol=1e-3)
