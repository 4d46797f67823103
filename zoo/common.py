"""What every zoo model function does around its architecture: input, weights, top."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from larq_irnet.zoo import registry

import tensorflow as tf

__all__ = ["ImageShape", "build_model", "resolve_input_shape", "resolve_weights"]

ImageShape = tuple[int | None, int | None, int]


def resolve_weights(
    weights: str | os.PathLike | None,
    input_shape: Sequence[int | None] | None,
    input_tensor: tf.Tensor | None,
) -> tuple[os.PathLike | None, registry.WeightsEntry | None, Sequence[int | None] | None]:
    """Resolve `weights=` (see `registry.resolve_weights`) first of all arguments.

    Registered weights carry the input shape they were trained at: it becomes the
    `input_shape` when neither `input_shape` nor `input_tensor` is given.

    # Returns
        (file to load or None, registry entry or None, input_shape).
    """
    path, entry = registry.resolve_weights(weights)
    if entry is not None and input_shape is None and input_tensor is None:
        input_shape = entry.kwargs.get("input_shape")
    return path, entry, input_shape


def resolve_input_shape(
    input_shape: Sequence[int | None] | None,
    input_tensor: tf.Tensor | None,
    default: ImageShape,
) -> ImageShape:
    """The (height, width, channels) the model is built for.

    `input_tensor`'s shape wins; `input_shape` must then agree with it. Without either,
    `default`.

    # Raises
        ValueError: not three dimensions, unknown channels, or disagreeing arguments.
    """
    shape: Sequence[int | None] | None = input_shape
    if input_tensor is not None:
        tensor_shape = tuple(tf.keras.backend.int_shape(input_tensor)[1:])
        if input_shape is not None and tuple(input_shape) != tensor_shape:
            raise ValueError(
                f"`input_shape`={tuple(input_shape)} disagrees with the shape of "
                f"`input_tensor`, {tensor_shape}."
            )
        shape = tensor_shape
    if shape is None:
        return default
    shape = tuple(None if dim is None else int(dim) for dim in shape)
    if len(shape) != 3 or shape[-1] is None:
        raise ValueError(
            "`input_shape` must be (height, width, channels) with known channels, got "
            f"input_shape={shape}."
        )
    return shape  # type: ignore[return-value]


def build_model(
    *,
    model: str,
    name: str,
    input_shape: ImageShape,
    input_tensor: tf.Tensor | None,
    body: Callable[[tf.Tensor], tf.Tensor],
    top: Callable[[tf.Tensor, int], tf.Tensor],
    include_top: bool,
    num_classes: int,
    weights_path: os.PathLike | None,
    weights_entry: registry.WeightsEntry | None,
    arguments: Mapping[str, Any],
) -> tf.keras.Model:
    """Assemble input, normalization, `body` and `top`, and load the weights.

    Models take raw pixels (0..255) and rescale them to [-1, 1] themselves, so that a
    converted `.tflite` model takes camera pixels. Registered weights are checked
    against `arguments` (the model function's resolved arguments); with
    `include_top=False` they are loaded into the full model, which is then cut at the
    features.

    # Arguments
        model: name of the public model function (as in the weights registry).
        name: the Keras model's name.
        input_shape: resolved (height, width, channels).
        input_tensor: optional Keras tensor to build on.
        body: rescaled image -> feature map.
        top: (feature map, number of classes) -> class probabilities.
        include_top: whether the returned model ends with `top`.
        num_classes: number of classes of `top`.
        weights_path: file to load weights from, or None.
        weights_entry: registry entry of the weights, if registered ones are loaded.
        arguments: the model function's resolved arguments, checked against the
            registry entry's.
    """
    entry = weights_entry
    if entry is not None:
        registry.check_fits(entry, model=model, arguments=arguments, include_top=include_top)
    if input_tensor is None:
        image = tf.keras.Input(shape=input_shape)
        source_inputs = image
    elif tf.keras.backend.is_keras_tensor(input_tensor):
        image = input_tensor
        source_inputs = tf.keras.utils.get_source_inputs(input_tensor)
    else:
        image = tf.keras.Input(tensor=input_tensor, shape=input_shape)
        source_inputs = image
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    features = body(x)
    with_top = include_top or entry is not None
    if with_top and not include_top:
        # The registered file holds a classifier: build it to load, then cut it off.
        num_classes = entry.kwargs.get("num_classes", num_classes)
    outputs = top(features, num_classes) if with_top else features
    full = tf.keras.Model(source_inputs, outputs, name=name)
    if weights_path is not None:
        full.load_weights(weights_path)
    if with_top and not include_top:
        return tf.keras.Model(source_inputs, features, name=name)
    return full
