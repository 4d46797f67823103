"""What a conversion made of each binarized Keras layer, proven from the flatbuffer.

LCE turns a Larq layer into its binary convolution `LceBconv2d` only for particular
patterns (see `docs/deploy.md`); anything else silently stays a float operator. This
module finds every Keras layer with a binary quantizer, finds the operator it became in
the converted flatbuffer, and says why when that operator is not binary.

Quantizers are classified by what they compute, not by their names: each one is applied
to a probe tensor (activations) or to the layer's own kernel (weights) and its output
values are inspected. So a `lambda x: tf.math.sign(x)` quantizer is seen as binary (and
then reported as a pattern LCE does not recognize), and DoReFa's 1-bit {0, 1} output is
seen as binary but not a sign.

Layers are matched to operators by the tensor names the converter writes (verified on
LCE 0.16): each output tensor is named after the TensorFlow ops fused into it
(`model/conv_3/QuantConv2D`, `;`-joined, truncated to 50 characters); the outputs of
the model by the Keras output layers (signature) or `Identity`; and the bitpacked
output of a binary convolution that feeds another one after the *next* layer's input
quantizer. So an operator names its layer through its output (unless bitpacked), or
through its data input when that comes out of a sign (named after the layer's own input
quantizer); a name truncated inside a layer's name counts only when it fits a single
layer; and the operator's output channels must match the layer's.
"""

from __future__ import annotations

import dataclasses
import json
import math

from larq_irnet.converters.flatbuffer import BINARY_OPS, COMPUTE_OPS, Graph, Operator, conv_macs
from larq_irnet.layers import QUANTIZED_WEIGHTS, is_binary_quantizer, walk_layers

import larq as lq
import numpy as np
import tensorflow as tf

__all__ = [
    "ConversionReport",
    "LayerConversion",
    "binarized_layers",
    "build_report",
    "layer_macs",
    "quantizer_kind",
]

# What a quantizer's output looks like (see `quantizer_kind`).
SIGN = "sign"  # exactly -1/+1 (weights: -s/+s with s per output channel)
SCALED_SIGN = "scaled sign"  # -a/+a with a != 1 (activations only)
SIGN_OTHER_SCALE = "sign, scale not per output channel"  # weights only
TWO_LEVEL = "1-bit, not a sign"  # two values, not symmetric: {0, 1}, ...
MULTI_LEVEL = "multi-bit"
FLOAT = "float"
_BINARY_KINDS = (SIGN, SCALED_SIGN, SIGN_OTHER_SCALE, TWO_LEVEL)
UPSTREAM_SIGN = "sign (upstream)"  # no input quantizer, but the input is a sign's output

# Operators that move or pad a tensor without computing on it: seen between an input
# quantizer and its convolution when LCE could not fuse them.
_PASS_THROUGH = frozenset(
    {"PAD", "PADV2", "RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "STRIDED_SLICE"}
)
_RESHAPES = frozenset({"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS"})
# Operators that produce the output of a sign: LCE's, or TFLite's when LCE did not fuse.
_SIGN_OPS = frozenset({"LceQuantize", "LceDequantize", "SIGN"})

_TYPE_REASONS = {
    "QuantDense": "dense layer: LCE has no binary fully-connected op (use a 1x1 QuantConv2D)",
    "QuantDepthwiseConv2D": "depthwise convolution: LCE has no binary depthwise op",
    "QuantSeparableConv1D": "separable convolution: LCE has no binary depthwise op",
    "QuantSeparableConv2D": "separable convolution: LCE has no binary depthwise op",
    "QuantConv2DTranspose": "transposed convolution: LCE has no binary transposed conv",
    "QuantConv3DTranspose": "transposed convolution: LCE has no binary transposed conv",
    "QuantConv1D": "1-D convolution: LCE binarizes only Conv2D (reshape to 2-D inside LCE "
    "fails too)",
    "QuantConv3D": "3-D convolution: LCE has no binary 3-D conv",
    "QuantLocallyConnected1D": "locally connected layer: LCE has no binary op for it",
    "QuantLocallyConnected2D": "locally connected layer: LCE has no binary op for it",
}


@dataclasses.dataclass(frozen=True)
class LayerConversion:
    """One Keras layer with a binary quantizer and what it became.

    # Arguments
        layer: the layer's path in the model (`"conv_3"`, or `"backbone/conv_3"` when
            nested).
        layer_type: its class name (`"QuantConv2D"`, ...).
        weights: what its weight quantizer outputs (`"sign"`, `"float"`, ...).
        activations: what its input quantizer outputs; `"sign (upstream)"` when the
            flatbuffer shows a binary input made by an earlier layer.
        fully_binary: whether both weights and activations are binary (1w1a), i.e. the
            layer should become `LceBconv2d`.
        ops: the flatbuffer operators it became, e.g. `("LceBconv2d",)`, or
            `("CONV_2D (float32)",)`; empty when no operator could be matched.
        binary: whether it became LCE's binary convolution.
        reason: for a layer that stayed float, the likely reason.
        macs: multiply-accumulates of its operators, per example.
    """

    layer: str
    layer_type: str
    weights: str
    activations: str
    fully_binary: bool
    ops: tuple[str, ...]
    binary: bool
    reason: str | None
    macs: int


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What a conversion produced: per binarized layer, MACs, operators and size.

    # Arguments
        layers: one entry per Keras layer with a binary quantizer, in model order.
        op_histogram: how many times each operator occurs.
        binary_macs: MACs of `LceBconv2d` operators, per example.
        float_macs: MACs of float32 CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED/
            TRANSPOSE_CONV operators, per example.
        int8_macs: MACs of such operators running in int8, per example.
        size_bytes: size of the flatbuffer.
        int8: whether the float layers were quantized to int8.
    """

    layers: tuple[LayerConversion, ...]
    op_histogram: dict
    binary_macs: int
    float_macs: int
    int8_macs: int
    size_bytes: int
    int8: bool = False

    @property
    def float_layers(self) -> tuple[LayerConversion, ...]:
        """The 1w1a layers that did not become `LceBconv2d` (what `strict` rejects)."""
        return tuple(layer for layer in self.layers if layer.fully_binary and not layer.binary)

    def to_dict(self) -> dict:
        """A JSON-serializable form of the report."""
        return {
            **dataclasses.asdict(self),
            "layers": [dataclasses.asdict(layer) for layer in self.layers],
            "float_layers": [layer.layer for layer in self.float_layers],
        }

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        n_bin = sum(layer.binary for layer in self.layers)
        n_full = sum(layer.fully_binary for layer in self.layers)
        lines = [
            f"LCE flatbuffer: {self.size_bytes / 1024:.1f} KiB"
            + (", float layers quantized to int8" if self.int8 else ""),
            f"MACs per example: binary {self.binary_macs:,}, float32 {self.float_macs:,}"
            + (f", int8 {self.int8_macs:,}" if self.int8_macs else ""),
            "operators: "
            + ", ".join(f"{name} x{count}" for name, count in sorted(self.op_histogram.items())),
            f"binarized layers: {n_bin} of {n_full} 1w1a layers became LceBconv2d",
        ]
        width = max([len(layer.layer) for layer in self.layers] + [5])
        for layer in self.layers:
            became = ", ".join(layer.ops) if layer.ops else "(no operator found)"
            line = f"  {layer.layer:<{width}}  {layer.layer_type:<20} -> {became}"
            if layer.reason:
                line += f"  [{layer.reason}]"
            lines.append(line)
        return "\n".join(lines)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Distinct values up to float noise."""
    return np.unique(np.round(values.astype(np.float64), 6))


def quantizer_kind(values: np.ndarray, *, per_channel_axis: int | None = None) -> str:
    """Classify a quantizer's output values.

    # Arguments
        values: the quantizer's output on a probe tensor (activations) or on the
            layer's kernel (weights).
        per_channel_axis: for weights, the output-channel axis. A sign whose magnitude
            is constant within every output channel is `"sign"` (LCE folds that scale
            into its binary convolution); one whose magnitude is constant along the
            output channels instead (a per-input-channel or spatial scale) is
            `"sign, scale not per output channel"`.

    # Returns
        `"sign"` (exactly +-1, or +-s_o for weights), `"scaled sign"` (+-a, a != 1),
        `"sign, scale not per output channel"`, `"1-bit, not a sign"` (two values that
        are not +-a, e.g. {0, 1}), `"multi-bit"` (3 to 256 levels) or `"float"`.
    """
    values = np.asarray(values, dtype=np.float64)
    levels = _distinct(values)
    if len(levels) > 256:
        return FLOAT
    magnitude = np.abs(values)
    if np.all(magnitude > 0) and per_channel_axis is not None and values.ndim > 1:
        by_channel = np.moveaxis(magnitude, per_channel_axis, -1)
        by_channel = by_channel.reshape(-1, by_channel.shape[-1])
        if np.allclose(by_channel, by_channel[:1], rtol=1e-5, atol=0):
            return SIGN
        if np.allclose(by_channel, by_channel[:, :1], rtol=1e-5, atol=0):
            return SIGN_OTHER_SCALE
    if len(levels) == 2 and np.isclose(levels[0], -levels[1]):
        return SIGN if np.isclose(levels[1], 1.0) else SCALED_SIGN
    if len(levels) <= 2:
        return TWO_LEVEL
    return MULTI_LEVEL


def _layer_quantizers(layer) -> tuple:
    """(weight quantizer, the kernel it quantizes, input quantizer) of a Larq layer.

    Where Larq keeps them is `larq_irnet.layers.QUANTIZED_WEIGHTS`; a separable layer is
    described by its pointwise kernel (the bulk of its MACs), so depthwise comes last.
    Missing parts are None.
    """
    weight_quantizer, kernel = None, None
    for quantizer_name, kernel_name in sorted(
        QUANTIZED_WEIGHTS, key=lambda pair: pair[1] == "depthwise_kernel"
    ):
        quantizer = getattr(layer, quantizer_name, None)
        if quantizer is not None:
            weight_quantizer, kernel = quantizer, getattr(layer, kernel_name, None)
            break
    return weight_quantizer, kernel, getattr(layer, "input_quantizer", None)


def _kernel_quantizer(layer):
    """The layer's (first) weight quantizer and the kernel it quantizes."""
    return _layer_quantizers(layer)[:2]


def _declared_multi_bit(quantizer, kind: str) -> str:
    precision = getattr(quantizer, "precision", None)
    if kind in (SIGN, SCALED_SIGN, SIGN_OTHER_SCALE) or not isinstance(precision, int):
        return kind
    if precision > 1:
        return f"{MULTI_LEVEL} ({precision}-bit)"
    if kind not in _BINARY_KINDS and is_binary_quantizer(quantizer):
        return f"{kind} (declared 1-bit)"
    return kind


def _weights_kind(layer) -> str:
    quantizer, kernel = _kernel_quantizer(layer)
    if quantizer is None or kernel is None:
        return FLOAT
    latent = getattr(kernel, "latent_variable", kernel)
    values = np.asarray(quantizer(tf.convert_to_tensor(latent)))
    return _declared_multi_bit(quantizer, quantizer_kind(values, per_channel_axis=-1))


def _probe_shape(layer) -> tuple[int, ...]:
    try:
        shape = tuple(layer.input_shape)
    except (AttributeError, RuntimeError):
        shape = (None, 8, 8, 8)
    if shape and isinstance(shape[0], tuple):  # several inputs
        shape = shape[0]
    return (2,) + tuple(8 if d is None else int(d) for d in shape[1:])


def _probe(layer) -> tf.Tensor:
    rng = np.random.default_rng(0)
    return tf.constant(2.0 * rng.standard_normal(_probe_shape(layer)), tf.float32)


def _activations_kind(layer) -> str:
    quantizer = _layer_quantizers(layer)[2]
    if quantizer is None:
        return FLOAT
    return _declared_multi_bit(quantizer, quantizer_kind(np.asarray(quantizer(_probe(layer)))))


def _producers(layer) -> list:
    """The layers whose outputs `layer` reads, in the model that holds it."""
    if len(layer.inbound_nodes) != 1:  # a shared layer: no single producer
        return []
    inbound = layer.inbound_nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _outputs_sign(layer) -> bool:
    """Whether `layer` outputs exactly +-1 (a quantizer used as a layer or activation).

    Judged by what it computes on a probe: a layer without trainable weights
    (`EDESign()`, whose t and k are state, `Activation(SteSign())`, ...) as a whole, a
    layer with trainable weights by its `activation`.
    """
    if isinstance(layer, (tf.keras.Model, tf.keras.layers.InputLayer)):
        return False
    function = layer if not layer.trainable_weights else getattr(layer, "activation", None)
    if function is None:
        return False
    try:
        values = np.asarray(function(_probe(layer)))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        return False  # not an elementwise single-input function
    return quantizer_kind(values) == SIGN


def _upstream_activations(layer) -> str:
    """`"sign (upstream)"` when the layer's input is the output of a sign layer."""
    producers = _producers(layer)
    if len(producers) == 1 and _outputs_sign(producers[0]):
        return UPSTREAM_SIGN
    return FLOAT


@dataclasses.dataclass(frozen=True)
class _Binarized:
    path: tuple[str, ...]  # (model name, [nested model names...], layer name)
    layer: tf.keras.layers.Layer
    weights: str
    activations: str

    @property
    def name(self) -> str:
        return "/".join(self.path[1:])

    @property
    def fully_binary_in_keras(self) -> bool:
        """Sign weights and sign inputs (own quantizer or an upstream sign layer)."""
        return self.weights == SIGN and self.activations in (SIGN, UPSTREAM_SIGN)


def binarized_layers(model: tf.keras.Model) -> list:
    """The layers of `model` (nested models included) that have a binary quantizer.

    A Larq layer counts when its weight or input quantizer outputs two levels (see
    `quantizer_kind`) or declares `precision = 1`. A layer without an input quantizer
    whose input comes straight out of a sign layer (a quantizer used as a layer or an
    activation) has `activations == "sign (upstream)"`. The model must be built.
    """
    found = []
    for path, layer, _ in walk_layers(model, (model.name,)):
        if not isinstance(layer, lq.layers_base.BaseLayer):
            continue
        weight_quantizer, _, input_quantizer = _layer_quantizers(layer)
        weights, activations = _weights_kind(layer), _activations_kind(layer)
        if (
            weights in _BINARY_KINDS
            or activations in _BINARY_KINDS
            or any(is_binary_quantizer(q) for q in (weight_quantizer, input_quantizer))
        ):
            if input_quantizer is None:
                activations = _upstream_activations(layer)
            found.append(_Binarized(path, layer, weights, activations))
    return found


def layer_macs(layer) -> int:
    """Multiply-accumulates per example of a built conv or dense layer (0 for others).

    From the Keras shapes, with the same formula as the flatbuffer's operators
    (`flatbuffer.conv_macs`): a report can be checked against its Keras model.
    """
    try:
        outputs = math.prod(int(d) for d in layer.output_shape[1:])
        c_in = int(layer.input_shape[-1])
    except (AttributeError, RuntimeError, TypeError):
        return 0
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return conv_macs(outputs, math.prod(layer.kernel_size), 1)
    if isinstance(layer, tf.keras.layers.Conv2D):
        return conv_macs(outputs, math.prod(layer.kernel_size), c_in // layer.groups)
    if isinstance(layer, tf.keras.layers.Dense):
        return conv_macs(outputs, 1, c_in)
    return 0


def _scopes(graph: Graph, tensor) -> list[list[str]]:
    """The name scopes a tensor's name carries (one per fused TensorFlow op)."""
    if tensor.index in graph.signature_outputs:
        return [[graph.signature_outputs[tensor.index]]]
    return [location.split("/") for location in tensor.name.split(";") if location]


def _match(path: tuple[str, ...], scope: list[str]) -> int:
    """How well a name scope proves a layer: 2 fully, 1 truncated (cut in its name), 0 not.

    `path` is (model name, nested model names..., layer name); the model's own name is
    not required in the scope.
    """
    relative = list(path[1:])
    n = len(relative)
    for start in range(len(scope)):
        window = scope[start : start + n]
        if window == relative:
            return 2
        if (
            len(window) == n
            and start + n == len(scope)
            and window[:-1] == relative[:-1]
            and window[-1]
            and relative[-1].startswith(window[-1])
        ):
            return 1
    return 0


def _through_quantizer(path: tuple[str, ...], scope: list[str], quantizer) -> bool:
    """Whether `scope` names an op of the layer's own input quantizer (path/quantizer/...).

    Such an op (e.g. `imb_sign`'s per-channel threshold) computes the layer's *input*;
    when the converter folds it into the producer (a float conv's bias), the producer's
    output carries the name, which proves nothing about the layer's own operator.
    """
    name = getattr(quantizer, "name", None)  # a plain function has no scope of its own
    if not name:
        return False
    inside = [*path[1:], name]
    return any(scope[i : i + len(inside)] == inside for i in range(len(scope)))


def _out_channels(layer) -> int | None:
    try:
        return int(layer.output_shape[-1])
    except (AttributeError, RuntimeError, TypeError, IndexError):
        return None


def _data_input(op: Operator):
    return op.inputs[2] if op.name == "TRANSPOSE_CONV" else op.inputs[0]


def _map_layers(graph: Graph, layers: list) -> dict:
    """Layer path -> the compute operators it became.

    Two kinds of evidence name a layer. (1) The op's output tensor, named after the ops
    fused into it (the conv, its BatchNorm, ...), unless the output is bitpacked: then
    LCE fused the *next* layer's sign into this op and the name starts with that
    layer's quantizer. (2) The op's data input when it comes out of a sign (LceQuantize,
    LceDequantize, SIGN or a bitpacked tensor): it is named after the layer's own input
    quantizer. Output evidence outweighs input evidence.
    """
    compute = [op for op in graph.operators if op.name in COMPUTE_OPS]
    matched: dict[tuple, list[Operator]] = {b.path: [] for b in layers}
    taken: set[int] = set()

    def scopes(tensors) -> list[list[str]]:
        return [scope for t in tensors if t is not None for scope in _scopes(graph, t)]

    def evidence(op: Operator) -> tuple[list, list]:
        outputs = [t for t in op.outputs if t.dtype != "int32"]
        data = _data_input(op)
        from_sign = data is not None and (
            data.dtype == "int32" or any(p.name in _SIGN_OPS for p in _input_chain(graph, op)[-1:])
        )
        return scopes(outputs), scopes([data]) if from_sign else []

    def fits(b, op: Operator) -> bool:
        channels = _out_channels(b.layer)
        if channels is None:
            return True
        if op.outputs[0].dtype == "int32":  # bitpacked: 32 channels per int32
            channels = -(-channels // 32)
        return op.outputs[0].shape[-1] == channels

    for strength in (2, 1):  # full names first, then names truncated inside a layer name
        for op in compute:
            if op.index in taken:
                continue
            output_scopes, input_scopes = evidence(op)
            scored = []
            for b in layers:
                if not fits(b, op):
                    continue
                quantizer = _layer_quantizers(b.layer)[2]
                own = [s for s in output_scopes if not _through_quantizer(b.path, s, quantizer)]
                score = 2 * any(_match(b.path, s) == strength for s in own)
                if quantizer is not None:
                    score += any(_match(b.path, s) == strength for s in input_scopes)
                if score:
                    scored.append((score, len(b.path), b))
            if not scored:
                continue
            scored.sort(key=lambda item: item[:2], reverse=True)
            if strength == 1 and len(scored) > 1 and scored[0][:2] == scored[1][:2]:
                continue  # a truncated name that fits several layers proves nothing
            # Nested scopes (block/conv) contain their parents': the deepest path wins.
            best = scored[0][2]
            matched[best.path].append(op)
            taken.add(op.index)
    # Names prove nothing for some tensors (a model output is named `Identity`, and the
    # name of the sign that feeds a conv is a quantizer layer's, not the conv's). A layer
    # left without an operator takes the first free one that computes the same thing:
    # same MACs and output channels, in execution order (the Keras order is topological).
    for b in layers:
        if matched[b.path]:
            continue
        macs = layer_macs(b.layer)
        for op in compute:
            if op.index not in taken and macs and op.macs == macs and fits(b, op):
                matched[b.path].append(op)
                taken.add(op.index)
                break
    return matched


def _input_chain(graph: Graph, op: Operator) -> list[Operator]:
    """Producers of the op's data input, back through pads and reshapes."""
    chain = []
    tensor = _data_input(op)
    while tensor is not None:
        producer = graph.producer(tensor)
        if producer is None:
            break
        chain.append(producer)
        if producer.name not in _PASS_THROUGH:
            break
        tensor = producer.inputs[0]
    return chain


def _binary_input_upstream(graph: Graph, ops: list[Operator]) -> bool:
    for op in ops:
        chain = _input_chain(graph, op)
        if chain and chain[-1].name in _SIGN_OPS:
            return True
    return False


def _reason(graph: Graph, binarized: _Binarized, ops: list[Operator]) -> str:
    layer_type = type(binarized.layer).__name__
    if binarized.activations == TWO_LEVEL:
        return "input quantizer is 1-bit but not a sign (e.g. {0, 1}): LCE binarizes only +-1"
    if binarized.activations == SCALED_SIGN:
        return "input quantizer scales the sign (+-a, a != 1): LCE needs exactly +-1 inputs"
    if layer_type in _TYPE_REASONS:
        return _TYPE_REASONS[layer_type]
    if binarized.weights == TWO_LEVEL:
        return "kernel quantizer is 1-bit but not a sign (e.g. {0, 1}): LCE needs +-s weights"
    if binarized.weights == SIGN_OTHER_SCALE:
        return (
            "kernel scale varies within an output channel (e.g. per input channel): LCE "
            "folds only a per-output-channel scale"
        )
    if binarized.weights not in _BINARY_KINDS:
        return f"kernel quantizer is {binarized.weights}, not binary"
    if not ops:
        return "no operator of the flatbuffer could be matched to this layer"
    op = ops[0]
    names = [producer.name for producer in _input_chain(graph, op)]
    if names and names[-1] == "LceDequantize":
        between = [n for n in names if n in _RESHAPES]
        if between:
            return (
                f"{'/'.join(between)} between the quantizer and the conv: LCE fuses "
                "the sign into the conv only when it feeds the conv directly"
            )
        kernel = op.inputs[1]
        if kernel is not None and not kernel.is_constant:
            return "the kernel is not a constant: LCE needs frozen binary weights"
        return "binary input reached the conv but LCE did not fuse them (unsupported options)"
    seen = names[-1] if names else "the model input"
    return (
        f"input quantizer's graph is not a sign pattern LCE recognizes (the conv reads "
        f"{seen}): use larq.math.sign or tf.where(x >= 0, 1.0, -1.0), not tf.math.sign, "
        "a scaled sign or x + stop_gradient(sign(x) - x)"
    )


def _describe(op: Operator) -> str:
    if op.name in BINARY_OPS:
        return op.name
    return f"{op.name} ({op.compute_dtype})"


def build_report(
    graph: Graph, layers: list, op_histogram: dict, size_bytes: int, *, int8: bool = False
) -> ConversionReport:
    """Match binarized layers to the flatbuffer's operators and explain what stayed float.

    # Arguments
        graph: the flatbuffer's main subgraph (`flatbuffer.read_graph`).
        layers: `binarized_layers(model)` of the Keras model that was converted.
        op_histogram: the flatbuffer's operator histogram.
        size_bytes: the flatbuffer's size.
        int8: whether the conversion quantized float layers to int8.
    """
    matched = _map_layers(graph, layers)
    entries = []
    for binarized in layers:
        ops = matched[binarized.path]
        activations = binarized.activations
        if activations not in _BINARY_KINDS and _binary_input_upstream(graph, ops):
            activations = UPSTREAM_SIGN
        weights_binary = binarized.weights in _BINARY_KINDS or is_binary_quantizer(
            _kernel_quantizer(binarized.layer)[0]
        )
        inputs_binary = (
            activations in _BINARY_KINDS
            or activations == UPSTREAM_SIGN
            or is_binary_quantizer(_layer_quantizers(binarized.layer)[2])
        )
        fully_binary = weights_binary and inputs_binary
        binary = bool(ops) and all(op.name in BINARY_OPS for op in ops)
        reason = None
        if not binary:
            if fully_binary:
                seen = dataclasses.replace(binarized, activations=activations)
                reason = _reason(graph, seen, ops)
            elif weights_binary:
                reason = (
                    "activations are float (binary weights only, 1w32a): LCE has no kernel "
                    "for float inputs, the weights are stored unpacked"
                )
            else:
                reason = (
                    f"weights are {binarized.weights}, not binary: only the input is "
                    "binarized, LCE has no kernel for that"
                )
        entries.append(
            LayerConversion(
                layer=binarized.name,
                layer_type=type(binarized.layer).__name__,
                weights=binarized.weights,
                activations=activations,
                fully_binary=fully_binary,
                ops=tuple(_describe(op) for op in ops),
                binary=binary,
                reason=reason,
                macs=sum(op.macs for op in ops),
            )
        )
    macs = {"binary": 0, "float": 0, "int8": 0}
    for op in graph.operators:
        if op.name not in COMPUTE_OPS:
            continue
        if op.name in BINARY_OPS:
            macs["binary"] += op.macs
        elif op.compute_dtype in ("int8", "uint8"):
            macs["int8"] += op.macs
        else:
            macs["float"] += op.macs
    return ConversionReport(
        layers=tuple(entries),
        op_histogram=dict(op_histogram),
        binary_macs=macs["binary"],
        float_macs=macs["float"],
        int8_macs=macs["int8"],
        size_bytes=size_bytes,
        int8=int8,
    )
