"""Which layers of a model are binarized, where their kernels are, and their channel axes.

One home for "is this quantizer binary, and where is its kernel": the information
diagnostics, the EDE schedule and the conversion report all walk a model through
`binarized_weights`, `model_quantizers` and `walk_layers`, with `is_binary_quantizer` and
`QUANTIZED_WEIGHTS`, so nested models and every Larq layer kind are handled the same way
everywhere.

The kernel layouts of Larq's layers (TensorFlow's): a *filter* is the set of weights that
produce one output channel; Libra-PB balances and standardizes each filter, the
information measures count signs per filter. `kernel_channel_axes` names the axes that
index filters:

| layer | weight | kernel shape | filter axes |
|---|---|---|---|
| `QuantDense` | `kernel` | (I, O) | (-1,) |
| `QuantConv1D/2D/3D` | `kernel` | (*K, I, O) | (-1,) |
| `QuantConv2DTranspose/3DTranspose` | `kernel` | (*K, O, I) | (-2,) |
| `QuantDepthwiseConv2D` | `depthwise_kernel` | (H, W, C, M) | (-2, -1) |
| `QuantSeparableConv1D/2D` | `depthwise_kernel` | (*K, C, M) | (-2, -1) |
| `QuantSeparableConv1D/2D` | `pointwise_kernel` | (*1, C*M, O) | (-1,) |
| `QuantLocallyConnected1D/2D` (`implementation=1`) | `kernel` | (P, K*I, O) | (0, -1) |

`QuantLocallyConnected1D/2D` with `implementation=2` or `3` hold masked or sparse
kernels whose filters are not a set of axes: `kernel_channel_axes` refuses them with an
error naming the layer.

Walking a functional model's graph also finds where its feature maps change resolution
(`matching_points`, the default points where `larq_irnet.distillation.Distiller`
aligns a student with its teacher; `matching_pairs` pairs them) and whether it ends in a
softmax (`ends_in_softmax`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import larq as lq
import tensorflow as tf

__all__ = [
    "QUANTIZED_WEIGHTS",
    "BinarizedWeight",
    "FunctionInitializer",
    "binarized_weights",
    "calling_layer",
    "check_functional",
    "ends_in_softmax",
    "is_binary_quantizer",
    "kernel_channel_axes",
    "layers_in_order",
    "matching_pairs",
    "matching_points",
    "model_quantizers",
    "walk_layers",
    "without_starved_weights_warning",
]

QUANTIZED_WEIGHTS: tuple[tuple[str, str], ...] = (
    ("kernel_quantizer", "kernel"),
    ("depthwise_quantizer", "depthwise_kernel"),
    ("pointwise_quantizer", "pointwise_kernel"),
)
"""(quantizer attribute, weight attribute) of Larq's quantized layers."""

_LAYERS = tf.keras.layers
_TRANSPOSED = (_LAYERS.Conv2DTranspose, _LAYERS.Conv3DTranspose)
_LOCALLY_CONNECTED = (_LAYERS.LocallyConnected1D, _LAYERS.LocallyConnected2D)


def is_binary_quantizer(quantizer: Any) -> bool:
    """Whether a Larq quantizer binarizes: `precision == 1`, and not Larq's `NoOp` tag."""
    return getattr(quantizer, "precision", None) == 1 and not isinstance(
        quantizer, lq.quantizers.NoOp
    )


def kernel_channel_axes(layer: tf.keras.layers.Layer, weight: str = "kernel") -> tuple[int, ...]:
    """The axes of `layer`'s `weight` that index its filters (output channels).

    Negative axes, as in the table of this module's docstring; reduce over the others.

    # Raises
        ValueError: for a locally connected layer with `implementation` 2 or 3 (masked or
            sparse kernels), naming the layer.
    """
    if weight == "depthwise_kernel":
        return (-2, -1)
    if weight == "pointwise_kernel":
        return (-1,)
    if isinstance(layer, _TRANSPOSED):
        return (-2,)
    if isinstance(layer, _LOCALLY_CONNECTED):
        implementation = getattr(layer, "implementation", 1)
        if implementation != 1:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}, implementation="
                f"{implementation}) holds a masked or sparse kernel whose filters are not "
                "kernel axes; Libra-PB and the information measures support "
                "implementation=1 only."
            )
        return (0, -1)
    return (-1,)


def calling_layer() -> tf.keras.layers.Layer | None:
    """The Keras layer whose `__call__` is running, from Keras' call context, or None.

    A Larq layer reads its quantized kernel inside its own `__call__`, so a kernel
    quantizer that calls this before its own `__call__` finds the layer that owns the
    kernel. This is how `LibraPB` learns its layer's kernel layout when it is not given
    `channel_axes`. None when no layer is being called or Keras has no call context.
    """
    package = tf.keras.layers.Layer.__module__.rsplit(".", 1)[0]
    try:
        utils = importlib.import_module(f"{package}.base_layer_utils")
    except ImportError:
        return None
    context = getattr(utils, "call_context", None)
    return None if context is None else context().layer


def layers_in_order(model: tf.Module) -> list:
    """`model` and every layer inside it, nested models included, depth first in model
    order; layers held by custom layers outside any `.layers` list come last."""
    ordered: list = []
    seen: set[int] = set()

    def visit(layer) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        ordered.append(layer)
        for child in getattr(layer, "layers", None) or []:
            visit(child)

    visit(model)
    for module in model.submodules if isinstance(model, tf.Module) else []:
        if isinstance(module, tf.keras.layers.Layer) and id(module) not in seen:
            seen.add(id(module))
            ordered.append(module)
    return ordered


def walk_layers(
    model: tf.keras.Model, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], tf.keras.layers.Layer, tf.keras.Model]]:
    """Every layer of `model`, nested models opened, in model order.

    The conversion report and the int8 path (`larq_irnet.converters`) both walk models
    with this, so a backbone inside a model (transfer learning), a Sequential inside a
    functional model, etc. are seen the same way by both.

    # Arguments
        model: a Keras model.
        prefix: names to put before the layer names (the path of `model` itself).

    # Yields
        (path, layer, parent): `path` is the tuple of names from `prefix` down to the
        layer (nested model names included), `parent` the model that holds the layer.
    """
    for layer in model.layers:
        path = prefix + (layer.name,)
        if isinstance(layer, tf.keras.Model):
            yield from walk_layers(layer, path)
        else:
            yield path, layer, model


@dataclasses.dataclass
class BinarizedWeight:
    """One binarized weight: its layer, the weight's and the quantizer's attribute names,
    the quantizer, and the filter axes of the weight (`kernel_channel_axes`)."""

    layer: tf.keras.layers.Layer
    weight: str
    quantizer_attribute: str
    quantizer: Any
    channel_axes: tuple[int, ...]

    @property
    def variable(self) -> tf.Variable:
        """The layer's weight (a Larq `QuantizedVariable` whose `latent_variable` is real)."""
        return getattr(self.layer, self.weight)


def binarized_weights(model: tf.Module) -> list[BinarizedWeight]:
    """Every binarized weight of `model`, nested models and every Larq layer kind included.

    A weight is binarized when it belongs to a Larq quantized layer whose quantizer for it
    (`kernel_quantizer`, `depthwise_quantizer` or `pointwise_quantizer`) has precision 1
    (`is_binary_quantizer`). In layer order (`layers_in_order`); built layers only.

    # Raises
        ValueError: a layer kind whose kernel has no filter axes (`kernel_channel_axes`),
            or a quantizer whose own `channel_axes` disagree with its layer's; both name
            the layer.
    """
    found = []
    for layer in layers_in_order(model):
        for quantizer_attribute, weight in QUANTIZED_WEIGHTS:
            quantizer = getattr(layer, quantizer_attribute, None)
            if not is_binary_quantizer(quantizer) or not hasattr(layer, weight):
                continue
            axes = kernel_channel_axes(layer, weight)
            own = getattr(quantizer, "channel_axes", None)
            rank = len(getattr(layer, weight).shape)
            if own is not None and {a % rank for a in own} != {a % rank for a in axes}:
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}): its {quantizer_attribute}"
                    f" treats axes {tuple(own)} of `{weight}` as the output channels, but "
                    f"they are {axes}."
                )
            found.append(BinarizedWeight(layer, weight, quantizer_attribute, quantizer, axes))
    return found


def model_quantizers(model: tf.Module) -> Iterator[Any]:
    """Every quantizer of `model`: the weight quantizers and the input quantizer of each
    Larq layer (in that order), and quantizers used as layers of their own."""
    seen: set[int] = set()
    for layer in layers_in_order(model):
        candidates = [layer] if isinstance(layer, lq.quantizers.Quantizer) else []
        candidates += [getattr(layer, attr, None) for attr, _ in QUANTIZED_WEIGHTS]
        candidates.append(getattr(layer, "input_quantizer", None))
        for quantizer in candidates:
            if quantizer is not None and id(quantizer) not in seen:
                seen.add(id(quantizer))
                yield quantizer


def _starved_weights_record(record: logging.LogRecord) -> bool:
    return "starved weights" not in record.getMessage()


@contextlib.contextmanager
def without_starved_weights_warning(applies: bool = True) -> Iterator[None]:
    """Drop Larq's "starved weights" warning while layers are constructed, if `applies`.

    Larq logs it (logger `larq.layers_base`) for every binary kernel quantizer without a
    `kernel_constraint`; it does not apply to standardized Libra-PB kernels, which
    cannot starve (they need no `weight_clip`; the zoo builds them without one and
    `irnetify` drops it).
    """
    logger = logging.getLogger("larq.layers_base")
    if applies:
        logger.addFilter(_starved_weights_record)
    try:
        yield
    finally:
        logger.removeFilter(_starved_weights_record)


@lq.utils.register_keras_custom_object  # by its bare name, as Keras' `.h5` loader finds it
class FunctionInitializer(tf.keras.initializers.Initializer):
    """An initializer that calls a registered plain function by its name.

    Keras serializes a plain function given as an initializer (larq-zoo's QuickNet uses
    `blurpool_initializer`) as `{"class_name": "function", "config": NAME}`, which its
    `.h5` model loader cannot read; `larq_irnet.legacy_h5.loadable_h5_model` renames those
    entries to this class, which serializes by name and loads again.

    # Arguments
        function_name: the name the function is registered under
            (`tf.keras.utils.get_registered_object`), e.g. `"blurpool_initializer"`.

    # Raises
        ValueError: when called, if no function is registered under that name.
    """

    def __init__(self, function_name: str):
        if callable(function_name):  # Keras' `.h5` loader resolves registered names
            function_name = tf.keras.utils.get_registered_name(function_name)
        self.function_name = function_name

    def __call__(self, shape, dtype=None, **kwargs):
        fn = tf.keras.utils.get_registered_object(self.function_name)
        if fn is None:
            raise ValueError(
                f"FunctionInitializer: no function registered as {self.function_name!r}; "
                "import the module that registers it (e.g. larq_zoo) before loading the model"
            )
        return fn(shape, dtype=dtype, **kwargs)

    def get_config(self) -> dict:
        return {"function_name": self.function_name}


def check_functional(model: Any, name: str) -> None:
    """Refuse a model that is not functional or Sequential (its layer outputs are what
    `matching_points` finds), with a ValueError naming the argument `name`."""
    if not isinstance(model, tf.keras.Model) or not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"`{name}` must be a functional or Sequential tf.keras.Model (its layer outputs "
            f"are the matching points), got {name}={model!r}."
        )


def _single_output(layer: tf.keras.layers.Layer) -> tf.Tensor | None:
    """The layer's output tensor, or None when it has several outputs or call sites."""
    if len(layer.inbound_nodes) != 1:
        return None
    output = layer.output
    return output if isinstance(output, tf.Tensor) or hasattr(output, "shape") else None


def _depends_on_weights(model: tf.keras.Model) -> dict[int, bool]:
    """id(layer) -> whether its output depends on a weight (of it or of a layer before it)."""
    depends: dict[int, bool] = {}
    for layer in model.layers:  # topological order in a functional model
        parents = []
        for node in layer.inbound_nodes:
            inbound = node.inbound_layers
            parents += inbound if isinstance(inbound, list) else [inbound]
        depends[id(layer)] = bool(layer.weights) or any(depends.get(id(p), False) for p in parents)
    return depends


def matching_points(model: tf.keras.Model) -> list[str]:
    r"""The default RBD points of a model: the last layer of each feature-map resolution.

    Our rule, which needs no layer naming: walk the layers in topological order, keep
    those with one 4-D output (N, H, W, C) larger than 1x1 that depends on some weight
    (so the input and its rescaling are never a point, nor a pooled 1x1 map, whose
    normalised attention map is constant), and for each distinct (H, W) take the last
    such layer. In the zoo's ResNets that is the output of each residual stage (ResNet-20 on
    28x28: 28x28x16, 14x14x32, 7x7x64); in networks whose resolution drops inside a
    stage (VGG's max-pooling) it is the last layer before each drop.

    # Arguments
        model: a functional or Sequential Keras model.

    # Returns
        The layer names, in topological order.

    # Raises
        ValueError: `model` is not functional, or has no such layer.
    """
    check_functional(model, "model")
    depends = _depends_on_weights(model)
    last: dict[tuple[int, int], str] = {}
    for layer in model.layers:
        output = _single_output(layer)
        if output is None or output.shape.rank != 4 or not depends[id(layer)]:
            continue
        resolution = tuple(output.shape[1:3])
        if resolution == (1, 1):  # a one-pixel attention map is constant: nothing to align
            continue
        last.pop(resolution, None)  # re-insert: dicts keep the order of the last layer
        last[resolution] = layer.name
    if not last:
        raise ValueError(
            f"matching_points: model {model.name!r} has no layer with a 4-D (N, H, W, C) "
            "output that depends on a weight; pass `feature_layers=` explicitly."
        )
    return list(last.values())


def matching_pairs(
    student: tf.keras.Model,
    teacher: tf.keras.Model,
    feature_layers: Sequence[str | tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    """The (student layer, teacher layer) name pairs of RBD's matching points.

    # Arguments
        student, teacher: functional Keras models.
        feature_layers: None (`matching_points` of each model, paired in order), a list
            of layer names present in both, or a list of `(student_layer, teacher_layer)`
            pairs.

    # Raises
        ValueError: the default points differ in number, `feature_layers` is malformed,
            a layer is missing or has not one 4-D output, or a pair differs in spatial
            size (naming both layers and their shapes).
    """
    if feature_layers is None:
        s_points, t_points = matching_points(student), matching_points(teacher)
        if len(s_points) != len(t_points):
            raise ValueError(
                f"the default matching points differ in number: student {s_points} and "
                f"teacher {t_points} (is the teacher the student's architecture?); pass "
                "`feature_layers=[(student_layer, teacher_layer), ...]` to Distiller."
            )
        pairs = list(zip(s_points, t_points, strict=True))
    else:
        if isinstance(feature_layers, str) or not list(feature_layers):
            raise ValueError(
                "`feature_layers` must be a non-empty list of layer names or (student, "
                f"teacher) name pairs, got feature_layers={feature_layers!r}."
            )
        pairs = []
        for item in feature_layers:
            if isinstance(item, str):
                pairs.append((item, item))
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
            else:
                raise ValueError(
                    "`feature_layers` items must be a layer name or a (student, teacher) "
                    f"pair, got {item!r} in feature_layers={feature_layers!r}."
                )
    for s_name, t_name in pairs:
        s_shape = _point_shape(student, s_name, "student")
        t_shape = _point_shape(teacher, t_name, "teacher")
        if s_shape[1:3] != t_shape[1:3]:
            raise ValueError(
                f"matching points of different spatial size: student layer {s_name!r} "
                f"{s_shape} vs teacher layer {t_name!r} {t_shape}."
            )
    return pairs


def _point_shape(model: tf.keras.Model, name: str, role: str) -> tuple:
    """The output shape of the matching point `name` of `model` (the `role` in messages)."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"`feature_layers`: the {role} {model.name!r} has no layer {name!r}."
        ) from None
    output = _single_output(layer)
    if output is None or output.shape.rank != 4:
        raise ValueError(
            f"`feature_layers`: the {role} layer {name!r} must have one 4-D "
            f"(N, H, W, C) output, got {getattr(output, 'shape', 'several outputs')}."
        )
    return tuple(output.shape)


def ends_in_softmax(model: tf.keras.Model) -> bool:
    """Whether `model`'s output is a softmax (class probabilities), not logits.

    True when its last layer's `activation` is Keras' softmax (a `Dense` or an
    `Activation` layer); a last layer that is itself a model (a network nested in a
    wrapper, as `irnetify` or a preprocessing model leaves it) is looked into.
    """
    last = model.layers[-1] if model.layers else None
    while isinstance(last, tf.keras.Model) and last.layers:
        last = last.layers[-1]
    return getattr(last, "activation", None) is tf.keras.activations.softmax
