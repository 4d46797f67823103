"""Calibrated int8 for the layers LCE leaves in float (stem, downsampling, classifier).

LCE 0.16's converter has no representative-dataset option. It quantizes a tensor to
int8 when the TensorFlow graph carries its range in a fake-quantization op
(`tf.quantization.fake_quant_with_min_max_args`, as quantization-aware training leaves
them); its `experimental_default_int8_range` gives every tensor without such an op one
fixed range and is meant for latency tests only ("dummy quantization"). So `int8=True`
calibrates here: it runs the model on representative images, records the min and max
of the tensors around every float convolution and dense layer, and converts a copy of
the model in which those tensors carry fake-quant ops with the recorded ranges. LCE
then emits int8 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED operators with int8
weights, between QUANTIZE and DEQUANTIZE operators.

Only the float layers' own inputs and outputs are quantized; the residual stream and
the binary convolutions' outputs stay float32: they hold no weights, so int8 would not
make the file smaller. (An earlier version that quantized every layer output measured
the same accuracy and agreement on a trained ResNet-20; docs/deploy.md.) A float layer's
output range is taken after the BatchNormalization and ReLU/ReLU6/Hardtanh that follow
it, so the converter still folds them into it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["calibrate_ranges", "fake_quantized_copy", "float_compute_layers"]

# Elementwise functions TFLite fuses into the operator before them (conv, dense).
_FUSED_ACTIVATIONS = (
    lambda x: np.maximum(x, 0.0),  # RELU
    lambda x: np.clip(x, 0.0, 6.0),  # RELU6
    lambda x: np.clip(x, -1.0, 1.0),  # RELU_N1_TO_1 (Hardtanh)
)
_PROBE = np.linspace(-8.0, 8.0, 65, dtype=np.float32).reshape(1, 65)
_COMPUTE_LAYERS = (
    tf.keras.layers.Conv2D,  # also QuantConv2D, Conv2DTranspose, SeparableConv2D
    tf.keras.layers.DepthwiseConv2D,
    tf.keras.layers.Dense,
)


def _consumers(model: tf.keras.Model, layer) -> list:
    return [
        node.layer
        for node in layer._outbound_nodes  # noqa: SLF001 (Keras keeps the graph here)
        if node.layer in model.layers
    ]


def _folds_into_producer(layer) -> bool:
    """Whether TFLite folds `layer` into the conv or dense operator before it.

    BatchNormalization folds into the weights; ReLU, ReLU6 and clip(-1, 1) (Hardtanh)
    become fused activations. Activations are recognized by what they compute on a
    probe, so custom layers such as the zoo's Hardtanh count too.
    """
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return True
    if layer.weights or isinstance(layer, tf.keras.Model):
        return False
    try:
        outputs = np.asarray(layer(tf.constant(_PROBE)))
    except Exception:  # not an elementwise single-input layer
        return False
    return outputs.shape == _PROBE.shape and any(
        np.allclose(outputs, f(_PROBE)) for f in _FUSED_ACTIVATIONS
    )


def _chain_end(model: tf.keras.Model, layer):
    """The last layer of `layer` -> [BatchNorm] -> [fused activation], single consumers."""
    end = layer
    while True:
        consumers = _consumers(model, end)
        if len(consumers) != 1 or not _folds_into_producer(consumers[0]):
            return end
        if len(consumers[0].inbound_nodes) != 1:
            return end
        end = consumers[0]


def float_compute_layers(model: tf.keras.Model, binary: set) -> list:
    """The conv and dense layers of `model` that LCE keeps in float.

    # Arguments
        model: a functional or Sequential Keras model.
        binary: names of the layers expected to become `LceBconv2d`.
    """
    if not isinstance(model, tf.keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"int8 needs a functional or Sequential Keras model, got {type(model).__name__}"
        )
    return [
        layer
        for layer in model.layers
        if isinstance(layer, _COMPUTE_LAYERS)
        and layer.name not in binary
        and len(layer.inbound_nodes) == 1  # shared layers: several tensors
    ]


def _points(model: tf.keras.Model, layers: list) -> list:
    """(layer name, "input" | "output", Keras tensor) for every tensor to quantize."""
    points = []
    for layer in layers:
        if tf.is_tensor(layer.input) and layer.input.dtype.is_floating:
            points.append((layer.name, "input", layer.input))
        end = _chain_end(model, layer)
        points.append((end.name, "output", end.output))
    return points


def calibrate_ranges(
    model: tf.keras.Model,
    representative_data: np.ndarray,
    *,
    binary: set = frozenset(),
    batch_size: int = 32,
) -> dict:
    """Min and max of the tensors around the float layers, over representative data.

    # Arguments
        model: a functional or Sequential Keras model.
        representative_data: model inputs (e.g. a few hundred training images, as the
            model takes them: raw pixels for the zoo models).
        binary: names of the layers expected to become `LceBconv2d` (left alone).
        batch_size: images per forward pass.

    # Returns
        (layer name, "input" | "output") -> (min, max), widened to contain 0 as int8
        ranges must.
    """
    data = np.asarray(representative_data)
    if data.ndim < 1 or len(data) == 0:
        raise ValueError(
            f"representative_data must hold at least one input, got an array of shape {data.shape}"
        )
    points = _points(model, float_compute_layers(model, binary))
    if not points:
        return {}
    probe = tf.keras.Model(model.inputs, [tensor for _, _, tensor in points])
    lows = np.full(len(points), np.inf)
    highs = np.full(len(points), -np.inf)
    for start in range(0, len(data), batch_size):
        outputs = probe(data[start : start + batch_size].astype(np.float32), training=False)
        if len(points) == 1:
            outputs = [outputs]
        for i, output in enumerate(outputs):
            lows[i] = min(lows[i], float(tf.reduce_min(output)))
            highs[i] = max(highs[i], float(tf.reduce_max(output)))
    ranges = {}
    for (name, where, _), low, high in zip(points, lows, highs, strict=True):
        low, high = min(low, 0.0), max(high, 0.0)
        ranges[(name, where)] = (low, max(high, low + 1e-6))
    return ranges


def _fake_quant(x, value_range):
    low, high = value_range
    return tf.quantization.fake_quant_with_min_max_args(x, min=low, max=high, num_bits=8)


class _FakeQuantWrapper(tf.keras.layers.Layer):
    """Calls a layer between fake-quant ops on its input and/or output."""

    def __init__(self, layer, input_range=None, output_range=None, **kwargs):
        # Same name, so the converted tensors keep the layer's name scope.
        super().__init__(name=layer.name, **kwargs)
        self.layer = layer
        self.input_range, self.output_range = input_range, output_range

    def call(self, inputs, *args, **kwargs):
        if self.input_range is not None:
            inputs = _fake_quant(inputs, self.input_range)
        outputs = self.layer(inputs, *args, **kwargs)
        if self.output_range is not None:
            outputs = _fake_quant(outputs, self.output_range)
        return outputs


def fake_quantized_copy(model: tf.keras.Model, ranges: dict) -> tf.keras.Model:
    """A copy of `model` (same weights) with fake-quant ops at the calibrated tensors.

    The layers are cloned from their configs, so `model` itself is left untouched;
    custom layers and quantizers must be registered (importing larq_irnet registers
    this project's).

    # Arguments
        model: a functional or Sequential Keras model.
        ranges: (layer name, "input" | "output") -> (min, max), from `calibrate_ranges`.
    """

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        input_range = ranges.get((layer.name, "input"))
        output_range = ranges.get((layer.name, "output"))
        if input_range is None and output_range is None:
            return copy
        return _FakeQuantWrapper(copy, input_range, output_range)

    try:
        copy = tf.keras.models.clone_model(model, clone_function=clone)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"int8: cannot copy model {model.name!r} to insert int8 ranges ({e}); every "
            "layer and quantizer must round-trip through get_config (no lambdas)"
        ) from e
    copy.set_weights(model.get_weights())
    copy._name = model.name  # noqa: SLF001 (tensor names start with the model's name)
    return copy
