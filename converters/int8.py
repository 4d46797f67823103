"""Calibrated int8 for the layers LCE leaves in float (stem, downsampling, classifier).

LCE 0.16's converter has no representative-dataset option. It quantizes a tensor to
int8 when the TensorFlow graph carries its range in a fake-quantization op
(`tf.quantization.fake_quant_with_min_max_args`, as in quantization-aware training);
its `experimental_default_int8_range` gives every other tensor one fixed range and is
meant for latency tests only ("dummy quantization"). So `int8=True` calibrates: it runs
the model on representative images, records each layer output's min and max, and
converts a copy of the model in which every layer output carries a fake-quant op with
that range. LCE then emits int8 float-free kernels for convolutions, dense layers, adds
and pools, int8-output binary convolutions, and int8-input `LceQuantize`.

No fake-quant op is put between a layer and a following BatchNormalization or
activation layer, so that the converter can still fold them into the layer before.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["calibrate_ranges", "fake_quantized_copy", "quantized_layers"]

# Elementwise functions TFLite fuses into the operator before them (conv, dense, add).
_FUSED_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "relu_n1_to_1": lambda x: np.clip(x, -1.0, 1.0),
}
_PROBE = np.linspace(-8.0, 8.0, 65, dtype=np.float32).reshape(1, 65)


def _consumers(model: tf.keras.Model, layer) -> list:
    consumers = []
    for node in layer._outbound_nodes:  # noqa: SLF001 (Keras keeps the graph here)
        if node.layer in model.layers:
            consumers.append(node.layer)
    return consumers


def _folds_into_producer(layer) -> bool:
    """Whether TFLite folds `layer` into the operator before it.

    BatchNormalization folds into a conv or dense layer; ReLU, ReLU6 and clip(-1, 1)
    (a Hardtanh) become fused activations. Activations are recognized by what they
    compute on a probe, so custom layers such as a Hardtanh count too.
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
        np.allclose(outputs, f(_PROBE)) for f in _FUSED_ACTIVATIONS.values()
    )


def quantized_layers(model: tf.keras.Model) -> list:
    """The layers of `model` whose outputs get an int8 range.

    Every top-level layer with one float output, except inputs and layers whose every
    consumer folds into them (BatchNormalization, ReLU, ReLU6, Hardtanh). A nested
    model counts as one layer.
    """
    if not isinstance(model, tf.keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            "int8 calibration needs a functional or Sequential Keras model, got "
            f"{type(model).__name__}"
        )
    chosen = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        if len(layer.inbound_nodes) != 1:
            continue  # shared layers: their outputs are several tensors
        output = layer.output
        if not tf.is_tensor(output) or not output.dtype.is_floating:
            continue
        consumers = _consumers(model, layer)
        if consumers and all(_folds_into_producer(c) for c in consumers):
            continue
        chosen.append(layer)
    return chosen


def calibrate_ranges(
    model: tf.keras.Model, representative_data: np.ndarray, *, batch_size: int = 32
) -> dict:
    """Min and max of each quantized layer's output over the representative data.

    # Arguments
        model: a functional or Sequential Keras model.
        representative_data: model inputs (e.g. a few hundred training images, as the
            model takes them: raw pixels for the zoo models).
        batch_size: images per forward pass.

    # Returns
        layer name -> (min, max), widened to contain 0 as int8 ranges must.
    """
    data = np.asarray(representative_data)
    if data.ndim < 1 or len(data) == 0:
        raise ValueError(
            f"representative_data must hold at least one input, got an array of shape {data.shape}"
        )
    layers = quantized_layers(model)
    probe = tf.keras.Model(model.inputs, [layer.output for layer in layers])
    lows = np.full(len(layers), np.inf)
    highs = np.full(len(layers), -np.inf)
    for start in range(0, len(data), batch_size):
        outputs = probe(data[start : start + batch_size].astype(np.float32), training=False)
        if len(layers) == 1:
            outputs = [outputs]
        for i, output in enumerate(outputs):
            lows[i] = min(lows[i], float(tf.reduce_min(output)))
            highs[i] = max(highs[i], float(tf.reduce_max(output)))
    ranges = {}
    for layer, low, high in zip(layers, lows, highs, strict=True):
        low, high = min(low, 0.0), max(high, 0.0)
        if high - low < 1e-6:
            high = low + 1e-6
        ranges[layer.name] = (low, high)
    return ranges


class _FakeQuantOutput(tf.keras.layers.Layer):
    """Calls a layer, then fake-quantizes its output to the calibrated int8 range."""

    def __init__(self, layer, low: float, high: float, **kwargs):
        # Same name, so the converted tensors keep the layer's name scope.
        super().__init__(name=layer.name, **kwargs)
        self.layer = layer
        self.low, self.high = float(low), float(high)

    def call(self, *args, **kwargs):
        outputs = self.layer(*args, **kwargs)
        return tf.quantization.fake_quant_with_min_max_args(
            outputs, min=self.low, max=self.high, num_bits=8
        )


def fake_quantized_copy(model: tf.keras.Model, ranges: dict) -> tf.keras.Model:
    """A copy of `model` (same weights) with fake-quant ops on the calibrated outputs.

    The layers are cloned from their configs, so `model` itself is left untouched;
    custom layers and quantizers must be registered (importing larq_irnet registers
    this project's).

    # Arguments
        model: a functional or Sequential Keras model.
        ranges: layer name -> (min, max), from `calibrate_ranges`.
    """

    def clone(layer):
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name in ranges:
            return _FakeQuantOutput(copy, *ranges[layer.name])
        return copy

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
