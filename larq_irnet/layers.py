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
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Iterator
from typing import Any

import larq as lq
import tensorflow as tf

__all__ = [
    "QUANTIZED_WEIGHTS",
    "BinarizedWeight",
    "FunctionInitializer",
    "binarized_weights",
    "calling_layer",
    "is_binary_quantizer",
    "kernel_channel_axes",
    "layers_in_order",
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
