r"""Data augmentation: the authors' CIFAR crop-and-flip and their ImageNet preprocessing.

Every random choice is stateless, drawn from an explicit `seed` tensor, so that a
pipeline can give batch b the same augmentation whatever ran before it.

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Sec. 4](https://arxiv.org/abs/1909.10788); augmentation as
  in the authors' CIFAR-10 trainers and ImageNet configs.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "color_jitter",
    "imagenet_eval_image",
    "imagenet_train_image",
    "pad_crop_flip",
    "random_color_jitter",
]


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
