"""What every zoo model function shares: its arguments, their one `# Arguments` text, and
the assembly around an architecture (input, rescaling, weights, top).

A model function is a thin public signature: it gathers its arguments into
`ModelArguments`, and `build_model` resolves them (the binarization arguments checked
first, then registered weights, then the input shape), asks the family for its
`Architecture` and assembles the model.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from larq_irnet._validation import is_integer
from larq_irnet.legacy_h5 import h5_without_estimator_state
from larq_irnet.zoo import registry
from larq_irnet.zoo.presets import ConvSettings, conv_settings

import tensorflow as tf

__all__ = [
    "ARGUMENTS",
    "Architecture",
    "ImageShape",
    "ModelArguments",
    "build_model",
    "document_arguments",
    "resolve_input_shape",
    "resolve_weights",
]

ImageShape = tuple[int | None, int | None, int]

_BINARY_CONV_ARGUMENTS = ("bits", "binarization", "pad_values")

ARGUMENTS: Mapping[str, str] = {
    "input_shape": (
        "(height, width, channels); default (32, 32, 3), or the shape the registered "
        "`weights` were trained at."
    ),
    "input_tensor": "optional Keras tensor to use as the image input.",
    "include_top": "whether to end with the classifier (else the last feature map).",
    "num_classes": "number of classes of the classifier.",
    "weights": (
        "None (random), the path of a weights file, or a name of "
        "`larq_irnet.zoo.registry.WEIGHTS` (its variant for `binarization` is loaded)."
    ),
    "structure": '`"bireal"` or `"normal"`; default as the authors (see above).',
    "bits": '`"1w1a"` or `"1w32a"`.',
    "binarization": "one of `larq_irnet.zoo.BINARIZATIONS` (the ablation rows).",
    "pad_values": (
        "padding value of binary convolutions: 1.0 (LCE's fast path) or 0.0 (the "
        "authors' zero padding)."
    ),
}
"""The one `# Arguments` text of the zoo's model functions, by argument name."""

_Function = TypeVar("_Function", bound=Callable[..., Any])
_PLACEHOLDER = "{arguments}"


def document_arguments(**specific: str) -> Callable[[_Function], _Function]:
    """Fill the `{arguments}` line of a model function's docstring with `ARGUMENTS`.

    Each keyword-only parameter gets `specific[name]` where the model says more (its
    own defaults), else `ARGUMENTS[name]`; the function itself is returned unchanged.

    # Raises
        ValueError: at import, for a parameter without a text, a text for no parameter,
            or a docstring without the `{arguments}` line.
    """

    def document(function: _Function) -> _Function:
        names = [
            name
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(specific) - set(names))
        missing = [name for name in names if name not in specific and name not in ARGUMENTS]
        doc = function.__doc__ or ""
        if unknown or missing or _PLACEHOLDER not in doc:
            raise ValueError(
                f"{function.__name__}: undocumented {missing}, documented but absent "
                f"{unknown}, or no {_PLACEHOLDER} line in the docstring."
            )
        indent = doc[: doc.index(_PLACEHOLDER)].rsplit("\n", 1)[-1]
        lines = ["# Arguments"]
        for name in names:
            text = specific.get(name, ARGUMENTS.get(name, ""))
            lines.append(
                textwrap.fill(
                    f"{name}: {text}",
                    width=88,
                    initial_indent=f"{indent}    ",
                    subsequent_indent=f"{indent}        ",
                )
            )
        function.__doc__ = doc.replace(_PLACEHOLDER, "\n".join(lines))
        return function

    return document


@dataclasses.dataclass(frozen=True)
class ModelArguments:
    """The arguments every zoo model function takes, as the caller gave them.

    See `ARGUMENTS` for each; `num_classes=None` leaves the choice to the family
    (`IRNetResNet18` picks it by stem).
    """

    input_shape: Sequence[int | None] | None
    input_tensor: tf.Tensor | None
    include_top: bool
    num_classes: int | None
    weights: str | os.PathLike | None
    bits: str
    binarization: str
    pad_values: float

    def settings(self) -> ConvSettings:
        """What each binarizable convolution gets (validates the three arguments)."""
        return conv_settings(
            binarization=self.binarization, bits=self.bits, pad_values=self.pad_values
        )


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What a model family contributes to `build_model`, once the input shape is known.

    # Arguments
        model: name of the public model function (as in the weights registry).
        name: the Keras model's name.
        num_classes: the classifier's classes (the family's default filled in).
        body: rescaled image -> feature map.
        top: (feature map, number of classes) -> class probabilities.
        arguments: the family's own resolved arguments (e.g. `structure`, `stem`),
            checked against registered weights with the shared ones.
        derived: the names among the checked arguments (its own, `num_classes`) whose
            values the family chose because the caller left them unset (e.g. the
            `structure` of `bits="1w32a"`): a mismatch with registered weights names
            them last, as chosen by default (`registry.check_fits`).
    """

    model: str
    name: str
    num_classes: int
    body: Callable[[tf.Tensor], tf.Tensor]
    top: Callable[[tf.Tensor, int], tf.Tensor]
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    derived: frozenset[str] = frozenset()


def resolve_weights(
    weights: str | os.PathLike | None,
    input_shape: Sequence[int | None] | None,
    input_tensor: tf.Tensor | None,
    binarization: str | None = None,
) -> tuple[os.PathLike | None, registry.WeightsEntry | None, Sequence[int | None] | None]:
    """Resolve `weights=` (see `registry.resolve_weights`) before the input shape.

    A registered name gives its variant for `binarization` (the model's `binarization=`).
    Registered weights carry the input shape they were trained at: it becomes the
    `input_shape` when neither `input_shape` nor `input_tensor` is given.

    # Returns
        (file to load or None, registry entry or None, input_shape).

    # Raises
        ValueError, TypeError, FileNotFoundError: as `registry.resolve_weights`, e.g. a
            registered name without a variant for `binarization` (a one-line ValueError
            naming the name, the binarization and those registered).
    """
    path, entry = registry.resolve_weights(weights, binarization)
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


def _num_classes(classes: Any) -> int | None:
    """`num_classes` as a Python int (NumPy integers too: model configs are JSON) or None."""
    if classes is not None and not (is_integer(classes) and classes >= 1):
        raise ValueError(f"`num_classes` must be an integer >= 1, got num_classes={classes!r}.")
    return None if classes is None else int(classes)


def build_model(
    arguments: ModelArguments,
    *,
    default_input_shape: ImageShape,
    architecture: Callable[[ModelArguments], Architecture],
) -> tf.keras.Model:
    """Resolve `arguments`, build the family's `architecture` on them and load the weights.

    Order: `binarization`, `bits` and `pad_values` are validated first (a bad one is the
    usual error, whatever `weights`), then the weights are resolved (a registered name's
    variant for `arguments.binarization`, which may give the input shape),
    then the input shape (`input_tensor`, `input_shape`, the weights' or
    `default_input_shape`); `architecture` receives the arguments with that
    `input_shape` and validates its own. Registered weights are then checked against the
    resolved arguments. Models take raw pixels (0..255) and rescale them to [-1, 1]
    themselves, so that a converted `.tflite` model takes camera pixels. With
    `include_top=False`, registered weights are loaded into the full model, which is
    then cut at the features.

    # Arguments
        arguments: the model function's arguments.
        default_input_shape: the input shape without `input_shape`, `input_tensor` or
            registered weights.
        architecture: the family's builder: resolved arguments -> `Architecture`.

    # Raises
        ValueError, TypeError, FileNotFoundError: from resolving the weights and the input
            shape, from `architecture`, or weights registered for other arguments.
    """
    arguments.settings()  # validates binarization, bits and pad_values
    arguments = dataclasses.replace(arguments, num_classes=_num_classes(arguments.num_classes))
    path, entry, input_shape = resolve_weights(
        arguments.weights, arguments.input_shape, arguments.input_tensor, arguments.binarization
    )
    shape = resolve_input_shape(input_shape, arguments.input_tensor, default_input_shape)
    arguments = dataclasses.replace(arguments, input_shape=shape)
    family = architecture(arguments)
    include_top = arguments.include_top
    if entry is not None:
        checked = {
            "input_shape": shape,
            "num_classes": family.num_classes,
            **family.arguments,
            **{name: getattr(arguments, name) for name in _BINARY_CONV_ARGUMENTS},
        }
        registry.check_fits(
            entry,
            model=family.model,
            arguments=checked,
            include_top=include_top,
            derived=family.derived,
        )
    input_tensor = arguments.input_tensor
    if input_tensor is None:
        image = tf.keras.Input(shape=shape)
        source_inputs = image
    elif tf.keras.backend.is_keras_tensor(input_tensor):
        image = input_tensor
        source_inputs = tf.keras.utils.get_source_inputs(input_tensor)
    else:
        image = tf.keras.Input(tensor=input_tensor, shape=shape)
        source_inputs = image
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    features = family.body(x)
    with_top = include_top or entry is not None
    num_classes = family.num_classes
    if with_top and not include_top:
        # The registered file holds a classifier: build it to load, then cut it off.
        num_classes = entry.kwargs.get("num_classes", num_classes)
    outputs = family.top(features, num_classes) if with_top else features
    full = tf.keras.Model(source_inputs, outputs, name=family.name)
    if path is not None:
        # Older .h5 files also hold EDE's t and k, which are no longer weights.
        with h5_without_estimator_state(path) as weights_file:
            full.load_weights(weights_file)
    if with_top and not include_top:
        return tf.keras.Model(source_inputs, features, name=family.name)
    return full
