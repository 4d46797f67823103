"""Building blocks shared by every model of the zoo: written once, composed per depth.

Binary convolutions follow Larq Compute Engine's conversion rules: a `QuantConv2D` with
`padding="same"`, the preset's `pad_values`, no bias, and a BatchNormalization right
after it (folded into the LCE binary convolution). Stems, downsampling 1x1 convolutions
and classifiers stay full precision, as in the authors' code (and Bi-Real Net).

BatchNormalization uses PyTorch's defaults (momentum 0.1 there, i.e. 0.9 here, and
epsilon 1e-5), the framework the authors trained with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from larq_irnet.layers import without_starved_weights_warning
from larq_irnet.zoo.presets import ConvSettings

import larq as lq
import tensorflow as tf
from larq_zoo.core import utils as zoo_utils

__all__ = [
    "Hardtanh",
    "InitializerId",
    "STRUCTURES",
    "SubsampleChannelPad",
    "basic_block",
    "batch_norm",
    "binary_conv",
    "cifar_stem",
    "classifier",
    "imagenet_stem",
    "kaiming_normal",
    "nonlinearity",
    "resnet_stages",
]

InitializerId = str | Mapping[str, Any]
"""A Keras initializer identifier: a name or a `{"class_name", "config"}` dict."""

STRUCTURES = ("bireal", "normal")
"""The block structures of `basic_block`: Bi-Real Net's and the original ResNet's."""
_SHORTCUTS = ("option_a", "conv")


def kaiming_normal(mode: str) -> InitializerId:
    r"""He (Kaiming) normal initializer, untruncated like PyTorch's `kaiming_normal_`.

    \\(w \sim \mathcal{N}(0, 2 / n)\\) with n the fan-in (`mode="fan_in"`, the authors'
    CIFAR ResNet-20) or fan-out (`mode="fan_out"`, their ImageNet ResNets and VGG-Small).

    Returned as a Keras config, so each layer deserializes its own initializer: Keras
    gives the same values every time one unseeded initializer instance is reused.
    """
    config = {"scale": 2.0, "mode": mode, "distribution": "untruncated_normal"}
    return {"class_name": "VarianceScaling", "config": config}


@lq.utils.register_keras_custom_object
class Hardtanh(tf.keras.layers.Layer):
    r"""PyTorch's Hardtanh: \\(\mathrm{clip}(x, -1, 1)\\).

    The nonlinearity of the 1w1a models: the input of every binary convolution comes out
    of it, so the sign's straight-through range and the residual stream share [-1, 1].
    """

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)


@lq.utils.register_keras_custom_object
class SubsampleChannelPad(tf.keras.layers.Layer):
    r"""The parameter-free "option A" shortcut of CIFAR ResNets.

    \\[ y = \mathrm{pad}_C\left(x[:, ::s, ::s, :]\right) \\]

    Spatial subsampling by `strides`, then zero channels added evenly before and after
    the existing ones up to `filters` channels (the authors pad `filters // 4` on each
    side when the width doubles).

    # Arguments
        filters: number of output channels, at least the number of input channels.
        strides: spatial subsampling factor.

    # References
        - [Deep Residual Learning for Image Recognition (He et al., CVPR 2016), Sec. 4.2](
          https://arxiv.org/abs/1512.03385)
    """

    def __init__(self, filters: int, strides: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels > self.filters:
            raise ValueError(
                f"SubsampleChannelPad pads channels up to `filters`={self.filters}, but the "
                f"input has {channels} channels."
            )
        extra = self.filters - channels
        self._paddings = [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]]
        super().build(input_shape)

    def call(self, inputs):
        subsampled = inputs[:, :: self.strides, :: self.strides, :]
        return tf.pad(subsampled, self._paddings)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def batch_norm(x: tf.Tensor) -> tf.Tensor:
    """BatchNormalization with PyTorch's momentum and epsilon."""
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x)


def nonlinearity(x: tf.Tensor, kind: str | None) -> tf.Tensor:
    """Apply `"hardtanh"`, `"relu"` or nothing (`None`)."""
    if kind is None:
        return x
    if kind == "hardtanh":
        return Hardtanh()(x)
    if kind == "relu":
        return tf.keras.layers.ReLU()(x)
    raise ValueError(f"`kind` must be 'hardtanh', 'relu' or None, got kind={kind!r}.")


def binary_conv(
    x: tf.Tensor,
    filters: int,
    strides: int,
    settings: ConvSettings,
    initializer: InitializerId,
    *,
    pool: bool = False,
) -> tf.Tensor:
    """A binarizable 3x3 convolution followed by BatchNormalization.

    Quantizers, constraint and padding value come from `settings` (a preset); with the
    `"fp"` preset it is a plain float convolution. With `pool`, a 2x2 max pooling sits
    between the convolution and the BatchNormalization (VGG-Small).
    """
    with without_starved_weights_warning(settings.standardized_kernels):
        conv = lq.layers.QuantConv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            pad_values=settings.pad_values,
            input_quantizer=settings.input_quantizer,
            kernel_quantizer=settings.kernel_quantizer,
            kernel_constraint=settings.kernel_constraint,
            kernel_initializer=initializer,
            use_bias=False,
        )
    x = conv(x)
    if pool:
        x = tf.keras.layers.MaxPool2D(2)(x)
    return batch_norm(x)


def _shortcut(
    x: tf.Tensor,
    filters: int,
    strides: int,
    kind: str,
    initializer: InitializerId,
) -> tf.Tensor:
    if strides == 1 and x.shape[-1] == filters:
        return x
    if kind == "option_a":
        return SubsampleChannelPad(filters, strides)(x)
    # Full precision, as in the authors' code and Bi-Real Net.
    x = tf.keras.layers.Conv2D(
        filters, 1, strides=strides, use_bias=False, kernel_initializer=initializer
    )(x)
    return batch_norm(x)


def basic_block(
    x: tf.Tensor,
    filters: int,
    strides: int,
    *,
    structure: str,
    shortcut: str,
    settings: ConvSettings,
    initializer: InitializerId,
) -> tf.Tensor:
    r"""A ResNet basic block of two binarizable 3x3 convolutions.

    With \\(f\\) the block's nonlinearity (Hardtanh for 1w1a, ReLU for 1w32a) and
    \\(B_i = \mathrm{BN}\circ\mathrm{conv}_i\\):

    - `structure="bireal"` (Bi-Real Net, the authors' 1w1a ResNet-20 and ImageNet
      ResNets), a shortcut around every convolution:
      \\(y = f(B_1(x) + S(x)),\ \mathrm{out} = f(B_2(y) + y)\\);
    - `structure="normal"` (the original ResNet), one shortcut per block:
      \\(y = f(B_1(x)),\ \mathrm{out} = f(B_2(y) + S(x))\\).

    \\(S\\) is the identity unless the block changes resolution or width; then it is
    `shortcut="option_a"` (`SubsampleChannelPad`) or `"conv"` (full-precision 1x1
    convolution with stride, and BatchNormalization).

    # Arguments
        x: input tensor.
        filters: output channels.
        strides: stride of the first convolution (and of the shortcut).
        structure: `"bireal"` or `"normal"`.
        shortcut: `"option_a"` or `"conv"`.
        settings: the binarization preset resolved by `conv_settings`.
        initializer: kernel initializer of the convolutions.

    # References
        - [Bi-Real Net (Liu et al., ECCV 2018)](https://arxiv.org/abs/1808.00278)
        - [Deep Residual Learning for Image Recognition (He et al., CVPR 2016)](
          https://arxiv.org/abs/1512.03385)
    """
    if structure not in STRUCTURES:
        raise ValueError(f"`structure` must be one of {STRUCTURES}, got {structure!r}.")
    if shortcut not in _SHORTCUTS:
        raise ValueError(f"`shortcut` must be one of {_SHORTCUTS}, got {shortcut!r}.")
    residual = _shortcut(x, filters, strides, shortcut, initializer)
    act = settings.activation
    if structure == "bireal":
        y = binary_conv(x, filters, strides, settings, initializer)
        y = nonlinearity(tf.keras.layers.Add()([y, residual]), act)
        out = binary_conv(y, filters, 1, settings, initializer)
        return nonlinearity(tf.keras.layers.Add()([out, y]), act)
    y = nonlinearity(binary_conv(x, filters, strides, settings, initializer), act)
    out = binary_conv(y, filters, 1, settings, initializer)
    return nonlinearity(tf.keras.layers.Add()([out, residual]), act)


def resnet_stages(
    x: tf.Tensor,
    *,
    filters: tuple[int, ...],
    blocks: tuple[int, ...],
    block: Callable[[tf.Tensor, int, int], tf.Tensor],
) -> tf.Tensor:
    """Stack `blocks[i]` blocks of `filters[i]` channels; each stage after the first
    starts with a stride-2 block."""
    for stage, (stage_filters, stage_blocks) in enumerate(zip(filters, blocks, strict=True)):
        for index in range(stage_blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, stage_filters, strides)
    return x


def cifar_stem(
    x: tf.Tensor,
    filters: int,
    activation: str | None,
    initializer: InitializerId,
) -> tf.Tensor:
    """Full-precision 3x3 convolution, BatchNormalization and `activation` (or none)."""
    x = tf.keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_initializer=initializer
    )(x)
    return nonlinearity(batch_norm(x), activation)


def imagenet_stem(
    x: tf.Tensor,
    activation: str,
    initializer: InitializerId,
    filters: int = 64,
) -> tf.Tensor:
    """Full-precision 7x7 stride-2 convolution, BatchNormalization, `activation` and a
    3x3 stride-2 max pooling: the ImageNet ResNet stem."""
    x = tf.keras.layers.Conv2D(
        filters, 7, strides=2, padding="same", use_bias=False, kernel_initializer=initializer
    )(x)
    x = nonlinearity(batch_norm(x), activation)
    return tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(x)


def classifier(
    x: tf.Tensor,
    num_classes: int,
    *,
    pooled_batch_norm: bool,
    activation: str | None,
    initializer: InitializerId,
) -> tf.Tensor:
    """The full-precision top: features to class probabilities.

    With `pooled_batch_norm`: global average pooling, BatchNormalization of the pooled
    features, `activation` (or none), Dense (the authors' ResNets). Without: flatten,
    Dense (VGG-Small). Ends with a float32 softmax, as larq-zoo's models do.
    """
    if pooled_batch_norm:
        x = batch_norm(zoo_utils.global_pool(x))
        x = nonlinearity(x, activation)
    else:
        x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(num_classes, kernel_initializer=initializer)(x)
    return tf.keras.layers.Activation("softmax", dtype="float32")(x)
