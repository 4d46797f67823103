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

from larq_irnet.converters import report as _report
from larq_irnet.layers import walk_layers

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


def _nodes(model: tf.keras.Model) -> list:
    """The nodes of `model`'s own graph (calls of its layers, nested models included)."""
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]  # noqa: SLF001


def _inbound(node) -> list:
    layers = node.inbound_layers
    return list(layers) if isinstance(layers, (list, tuple)) else [layers]


def _consumers(model: tf.keras.Model, layer) -> list:
    return [node.layer for node in _nodes(model) if layer in _inbound(node)]


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
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        return False  # not an elementwise single-input layer
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


def _reads_a_sign(layer) -> bool:
    """Whether `layer` binarizes its input: a binary input quantizer, or a sign layer."""
    quantizer = getattr(layer, "input_quantizer", None)
    if quantizer is not None:
        values = np.asarray(quantizer(_report._probe(layer)))
        return _report.quantizer_kind(values) == _report.SIGN
    return not layer.trainable_weights and _report._outputs_sign(layer)


def _feeds_a_sign(model: tf.keras.Model, layer) -> bool:
    """Whether `layer`'s output reaches a sign before any other conv or dense layer.

    Int8 rounding of such a tensor flips the signs of values within half an int8 step
    of zero (docs/deploy.md measures it on the shipped ResNet-20: the stem).
    """
    seen, frontier = set(), [_chain_end(model, layer)]
    while frontier:
        current = frontier.pop()
        for consumer in _consumers(model, current):
            if id(consumer) in seen:
                continue
            seen.add(id(consumer))
            if _reads_a_sign(consumer):
                return True
            if not isinstance(consumer, (*_COMPUTE_LAYERS, tf.keras.Model)):
                frontier.append(consumer)
    return False


def _graph_model(model) -> tf.keras.Model:
    if not isinstance(model, tf.keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(
            f"int8 needs a functional or Sequential Keras model, got {type(model).__name__}"
        )
    return model


def _own_float_layers(model: tf.keras.Model, binary, prefix: tuple, keep_float_before_sign):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, _COMPUTE_LAYERS)
        and "/".join(prefix + (layer.name,)) not in binary
        and len(layer.inbound_nodes) == 1  # shared layers: several tensors
        # A sign activation's output is exactly +-1, the binary conv's input: int8 there
        # saves nothing and hides the sign from LCE.
        and not _report._outputs_sign(layer)
        and not (keep_float_before_sign and _feeds_a_sign(model, layer))
    ]


def float_compute_layers(
    model: tf.keras.Model, binary: set, *, keep_float_before_sign: bool = False
) -> list:
    """The conv and dense layers of `model` (nested models included) LCE keeps in float.

    # Arguments
        model: a functional or Sequential Keras model.
        binary: paths of the layers expected to become `LceBconv2d`: the layer name, or
            `"backbone/conv"` inside a nested model (as `ConversionReport` names them).
        keep_float_before_sign: leave out the layers whose output reaches a sign before
            another conv or dense layer (they are what `convert(int8=True)` keeps float).

    # Raises
        ValueError: `model` (or a nested model) is not functional or Sequential.
    """
    found = []
    for parent, prefix in _models(_graph_model(model), ()):
        found += _own_float_layers(parent, binary, prefix, keep_float_before_sign)
    return found


def _models(model: tf.keras.Model, prefix: tuple) -> list:
    """`model` and every model nested in it, with their paths, as the report walks them."""
    models = {id(model): (model, prefix)}
    for path, _, parent in walk_layers(model, prefix):
        models.setdefault(id(parent), (_graph_model(parent), path[:-1]))
    return list(models.values())


def _points(model: tf.keras.Model, layers: list, prefix: tuple) -> list:
    """(layer path, "input" | "output", Keras tensor) for every tensor to quantize."""
    points = []
    for layer in layers:
        if tf.is_tensor(layer.input) and layer.input.dtype.is_floating:
            points.append(("/".join(prefix + (layer.name,)), "input", layer.input))
        end = _chain_end(model, layer)
        points.append(("/".join(prefix + (end.name,)), "output", end.output))
    return points


def _nested_inputs(model: tf.keras.Model) -> list:
    """(nested model, the tensor it is called on in `model`) for single-input calls."""
    calls = []
    for layer in model.layers:
        if not isinstance(layer, tf.keras.Model):
            continue
        nodes = [node for node in _nodes(model) if node.layer is layer]
        if len(nodes) == 1 and len(nodes[0].keras_inputs) == 1:
            calls.append((layer, nodes[0].keras_inputs[0]))
    return calls


def _calibrate(model, batches, binary, prefix, keep_float_before_sign, ranges) -> None:
    """Record into `ranges` the min and max of `model`'s points over `batches`, then
    recurse into the nested models with the tensors they are called on."""
    model = _graph_model(model)
    points = _points(
        model, _own_float_layers(model, binary, prefix, keep_float_before_sign), prefix
    )
    nested = _nested_inputs(model)
    tensors = [tensor for _, _, tensor in points] + [tensor for _, tensor in nested]
    if not tensors:
        return
    probe = tf.keras.Model(model.inputs, tensors)
    lows = np.full(len(points), np.inf)
    highs = np.full(len(points), -np.inf)
    nested_batches: list[list] = [[] for _ in nested]
    for batch in batches:
        outputs = probe(batch, training=False)
        if len(tensors) == 1:
            outputs = [outputs]
        for i in range(len(points)):
            lows[i] = min(lows[i], float(tf.reduce_min(outputs[i])))
            highs[i] = max(highs[i], float(tf.reduce_max(outputs[i])))
        for j in range(len(nested)):
            nested_batches[j].append(outputs[len(points) + j])
    for (name, where, _), low, high in zip(points, lows, highs, strict=True):
        low, high = min(low, 0.0), max(high, 0.0)
        ranges[(name, where)] = (low, max(high, low + 1e-6))
    for (layer, _), inner in zip(nested, nested_batches, strict=True):
        _calibrate(layer, inner, binary, prefix + (layer.name,), keep_float_before_sign, ranges)


def calibrate_ranges(
    model: tf.keras.Model,
    representative_data: np.ndarray,
    *,
    binary: set = frozenset(),
    batch_size: int = 32,
    keep_float_before_sign: bool = False,
) -> dict:
    """Min and max of the tensors around the float layers, over representative data.

    Nested models (a backbone inside a model) are calibrated on the tensors they are
    called on, so their float layers get ranges as well.

    # Arguments
        model: a functional or Sequential Keras model.
        representative_data: model inputs, shape (N, *input_shape) (e.g. a few hundred
            training images, as the model takes them: raw pixels for the zoo models).
        binary: paths of the layers expected to become `LceBconv2d` (left alone).
        batch_size: images per forward pass.
        keep_float_before_sign: leave the layers that feed a sign out (see
            `float_compute_layers`).

    # Returns
        (layer path, "input" | "output") -> (min, max), widened to contain 0 as int8
        ranges must. The path is the layer name, `"backbone/conv"` inside a nested model.

    # Raises
        ValueError: no representative input, or a model that is not functional or
            Sequential.
    """
    data = np.asarray(representative_data)
    if data.ndim < 1 or len(data) == 0:
        raise ValueError(
            f"representative_data must hold at least one input, got an array of shape {data.shape}"
        )
    batches = [
        data[start : start + batch_size].astype(np.float32)
        for start in range(0, len(data), batch_size)
    ]
    ranges: dict = {}
    _calibrate(model, batches, binary, (), keep_float_before_sign, ranges)
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
    nested models are copied the same way, recursively. Custom layers and quantizers
    must be registered (importing larq_irnet registers this project's).

    # Arguments
        model: a functional or Sequential Keras model.
        ranges: (layer path, "input" | "output") -> (min, max), from `calibrate_ranges`.

    # Raises
        ValueError: a layer does not round-trip through `get_config`.
    """
    return _copy(model, ranges, ())


def _copy(model: tf.keras.Model, ranges: dict, prefix: tuple) -> tf.keras.Model:
    def clone(layer):
        if isinstance(layer, tf.keras.Model):
            return _copy(_graph_model(layer), ranges, prefix + (layer.name,))
        copy = layer.__class__.from_config(layer.get_config())
        path = "/".join(prefix + (layer.name,))
        input_range = ranges.get((path, "input"))
        output_range = ranges.get((path, "output"))
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
