r"""`irnetify`: train an existing Larq model with IR-Net (or DIR-Net), deploy it unchanged.

IR-Net and DIR-Net are training methods: they change the quantizers and their
gradients, not the network. `irnetify` takes any Keras/Larq model (functional,
Sequential, nested models inside either) and returns a clone in which every binary sign
quantizer is the method's:

```python
import larq_irnet

model = larq_zoo.sota.QuickNet(weights=None)
irnet_model, report = larq_irnet.irnetify(model)  # method="irnet"
print(report)  # per layer: old -> new quantizer, constraint dropped
irnet_model.compile(...)
irnet_model.fit(..., callbacks=[larq_irnet.EDECallback()])  # finds the new quantizers
```

Which quantizers count as a *binary sign* (and are replaced):

- a **kernel** quantizer (`kernel_quantizer`, `depthwise_quantizer`,
  `pointwise_quantizer`) with `precision == 1` (`layers.is_binary_quantizer`) whose
  output on a seeded normal probe kernel of the layer's kernel shape is \\(\pm s_o\\)
  per filter, \\(s_o > 0\\): a sign up to a per-output-channel scale, which is what
  Libra-PB computes too and what LCE folds into its binary convolution. Larq's
  `ste_sign`, `magnitude_aware_sign` (Bi-Real Net), `approx_sign`, `swish_sign` and
  Libra-PB itself qualify;
- an **input** quantizer with `precision == 1` whose output on a probe (zero included)
  is exactly `larq.math.sign` (\\(\pm 1\\), sign(0) = +1): `ste_sign`, `approx_sign`,
  `swish_sign`, `ede_sign` qualify. These have the same forward pass as EDE's sign and
  differ only in the gradient, so the inference function of the activations is
  unchanged.

Everything else is kept and listed in the report with the reason: 1-bit quantizers
that are not a sign (`ste_heaviside`, `dorefa` with one bit: {0, 1}), scaled signs on
activations (\\(\pm a\\), a != 1; not what LCE recognizes), `tf.math.sign` (sign(0) = 0)
and multi-bit quantizers (`dorefa`, `ste_tern`, precision > 1).

Kernel constraints that only the straight-through estimator needed (`weight_clip`:
its |w| <= 1 mask starves weights that leave [-1, 1]) are dropped where the kernel
quantizer is replaced; Libra-PB standardizes each filter, so its weights cannot starve.
Weights are copied; the new quantizers' scheduled state (EDE's t and k) starts at its
initial values, and `EDECallback` sets it from the first epoch.

"Deploy it unchanged" means the same operators and size after conversion, not the same
function: Libra-PB binarizes each filter after subtracting its mean (and IMB likewise),
so the binary weights, and the outputs, differ from the original's wherever a filter's
latent weights are not already balanced. The transformed model is meant to be trained;
pretrained binary weights do not keep their accuracy until it is.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from typing import Any

from larq_irnet.layers import (
    QUANTIZED_WEIGHTS,
    binarized_weights,
    is_binary_quantizer,
    layers_in_order,
    without_starved_weights_warning,
)
from larq_irnet.methods import PRESETS, Binarization, QuantizerId

import larq as lq
import numpy as np
import tensorflow as tf

__all__ = [
    "METHODS",
    "STE_CONSTRAINTS",
    "IRNetifyReport",
    "QuantizerChange",
    "irnetify",
    "is_sign_input_quantizer",
    "is_sign_kernel_quantizer",
]


METHODS: Mapping[str, Binarization] = {name: PRESETS[name] for name in ("irnet", "dirnet")}
"""`method=` of `irnetify` -> the quantizers it puts in place: rows of the one table of
methods, `larq_irnet.methods.PRESETS`."""

STE_CONSTRAINTS: tuple[type, ...] = (lq.constraints.WeightClip,)
"""Kernel constraints that only the straight-through estimator needed; dropped."""

#: Which constraint argument belongs to which weight quantizer argument.
_CONSTRAINTS = {
    "kernel_quantizer": "kernel_constraint",
    "depthwise_quantizer": "depthwise_constraint",
    "pointwise_quantizer": "pointwise_constraint",
}
_PROBE_SEED = 0


@dataclasses.dataclass(frozen=True)
class QuantizerChange:
    """One quantizer of one layer and what `irnetify` did with it.

    # Arguments
        layer: the layer's path (`"conv_3"`, `"backbone/conv_3"` when nested).
        layer_type: its class name.
        attribute: `"kernel_quantizer"`, `"depthwise_quantizer"`,
            `"pointwise_quantizer"` or `"input_quantizer"`.
        old: the quantizer it had (class name).
        new: the quantizer it has now (class name), or None when kept.
        constraint_dropped: the constraint removed with it (class name), or None.
        reason: why a quantizer was kept, or None when replaced.
    """

    layer: str
    layer_type: str
    attribute: str
    old: str
    new: str | None
    constraint_dropped: str | None = None
    reason: str | None = None

    @property
    def replaced(self) -> bool:
        """Whether the quantizer was replaced."""
        return self.new is not None


@dataclasses.dataclass(frozen=True)
class IRNetifyReport:
    """What `irnetify` changed: one entry per quantizer of every Larq layer it looked at.

    # Arguments
        method: the `method=` used.
        changes: in layer order; float quantizers (None) are not listed.
    """

    method: str
    changes: tuple[QuantizerChange, ...]

    @property
    def replaced(self) -> tuple[QuantizerChange, ...]:
        """The quantizers that were replaced."""
        return tuple(c for c in self.changes if c.replaced)

    @property
    def kept(self) -> tuple[QuantizerChange, ...]:
        """The quantizers that were kept, each with its reason."""
        return tuple(c for c in self.changes if not c.replaced)

    def to_dict(self) -> dict:
        """A JSON-serializable form of the report."""
        return {"method": self.method, "changes": [dataclasses.asdict(c) for c in self.changes]}

    def to_json(self) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        same = sum(c.old == c.new for c in self.replaced)
        already = f" ({same} of them the method's already)" if same else ""
        lines = [
            f"irnetify(method={self.method!r}): {len(self.replaced)} quantizers replaced"
            f"{already}, {len(self.kept)} kept"
        ]
        for c in self.changes:
            if c.replaced:
                what = f"{c.old} -> {c.new}"
                if c.old == c.new:  # e.g. irnetify on a model that is IR-Net already
                    axes = (
                        "" if c.attribute == "input_quantizer" else " with the layer's filter axes"
                    )
                    what += f" (already the method's quantizer, rebuilt{axes})"
                if c.constraint_dropped:
                    what += f", {c.constraint_dropped} dropped"
            else:
                what = f"{c.old} kept ({c.reason})"
            lines.append(f"  {c.layer} ({c.layer_type}) {c.attribute}: {what}")
        return "\n".join(lines)


def _fresh(quantizer: Any) -> Any:
    """A new quantizer with `quantizer`'s config, so probing builds nothing in the model."""
    if isinstance(quantizer, tf.keras.layers.Layer):
        return type(quantizer).from_config(quantizer.get_config())
    return quantizer


def _probe(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(_PROBE_SEED).standard_normal(shape).astype(np.float32)


def is_sign_input_quantizer(quantizer: Any) -> bool:
    """Whether an activation quantizer computes `larq.math.sign`: precision 1 and exactly
    +1/-1 (sign(0) = +1) on a seeded probe, zero included."""
    if not is_binary_quantizer(quantizer):
        return False
    x = _probe((4, 64))
    x[0, :4] = 0.0
    try:
        y = np.asarray(_fresh(quantizer)(tf.constant(x)))
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        return False
    return bool(np.array_equal(y, np.where(x >= 0, 1.0, -1.0)))


def is_sign_kernel_quantizer(
    quantizer: Any, shape: tuple[int, ...], channel_axes: tuple[int, ...]
) -> bool:
    """Whether a weight quantizer binarizes to a sign up to a per-filter scale.

    Precision 1, and its output on a seeded normal probe kernel of `shape` is
    \\(\\pm s_o\\) with \\(s_o > 0\\) constant within each filter (`channel_axes` index
    the filters, `layers.kernel_channel_axes`).
    """
    if not is_binary_quantizer(quantizer):
        return False
    try:
        y = np.asarray(_fresh(quantizer)(tf.constant(_probe(shape))), dtype=np.float64)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError):
        return False
    rank = len(shape)
    channels = sorted(a % rank for a in channel_axes)
    by_filter = np.abs(np.moveaxis(y, channels, range(rank - len(channels), rank)))
    by_filter = by_filter.reshape(-1, int(np.prod([shape[a] for a in channels])))
    return bool(np.all(by_filter > 0) and np.allclose(by_filter, by_filter[:1], rtol=1e-6))


def _name(quantizer: Any) -> str:
    return getattr(quantizer, "__name__", None) or type(quantizer).__name__


def _kept_reason(quantizer: Any, kind: str) -> str:
    precision = getattr(quantizer, "precision", None)
    if isinstance(precision, int) and precision > 1:
        return f"{precision}-bit, not binary"
    if not is_binary_quantizer(quantizer):
        return "not declared binary (precision != 1)"
    if kind == "input":
        return "1-bit but not larq.math.sign (e.g. {0, 1}, a scaled sign, or sign(0) = 0)"
    return "1-bit but not a sign up to a per-filter scale (e.g. {0, 1})"


def _resolve(alias: QuantizerId, **config: Any) -> Any:
    """A fresh quantizer for `alias`, with the entries of `config` its config knows."""
    quantizer = lq.quantizers.get(alias)
    if quantizer is None or not isinstance(quantizer, tf.keras.layers.Layer):
        raise ValueError(f"irnetify: quantizer {alias!r} is not a registered Larq quantizer")
    base = quantizer.get_config()
    known = {k: v for k, v in config.items() if k in base}
    return type(quantizer).from_config({**base, **known}) if known else quantizer


def _kept(attribute: str, quantizer: Any) -> dict:
    """A kept plain-function quantizer goes to the clone as it is: a config holds only its
    name, which need not be registered (a lambda, `tf.math.sign`). Functions hold no
    state, so sharing one is safe; quantizer layers are rebuilt from their config."""
    return {} if isinstance(quantizer, tf.keras.layers.Layer) else {attribute: quantizer}


def _change(
    path: str, layer, attribute: str, old: Any, new: Any = None, dropped: Any = None, reason=None
) -> QuantizerChange:
    return QuantizerChange(
        path,
        type(layer).__name__,
        attribute,
        _name(old),
        None if new is None else type(new).__name__,
        None if dropped is None else _constraint_name(dropped),
        reason,
    )


def _constraint_name(constraint: Any) -> str:
    """The class name of an STE constraint, the same for `"weight_clip"` (Larq's alias, a
    subclass of that name) and `WeightClip(...)`."""
    return next(
        (cls.__name__ for cls in STE_CONSTRAINTS if isinstance(constraint, cls)),
        type(constraint).__name__,
    )


def _check_method(method: str) -> Binarization:
    if method not in METHODS:
        raise ValueError(f"irnetify: `method` must be one of {tuple(METHODS)}, got {method!r}.")
    chosen = METHODS[method]
    for alias in (chosen.kernel_quantizer, chosen.input_quantizer):
        try:
            _resolve(alias)
        except ValueError as e:
            raise ValueError(
                f"irnetify: method={method!r} needs the quantizer {alias!r}, which is not "
                f"registered ({e})."
            ) from None
    return chosen


def _plan(
    model: tf.keras.Model, method: Binarization
) -> tuple[dict[int, dict], list[QuantizerChange]]:
    """{id(layer): config overrides} and the report's entries, from `layers.py`'s discovery."""
    paths: dict[int, str] = {}

    def name_paths(m: tf.keras.Model, prefix: str) -> None:
        for layer in m.layers:
            paths.setdefault(id(layer), prefix + layer.name)
            if isinstance(layer, tf.keras.Model):
                name_paths(layer, f"{prefix}{layer.name}/")

    name_paths(model, "")
    weights = {(id(w.layer), w.quantizer_attribute): w for w in binarized_weights(model)}
    overrides: dict[int, dict] = {}
    changes: list[QuantizerChange] = []
    for layer in layers_in_order(model):
        if not isinstance(layer, lq.layers_base.BaseLayer):
            continue
        path = paths.get(id(layer), layer.name)

        override: dict = {}
        for attribute, weight in QUANTIZED_WEIGHTS:
            old = getattr(layer, attribute, None)
            if old is None or not hasattr(layer, weight):
                continue
            found = weights.get((id(layer), attribute))
            shape = tuple(getattr(layer, weight).shape)
            if found is None or not is_sign_kernel_quantizer(old, shape, found.channel_axes):
                changes.append(
                    _change(path, layer, attribute, old, reason=_kept_reason(old, "kernel"))
                )
                override.update(_kept(attribute, old))
                continue
            new = _resolve(method.kernel_quantizer, channel_axes=list(found.channel_axes))
            override[attribute] = lq.quantizers.serialize(new)
            constraint = getattr(layer, _CONSTRAINTS[attribute], None)
            dropped = constraint if isinstance(constraint, STE_CONSTRAINTS) else None
            if dropped is not None:
                override[_CONSTRAINTS[attribute]] = None
            changes.append(_change(path, layer, attribute, old, new, dropped))
        old = getattr(layer, "input_quantizer", None)
        if old is not None:
            if is_sign_input_quantizer(old):
                new = _resolve(method.input_quantizer)
                override["input_quantizer"] = lq.quantizers.serialize(new)
                changes.append(_change(path, layer, "input_quantizer", old, new))
            else:
                changes.append(
                    _change(path, layer, "input_quantizer", old, reason=_kept_reason(old, "input"))
                )
                override.update(_kept("input_quantizer", old))
        if override:
            overrides[id(layer)] = override
    return overrides, changes


def _own_quantizer_variables(layer: tf.keras.layers.Layer) -> set[int]:
    quantizers = [getattr(layer, a, None) for a, _ in QUANTIZED_WEIGHTS]
    quantizers.append(getattr(layer, "input_quantizer", None))
    return {id(v) for q in quantizers if isinstance(q, tf.keras.layers.Layer) for v in q.weights}


def _copy_weights(old: tf.keras.layers.Layer, new: tf.keras.layers.Layer) -> None:
    """Copy every weight except the quantizers' own state (EDE's t and k, ...)."""
    skip_old, skip_new = _own_quantizer_variables(old), _own_quantizer_variables(new)
    sources = [v for v in old.weights if id(v) not in skip_old]
    targets = [v for v in new.weights if id(v) not in skip_new]
    shapes = [tuple(v.shape) for v in sources], [tuple(v.shape) for v in targets]
    if shapes[0] != shapes[1]:
        raise ValueError(
            f"irnetify: layer {old.name!r} ({type(old).__name__}): its clone holds weights of "
            f"shapes {shapes[1]}, expected {shapes[0]}."
        )
    tf.keras.backend.batch_set_value(
        list(zip(targets, tf.keras.backend.batch_get_value(sources), strict=True))
    )


def _clone(model: tf.keras.Model, overrides: dict[int, dict], pairs: list) -> tf.keras.Model:
    def clone_layer(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
        if isinstance(layer, tf.keras.Model):
            new = _clone(layer, overrides, pairs)
        else:
            config = {**layer.get_config(), **overrides.get(id(layer), {})}
            new = type(layer).from_config(config)
            pairs.append((layer, new))
        return new

    return tf.keras.models.clone_model(model, clone_function=clone_layer)


def irnetify(model: tf.keras.Model, method: str = "irnet") -> tuple[tf.keras.Model, IRNetifyReport]:
    """A clone of `model` trained with IR-Net's (or DIR-Net's) quantizers, and a report.

    Every binary sign quantizer (see this module's docstring for which count) becomes
    the method's: weight quantizers `METHODS[method].kernel_quantizer` with the layer's
    filter axes (`layers.kernel_channel_axes`) as `channel_axes`, input quantizers
    `METHODS[method].input_quantizer`. `weight_clip` constraints of replaced kernels are
    dropped (`STE_CONSTRAINTS`). Weights are copied; float layers, layer and model
    names, the inputs and outputs and every other setting stay as they were. The
    model's compile state is not copied: compile the result.

    Works inside or outside a `tf.distribute` strategy's scope: the clone's variables
    are created in the scope that is active when it is called (call it inside the scope
    you train in).

    ```python
    irnet_model, report = larq_irnet.irnetify(model, method="irnet")
    print(report)
    irnet_model.fit(x, y, epochs=40, callbacks=[larq_irnet.EDECallback()])
    ```

    # Arguments
        model: a built functional or Sequential Keras model; nested functional and
            Sequential models are transformed too.
        method: `"irnet"` (Libra-PB + EDE) or `"dirnet"` (IMB + DTE), keys of `METHODS`.

    # Returns
        `(new_model, report)`: the clone, and an `IRNetifyReport` listing for every
        quantizer of every Larq layer what it was and what it became (or why it was
        kept).

    # Raises
        ValueError: an unknown `method` or one whose quantizers are not registered; a
            layer kind whose kernel has no filter axes (a locally connected layer with
            `implementation` 2 or 3), naming the layer.
        TypeError: a subclassed model (it cannot be cloned).

    # Warns
        UserWarning: nothing was replaced (a float model, or only non-sign quantizers).
    """
    chosen = _check_method(method)
    if not isinstance(model, tf.keras.Model) or not (
        isinstance(model, tf.keras.Sequential) or getattr(model, "_is_graph_network", False)
    ):
        raise TypeError(
            "irnetify: `model` must be a functional or Sequential Keras model, got "
            f"{type(model).__name__} (subclassed models cannot be cloned)."
        )
    if not model.built:
        raise ValueError(f"irnetify: model {model.name!r} is not built; build or call it first.")
    overrides, changes = _plan(model, chosen)
    pairs: list = []
    with without_starved_weights_warning(chosen.standardized_kernels):
        new_model = _clone(model, overrides, pairs)
    for old, new in pairs:
        _copy_weights(old, new)
    report = IRNetifyReport(method, tuple(changes))
    if not report.replaced:
        warnings.warn(
            f"irnetify: model {model.name!r} has no binary sign quantizer to replace "
            f"({len(report.kept)} kept); the clone trains as the original would.",
            stacklevel=2,
        )
    return new_model, report
