"""IR-Net's VGG-Small for CIFAR-10."""

from __future__ import annotations

import os
from collections.abc import Sequence

from larq_irnet.zoo import blocks, common

import tensorflow as tf

__all__ = ["IRNetVGGSmall"]

# (filters, max-pool after the conv) of the binarizable convolutions; the authors' conv0
# (128 channels, full precision) comes first.
_BINARY_LAYERS = ((128, True), (256, False), (256, True), (512, False), (512, True))
_STEM_FILTERS = 128
_MIN_SIDE = 8  # three 2x2 max-poolings


@common.document_arguments(
    input_shape=(
        "(height, width, channels), sides at least 8; default (32, 32, 3), or the shape "
        "the registered `weights` were trained at."
    )
)
def IRNetVGGSmall(
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 10,
    weights: str | os.PathLike | None = None,
    bits: str = "1w1a",
    binarization: str = "irnet",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """IR-Net's VGG-Small (the authors' `VGG_SMALL_1W1A`).

    Full-precision 3x3 convolution (128 channels), BatchNorm, nonlinearity; then five
    binarizable 3x3 convolutions with 128, 256, 256, 512, 512 channels, where the 1st,
    3rd and 5th are followed by a 2x2 max pooling BEFORE their BatchNorm, and each block
    ends in the nonlinearity; flatten and a full-precision Dense (8192 inputs at 32x32).
    Convolutions are Kaiming-normal (fan-out) initialized, the Dense N(0, 0.01).

    Nonlinearity: Hardtanh for `bits="1w1a"`, ReLU for `"1w32a"`. The 1w1a `"irnet"`
    model has 4,660,106 trainable parameters, the authors' count. The input is raw
    pixels (0..255), rescaled to [-1, 1] inside the model.

    {arguments}

    # Returns
        A `tf.keras.Model`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
        - [LQ-Nets (Zhang et al., ECCV 2018)](https://arxiv.org/abs/1807.10029), where
          VGG-Small comes from.
    """
    arguments = common.ModelArguments(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        bits=bits,
        binarization=binarization,
        pad_values=pad_values,
    )
    return common.build_model(arguments, default_input_shape=(32, 32, 3), architecture=_vgg_small)


def _vgg_small(arguments: common.ModelArguments) -> common.Architecture:
    """VGG-Small's `common.Architecture` for `arguments` (input shape resolved)."""
    shape = arguments.input_shape
    if any(side is not None and side < _MIN_SIDE for side in shape[:2]):
        raise ValueError(
            f"IRNetVGGSmall pools three times by 2: `input_shape` sides must be at least "
            f"{_MIN_SIDE}, got input_shape={shape}."
        )
    settings = arguments.settings()
    init = blocks.kaiming_normal("fan_out")

    def body(x: tf.Tensor) -> tf.Tensor:
        x = blocks.cifar_stem(x, _STEM_FILTERS, settings.activation, init)
        for filters, pool in _BINARY_LAYERS:
            x = blocks.binary_conv(x, filters, 1, settings, init, pool=pool)
            x = blocks.nonlinearity(x, settings.activation)
        return x

    def top(x: tf.Tensor, classes: int) -> tf.Tensor:
        return blocks.classifier(
            x,
            classes,
            pooled_batch_norm=False,
            activation=None,
            initializer={"class_name": "RandomNormal", "config": {"stddev": 0.01}},
        )

    return common.Architecture(
        model="IRNetVGGSmall",
        name="irnet_vgg_small",
        num_classes=arguments.num_classes,
        body=body,
        top=top,
    )
