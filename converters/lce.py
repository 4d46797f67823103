"""Converting a Keras model with Larq Compute Engine, with a report that proves the result.

```python
import larq_irnet
from larq_irnet.converters import convert

result = convert(model, strict=True)  # raises if a 1w1a layer stayed float
print(result.report)                  # per layer: LceBconv2d or float op + reason
result.save("model.tflite")           # atomic
```
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

from larq_irnet.converters import int8 as _int8
from larq_irnet.converters.flatbuffer import histogram, read_graph
from larq_irnet.converters.report import ConversionReport, binarized_layers, build_report
from larq_irnet.io import atomic_write

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from larq_compute_engine.mlir._tf_tfl_flatbuffer import convert_graphdef_to_tflite_flatbuffer
from larq_compute_engine.mlir.python.converter import concrete_function_from_keras_model
from larq_compute_engine.mlir.python.util import modify_integer_quantized_model_io_type
from tensorflow.core.framework import graph_pb2
from tensorflow.core.framework.types_pb2 import DataType
from tensorflow.lite.python.util import get_tensor_name
from tensorflow.python.framework import op_def_registry
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

__all__ = [
    "LCE_OPTIONS",
    "ConversionError",
    "ConversionResult",
    "convert",
    "fold_weight_computations",
]

#: The keyword arguments of `larq_compute_engine.convert_keras_model` (LCE 0.16).
LCE_OPTIONS = (
    "inference_input_type",
    "inference_output_type",
    "target",
    "experimental_default_int8_range",
)


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """A converted model: the flatbuffer and what it contains.

    # Arguments
        flatbuffer: the `.tflite` model, for LCE's interpreter or `lce_benchmark_model`.
        report: per binarized layer what it became, MACs, operators, size.
    """

    flatbuffer: bytes
    report: ConversionReport

    def save(self, path: str | os.PathLike) -> Path:
        """Write the flatbuffer to `path` atomically (an existing file is replaced whole)."""
        return atomic_write(path, self.flatbuffer)


class ConversionError(ValueError):
    """A strict conversion left binarized layers in float; `.report` says what happened."""

    def __init__(self, message: str, report: ConversionReport):
        super().__init__(message)
        self.report = report


#: Operators a quantization-aware graph carries; their presence makes LCE quantize.
_FAKE_QUANT_OPS = frozenset(
    {
        "FakeQuantWithMinMaxArgs",
        "FakeQuantWithMinMaxArgsPerChannel",
        "FakeQuantWithMinMaxVars",
        "FakeQuantWithMinMaxVarsPerChannel",
        "QuantizeAndDequantizeV2",
        "QuantizeAndDequantizeV3",
    }
)


def _has_fake_quant(graph_def) -> bool:
    ops = {node.op for node in graph_def.node}
    ops.update(node.op for function in graph_def.library.function for node in function.node_def)
    return not ops.isdisjoint(_FAKE_QUANT_OPS)


def _tensor_node(name: str) -> tuple[str, int]:
    """`(node, output index)` of a GraphDef input such as `"a/b:1"` or `"a/b"`."""
    node, _, index = name.partition(":")
    return node, int(index or 0)


def fold_weight_computations(graph_def, outputs: Sequence[str]):
    """`graph_def` with every computation that reads no model input replaced by its value.

    A quantized kernel is computed from constants once the variables are frozen
    (`sign(w)`; Libra-PB's mean, std, sign and scale), and the converter is meant to
    fold it into one constant filter, which LCE's patterns need to find a binary
    convolution. TensorFlow's MLIR constant folder declines an operation whose operands
    exceed 128 MiB, so a large kernel (larq-zoo's XNORNet at 224x224: 9216x4096 scaled
    sign weights) is otherwise computed on the device at every inference, and its binary
    filter is not recognised. This evaluates each such computation where it meets the
    model's data flow, once, with TensorFlow, and stores the result as a constant under
    the same node name. Stateful operations and fake-quantization ops stay (LCE reads
    the int8 ranges from the latter); so does everything after them.

    # Arguments
        graph_def: a frozen `GraphDef` (variables already constants).
        outputs: the graph's output tensor names; nodes they do not need are dropped.

    # Returns
        A new `GraphDef`; `graph_def` is not changed.
    """
    nodes = {node.name: node for node in graph_def.node}

    def sources(node) -> list[str]:
        return [_tensor_node(i.lstrip("^"))[0] for i in node.input]

    varying: dict[str, bool] = {}

    def is_varying(name: str) -> bool:
        # Iterative depth-first walk: deep networks exceed Python's recursion limit.
        stack = [name]
        while stack:
            current = stack[-1]
            if current in varying:
                stack.pop()
                continue
            node = nodes[current]
            pending = [s for s in sources(node) if s not in varying]
            if pending:
                stack.extend(pending)
                continue
            op = op_def_registry.get(node.op)
            varying[current] = (
                node.op == "Placeholder"
                or node.op in _FAKE_QUANT_OPS
                or op is None
                or op.is_stateful
                or any(varying[s] for s in sources(node))
            )
            stack.pop()
        return varying[name]

    for name in nodes:
        is_varying(name)
    consumed_outputs: dict[str, set[int]] = {}
    for node in graph_def.node:
        for name in node.input:
            if not name.startswith("^"):
                source, index = _tensor_node(name)
                consumed_outputs.setdefault(source, set()).add(index)
    # The constant computations that a varying node (or an output) reads.
    frontier = sorted(
        {
            source
            for node in graph_def.node
            if varying[node.name]
            for source in (_tensor_node(i)[0] for i in node.input if not i.startswith("^"))
            if not varying[source]
            and nodes[source].op not in ("Const", "Identity")
            and consumed_outputs.get(source, {0}) == {0}
        }
    )
    if not frontier:
        return graph_def
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        values = session.run([f"{name}:0" for name in frontier])
    folded = graph_pb2.GraphDef()
    folded.versions.CopyFrom(graph_def.versions)
    folded.library.CopyFrom(graph_def.library)
    replaced = dict(zip(frontier, values, strict=True))
    needed, stack = set(), [_tensor_node(name)[0] for name in outputs]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        if name not in replaced:
            stack.extend(sources(nodes[name]))
    for node in graph_def.node:
        if node.name not in needed:
            continue
        if node.name in replaced:
            value = replaced[node.name]
            constant = folded.node.add(name=node.name, op="Const", device=node.device)
            constant.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            constant.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        else:
            folded.node.add().CopyFrom(node)
    return folded


def _graphdef_route(
    model: tf.keras.Model,
    *,
    inference_input_type: tf.DType,
    inference_output_type: tf.DType,
    target: str,
    experimental_default_int8_range: tuple[float, float] | None,
) -> bytes:
    """Convert through a frozen concrete function: LCE's own second route, taken first.

    `lce.convert_keras_model` first exports a SavedModel, which traces every layer's
    call function again (minutes for an 80-layer zoo ResNet on a small CPU); when that
    export fails it freezes the model's concrete function and converts the GraphDef.
    This is that second route, called directly with LCE 0.16's public building blocks:
    several times faster, same operators and outputs
    (`test_graphdef_route_matches_lce_saved_model_route`). Options are validated by
    `convert` before this runs.
    """
    function = concrete_function_from_keras_model(model)
    frozen = convert_variables_to_constants_v2(function, lower_control_flow=False)
    inputs = [t for t in frozen.inputs if t.dtype != tf.dtypes.resource]
    graph_def = fold_weight_computations(
        frozen.graph.as_graph_def(), [get_tensor_name(t) for t in frozen.outputs]
    )
    quantize = _has_fake_quant(graph_def) or experimental_default_int8_range is not None
    shapes = []
    for tensor in inputs:
        shape = tensor.shape.as_list()
        if None in shape[1:]:
            raise ValueError(
                f"convert: input {get_tensor_name(tensor)!r} has shape {shape}; only the "
                "batch dimension may be None"
            )
        if shape and shape[0] is None:
            shape[0] = 1  # LCE converts for one example at a time
            tensor.set_shape(shape)
        shapes.append(shape)
    flatbuffer = convert_graphdef_to_tflite_flatbuffer(
        graph_def.SerializeToString(),
        [get_tensor_name(t) for t in inputs],
        [DataType.Name(t.dtype.as_datatype_enum) for t in inputs],
        shapes,
        [get_tensor_name(t) for t in frozen.outputs],
        quantize,
        target,
        experimental_default_int8_range,
    )
    if quantize and tf.float32 not in {inference_input_type} | {inference_output_type}:
        flatbuffer = modify_integer_quantized_model_io_type(
            flatbuffer,
            inference_input_type=inference_input_type,
            inference_output_type=inference_output_type,
        )
    return flatbuffer


def _strict_message(report: ConversionReport) -> str:
    details = "; ".join(
        f"{layer.layer!r} ({layer.layer_type} -> {', '.join(layer.ops) or 'no operator'}: "
        f"{layer.reason})"
        for layer in report.float_layers
    )
    return (
        f"strict conversion: {len(report.float_layers)} binarized (1w1a) layer(s) did not "
        f"become LceBconv2d: {details}"
    )


def _validate_lce_options(
    inference_input_type, inference_output_type, target, experimental_default_int8_range
) -> None:
    for name, dtype in (
        ("inference_input_type", inference_input_type),
        ("inference_output_type", inference_output_type),
    ):
        if dtype not in (tf.float32, tf.int8):
            raise ValueError(f"convert: `{name}` must be tf.float32 or tf.int8, got {dtype!r}")
    if target not in ("arm", "xcore"):
        raise ValueError(f'convert: `target` must be "arm" or "xcore", got {target!r}')
    if experimental_default_int8_range is not None:
        values = tuple(experimental_default_int8_range)
        if (
            len(values) != 2
            or not all(isinstance(v, (int, float, np.number)) for v in values)
            or not all(math.isfinite(v) for v in values)
            or values[0] >= values[1]
        ):
            raise ValueError(
                "convert: `experimental_default_int8_range` must be (min, max) with finite "
                f"min < max, got {experimental_default_int8_range!r}"
            )


def convert(
    model: tf.keras.Model,
    *,
    strict: bool = False,
    int8: bool = False,
    representative_data: np.ndarray | None = None,
    int8_sign_inputs: bool = False,
    saved_model: bool = False,
    inference_input_type: tf.DType = tf.float32,
    inference_output_type: tf.DType = tf.float32,
    target: str = "arm",
    experimental_default_int8_range: tuple[float, float] | None = None,
) -> ConversionResult:
    """Convert `model` with LCE and report what each binarized layer became.

    The report lists every Keras layer with a binary quantizer and the flatbuffer
    operator it became (`LceBconv2d`, or a float operator with the likely reason:
    non-sign quantizer, reshape between quantizer and conv, dense or depthwise layer,
    ...), the binary and float MACs, the operator histogram and the size. Nested models
    (a backbone inside a model) are walked layer by layer.

    With `int8=True`, the conv and dense layers LCE keeps in float (shortcuts,
    classifier) run in int8 with int8 weights: LCE 0.16 has no representative-dataset
    option, so the ranges are calibrated here on `representative_data` and handed to LCE
    as fake-quantization ops (see `larq_irnet.converters.int8`). The layers whose output
    reaches a binary sign without passing a binary convolution (the stem) stay float:
    int8 rounding there flips signs (docs/deploy.md has the measured cost). The
    residual stream and the binary convolutions' inputs stay float32, and so do the
    model's inputs and outputs.

    # Arguments
        model: a built Keras model (Larq layers included).
        strict: raise `ConversionError`, naming the layers and reasons, if any layer
            whose weights and inputs are both binary did not become `LceBconv2d`.
        int8: quantize the float layers to int8 (needs `representative_data`).
        representative_data: model inputs to calibrate the int8 ranges on, shape
            (N, *input_shape), e.g. a few hundred training images as the model takes
            them (raw pixels for the zoo).
        int8_sign_inputs: with `int8`, also quantize the float layers whose output
            reaches a sign (the stem; ResNet-18/34's downsampling convolutions):
            smaller, but rounding flips signs (measured in docs/deploy.md).
        saved_model: take LCE's default route (`convert_keras_model`, which exports a
            SavedModel first); otherwise LCE's GraphDef route is called directly (the
            one it falls back to; same operators, several times faster for deep models).
        inference_input_type: as in `larq_compute_engine.convert_keras_model`:
            `tf.float32` or `tf.int8` (applies to quantized models).
        inference_output_type: likewise, for the outputs.
        target: `"arm"` or `"xcore"`, as in LCE.
        experimental_default_int8_range: LCE's "dummy quantization" `(min, max)`: one
            fixed range for every tensor without one, for latency tests only.

    # Returns
        A `ConversionResult` with `.flatbuffer` (bytes) and `.report`.

    # Raises
        TypeError: `model` is not a Keras model.
        ValueError: the model is not built, an option is invalid, or `int8` and
            `representative_data` do not go together.
        ConversionError: `strict=True` and a binarized layer stayed float.
    """
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"convert: `model` must be a tf.keras.Model, got {type(model).__name__}")
    if not model.built:
        raise ValueError(
            f"convert: model {model.name!r} is not built; call it on an input or give it "
            "an input shape first"
        )
    options = dict(
        inference_input_type=inference_input_type,
        inference_output_type=inference_output_type,
        target=target,
        experimental_default_int8_range=experimental_default_int8_range,
    )
    _validate_lce_options(**options)
    if int8 and representative_data is None:
        raise ValueError(
            "convert: int8=True needs `representative_data` (e.g. a few hundred training "
            "images) to calibrate the int8 ranges. LCE's own "
            "experimental_default_int8_range=(min, max) applies one range to every "
            "tensor and is meant for latency tests only; pass it explicitly if that is "
            "what you want."
        )
    if not int8 and (representative_data is not None or int8_sign_inputs):
        raise ValueError(
            "convert: `representative_data` and `int8_sign_inputs` are only used with int8=True"
        )

    layers = binarized_layers(model)
    to_convert = model
    if int8:
        # Layers with sign weights and sign inputs become LceBconv2d: leave them alone.
        binary = {b.name for b in layers if b.fully_binary_in_keras}
        ranges = _int8.calibrate_ranges(
            model,
            representative_data,
            binary=binary,
            keep_float_before_sign=not int8_sign_inputs,
        )
        to_convert = _int8.fake_quantized_copy(model, ranges)
    if saved_model:
        flatbuffer = lce.convert_keras_model(to_convert, **options)
    else:
        flatbuffer = _graphdef_route(to_convert, **options)
    graph = read_graph(flatbuffer)
    report = build_report(graph, layers, histogram(graph), len(flatbuffer), int8=int8)
    if strict and report.float_layers:
        raise ConversionError(_strict_message(report), report)
    return ConversionResult(flatbuffer, report)
