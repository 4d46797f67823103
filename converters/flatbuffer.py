"""Reading a converted TFLite flatbuffer: its operators, their tensors, and their MACs.

```python
from larq_irnet.converters.flatbuffer import op_histogram, read_graph

op_histogram(flatbuffer)  # {"LceBconv2d": 16, "CONV_2D": 4, ...}
graph = read_graph(flatbuffer)
[(op.name, op.macs) for op in graph.operators]
```

The reader walks the flatbuffer lazily (no copy of the weight buffers), so it is cheap
even for a 45 MB float model.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

__all__ = [
    "BINARY_OPS",
    "COMPUTE_OPS",
    "Graph",
    "Operator",
    "Tensor",
    "conv_macs",
    "histogram",
    "op_histogram",
    "op_names",
    "read_graph",
    "structure",
]

_BUILTIN_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
_TYPE_NAMES = {
    code: name.lower() for name, code in vars(schema.TensorType).items() if not name.startswith("_")
}

#: LCE's binary convolution: the one operator that computes with binary MACs.
BINARY_OPS = frozenset({"LceBconv2d"})
#: Operators that carry the multiply-accumulates of a network (the rest is cheap glue).
COMPUTE_OPS = frozenset(
    {"LceBconv2d", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
)


@dataclasses.dataclass(frozen=True)
class Tensor:
    """A tensor of the main subgraph.

    # Arguments
        index: its index in the subgraph.
        name: its name; the converter derives it from the TensorFlow op names it fused
            (`;`-separated, truncated), or the signature name for model outputs.
        shape: its static shape.
        dtype: `"float32"`, `"int8"`, `"int32"` (LCE's bitpacked activations), ...
        is_constant: whether it holds data in the flatbuffer (weights, biases).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    is_constant: bool


@dataclasses.dataclass(frozen=True)
class Operator:
    """An operator of the main subgraph.

    # Arguments
        index: its position in execution order.
        name: builtin name (`CONV_2D`, ...) or custom code (`LceBconv2d`, ...).
        inputs: its input tensors (`None` for an omitted optional input).
        outputs: its output tensors.
        options: decoded custom options (LCE writes flexbuffers, e.g. LceBconv2d's
            `channels_in`, `stride_height`, `pad_values`); empty for builtin operators.
    """

    index: int
    name: str
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]
    options: dict

    @property
    def macs(self) -> int:
        """Multiply-accumulates per example; 0 for operators outside `COMPUTE_OPS`."""
        return _macs(self)

    @property
    def compute_dtype(self) -> str:
        """The dtype of the operator's data input: `"int32"` means bitpacked binary."""
        data = self.inputs[2] if self.name == "TRANSPOSE_CONV" else self.inputs[0]
        return data.dtype if data is not None else "none"


@dataclasses.dataclass(frozen=True)
class Graph:
    """The main subgraph of a flatbuffer.

    # Arguments
        operators: in execution order.
        tensors: all tensors, by index.
        signature_outputs: output tensor index -> signature name (the Keras output
            layer's name for a converted Keras model).
    """

    operators: tuple[Operator, ...]
    tensors: tuple[Tensor, ...]
    signature_outputs: dict
    _producers: dict = dataclasses.field(init=False, repr=False, compare=False)
    _consumers: dict = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        producers = {t.index: op for op in self.operators for t in op.outputs}
        consumers = collections.defaultdict(list)
        for op in self.operators:
            for t in op.inputs:
                if t is not None:
                    consumers[t.index].append(op)
        object.__setattr__(self, "_producers", producers)
        object.__setattr__(self, "_consumers", dict(consumers))

    def producer(self, tensor: Tensor) -> Operator | None:
        """The operator that writes `tensor` (None for inputs and constants)."""
        return self._producers.get(tensor.index)

    def consumers(self, tensor: Tensor) -> list[Operator]:
        """The operators that read `tensor`."""
        return self._consumers.get(tensor.index, [])


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_graph(flatbuffer: bytes) -> Graph:
    """Parse the main subgraph of a TFLite flatbuffer (as LCE's converter writes it).

    # Arguments
        flatbuffer: the bytes of a `.tflite` model.
    """
    try:
        model = schema.Model.GetRootAs(flatbuffer, 0)
        subgraph = model.Subgraphs(0)
    except Exception as e:  # the flatbuffers runtime raises bare struct/index errors
        raise ValueError(f"not a TFLite flatbuffer ({len(flatbuffer)} bytes): {e}") from e
    if subgraph is None:
        raise ValueError("the TFLite flatbuffer has no subgraph")

    codes = []
    for i in range(model.OperatorCodesLength()):
        opcode = model.OperatorCodes(i)
        # Builtin codes past 127 live in `BuiltinCode`; older files use the deprecated byte.
        builtin = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(_decode(opcode.CustomCode()))
        else:
            codes.append(_BUILTIN_NAMES[builtin])

    tensors = []
    for i in range(subgraph.TensorsLength()):
        t = subgraph.Tensors(i)
        buffer = model.Buffers(t.Buffer())
        has_data = buffer is not None and (buffer.DataLength() > 0 or buffer.Size() > 0)
        tensors.append(
            Tensor(
                index=i,
                name=_decode(t.Name()),
                shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                dtype=_TYPE_NAMES.get(t.Type(), str(t.Type())),
                is_constant=bool(has_data),
            )
        )

    operators = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        inputs = op.InputsAsNumpy() if op.InputsLength() else []
        outputs = op.OutputsAsNumpy() if op.OutputsLength() else []
        options = {}
        if op.CustomOptionsLength():
            try:
                options = dict(flexbuffers.Loads(bytes(op.CustomOptionsAsNumpy())))
            except Exception:  # not a flexbuffer map: keep the operator, drop the options
                options = {}
        operators.append(
            Operator(
                index=i,
                name=codes[op.OpcodeIndex()],
                inputs=tuple(tensors[j] if j >= 0 else None for j in inputs),
                outputs=tuple(tensors[j] for j in outputs),
                options=options,
            )
        )

    signature_outputs = {}
    for s in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(s)
        if signature.SubgraphIndex() != 0:
            continue
        for j in range(signature.OutputsLength()):
            output = signature.Outputs(j)
            signature_outputs[output.TensorIndex()] = _decode(output.Name())
    return Graph(tuple(operators), tuple(tensors), signature_outputs)


def _per_example(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)


def conv_macs(outputs: int, kernel_size: int, inputs_per_output: int) -> int:
    """Multiply-accumulates of a convolution or dense layer, per example.

    The one MAC formula of the project: the flatbuffer's operators, the Keras layers
    (`converters.report.layer_macs`) and the zoo table all count with it.

    # Arguments
        outputs: output values per example (pixels x output channels; units for dense).
        kernel_size: kernel positions (kh x kw; 1 for dense).
        inputs_per_output: input channels each output reads (C_in; 1 for depthwise).
    """
    return int(outputs) * int(kernel_size) * int(inputs_per_output)


def _macs(op: Operator) -> int:
    if op.name not in COMPUTE_OPS:
        return 0
    if op.name == "LceBconv2d":
        # Filter: (C_out, kh, kw, C_in / 32) bitpacked; C_in is in the options.
        # The output may be bitpacked (32 channels per int32): count pixels x C_out.
        c_out, kh, kw = op.inputs[1].shape[:3]
        channels_in = int(op.options.get("channels_in", 32 * op.inputs[1].shape[3]))
        pixels = math.prod(op.outputs[0].shape[1:-1])
        return conv_macs(pixels * c_out, kh * kw, channels_in)
    if op.name == "CONV_2D":
        _, kh, kw, c_in = op.inputs[1].shape  # OHWI
        return conv_macs(_per_example(op.outputs[0].shape), kh * kw, c_in)
    if op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = op.inputs[1].shape  # 1, kh, kw, C * multiplier
        return conv_macs(_per_example(op.outputs[0].shape), kh * kw, 1)
    if op.name == "FULLY_CONNECTED":
        _, c_in = op.inputs[1].shape  # (units, input features)
        return conv_macs(_per_example(op.outputs[0].shape), 1, c_in)
    # TRANSPOSE_CONV: (output_shape, filter OHWI, input): every input pixel meets the filter.
    c_out, kh, kw, _ = op.inputs[1].shape
    return conv_macs(_per_example(op.inputs[2].shape) * c_out, kh * kw, 1)


def structure(flatbuffer: bytes) -> list[tuple]:
    """The operators with their tensors' shapes, dtypes and constness, and their options.

    Names and weight values are left out: two flatbuffers with equal structures run the
    same kernels on the same shapes, so they cost the same at inference.
    """

    def tensors(ts):
        return tuple(None if t is None else (t.shape, t.dtype, t.is_constant) for t in ts)

    return [
        (op.name, tensors(op.inputs), tensors(op.outputs), sorted(op.options.items()))
        for op in read_graph(flatbuffer).operators
    ]


def op_names(flatbuffer: bytes) -> list[str]:
    """The operators of the flatbuffer's main subgraph, in execution order.

    Builtin operators by their TFLite name (`CONV_2D`, `FULLY_CONNECTED`, ...), custom
    ones by their custom code (`LceBconv2d`, `LceQuantize`, `LceDequantize`, ...).
    """
    return [op.name for op in read_graph(flatbuffer).operators]


def histogram(graph: Graph) -> dict[str, int]:
    """How many times each operator occurs in `graph` (from `read_graph`)."""
    return dict(collections.Counter(op.name for op in graph.operators))


def op_histogram(flatbuffer: bytes) -> dict[str, int]:
    """How many times each operator occurs in the flatbuffer's main subgraph."""
    return histogram(read_graph(flatbuffer))
