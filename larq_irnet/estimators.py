r"""Gradient estimators of the sign whose backward pass reads a scheduled state.

A binary network's forward pass uses \\(\mathrm{sign}(x)\\), whose true derivative is zero
almost everywhere; the backward pass substitutes the derivative of a soft approximation.
IR-Net's Error Decay Estimator (EDE) sharpens that approximation during training, so its
backward pass reads a state (t, k) that a schedule changes between steps.

`ScheduledSign` is the base of every such estimator: it owns the state as scalar
`tf.Variable`s (created at `build`; checkpointed, but not Keras weights) and hands them to
the gradient as explicit inputs of `scheduled_sign`, so the estimator works inside `tf.function`,
`tf.cond`, `tf.while_loop` and `tf.map_fn`. A subclass names its state (`state_names`),
gives its initial values and its gradient formula (`surrogate`).

```python
class MyEstimator(ScheduledSign):
    state_names = ("t",)
    def initial_state(self): return {"t": 1.0}
    def surrogate(self, x, t): return t * (1 - tf.tanh(t * x) ** 2)
```

`EDEState` is IR-Net's EDE; `DTEState` is DIR-Net's Distribution-sensitive Two-stage
Estimator, our design following the DIR-Net paper's description (its formulas are not
public; see `dte_gradient` and docs/dirnet.md).

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Eq. 10-11](https://arxiv.org/abs/1909.10788)
- [Distribution-Sensitive Information Retention for Accurate Binary Neural Network
  (Qin et al., IJCV 2023), DTE](https://arxiv.org/abs/2109.12338)
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from larq_irnet._validation import real

import larq as lq
import tensorflow as tf

__all__ = [
    "DTE_STATE",
    "DTEState",
    "EDEState",
    "ScheduledSign",
    "dte_band_width",
    "dte_gradient",
    "dte_initial_state",
    "dte_sigma",
    "dte_soft_at_band_edge",
    "ede_default_k",
    "ede_gradient",
    "ede_sign",
    "scheduled_sign",
]

_HALF = (tf.float16, tf.bfloat16)


def ede_default_k(t: float) -> float:
    r"""EDE's gradient gain for a given t: \\(k = \max(1/t, 1)\\) (IR-Net, Eq. 11).

    While t < 1 this makes \\(k t = 1\\), so the estimator's slope at zero is that of the
    identity; once t > 1 it is t itself.

    # Raises
        ValueError: `t` is not a finite real number > 0.
    """
    t = real(t, "t", owner="EDE", above=0.0, float32=True)
    return max(1.0 / t, 1.0)


def ede_gradient(x: tf.Tensor, t: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    r"""The Error Decay Estimator: derivative of \\(g(x) = k \tanh(t x)\\) (IR-Net, Eq. 10).

    \\[
    g'(x) = k\,t\,\left(1 - \tanh^2(t x)\right)
    \\]

    Computed in float32 for float16/bfloat16 `x` (k = 1/t for a small t does not survive
    float16) and returned in `x`'s dtype, saturated at its largest finite value: under
    float16, k t > 65504 (t > 65504 with the default k) peaks at 65504, so the gradient
    stays finite for every t the state holds (`_as_input_dtype`). Shapes: `x` any, `t`
    and `k` scalars.
    """
    dtype = tf.float32 if x.dtype in _HALF else x.dtype
    x_, t, k = (tf.cast(v, dtype) for v in (x, t, k))
    return _as_input_dtype(_finite_product(k, t) * (1.0 - tf.square(tf.tanh(t * x_))), x.dtype)


def _finite_product(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """a * b of non-negative factors, capped at their dtype's largest finite value.

    A factor of a derivative such as k t: if it overflowed to inf, inf * 0 (where the
    soft sign is flat) would be NaN. Cheap: the factors are scalars or per-channel.
    """
    return tf.minimum(a * b, a.dtype.max)


def _as_input_dtype(gradient: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """`gradient` (computed in float32 for a half-precision input) in the input's dtype,
    saturated at its largest finite value (float16: 65504) instead of overflowing to
    inf: a derivative whose peak exceeds float16 would make every step's gradient inf,
    which no loss scale can recover from."""
    return tf.dtypes.saturate_cast(gradient, dtype)


def scheduled_sign(
    x: tf.Tensor, surrogate: Callable[..., tf.Tensor], *state: tf.Tensor | float
) -> tf.Tensor:
    r"""`larq.math.sign(x)` forward; `dy * surrogate(x, *state)` backward.

    \\[ y = \mathrm{sign}(x), \qquad \frac{\partial L}{\partial x} =
    \frac{\partial L}{\partial y}\, \mathrm{surrogate}(x, s_1, \dots, s_m) \\]

    The state (scalars or `tf.Variable`s) is read here, outside the custom gradient, and
    passed in as tensors (their own gradient is None), so the gradient function captures
    no variable: it works in every TensorFlow control-flow construct, and a variable
    changed between steps is read afresh by an already traced step. The forward graph
    holds only the sign, which LCE recognizes.
    """
    values = [tf.convert_to_tensor(s, dtype_hint=tf.float32) for s in state]

    @tf.custom_gradient
    def _sign(x, *values):
        def grad(dy):
            return (dy * surrogate(x, *values), *[None] * len(values))

        return lq.math.sign(x), grad

    return _sign(x, *values)


def ede_sign(x: tf.Tensor, t: tf.Tensor | float, k: tf.Tensor | float) -> tf.Tensor:
    r"""Binarize with `larq.math.sign`; backward pass through EDE (`ede_gradient`).

    \\[ y = \mathrm{sign}(x), \qquad
    \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}\, k t (1 - \tanh^2(t x)) \\]
    """
    return scheduled_sign(x, ede_gradient, t, k)


# --- DTE: our design, following the DIR-Net paper's description ------------------------------

DTE_STATE: tuple[str, ...] = ("t", "k", "band", "epsilon", "width")
"""DTE's scheduled state: sharpness t, gain k, band switch (0 in stage 1, 1 in stage 2),
the band's minimum gradient epsilon and its half-width b (in units of sigma)."""

DTE_EPSILON = 0.1
"""Default minimum gradient inside DTE's band (stage 2); not measured yet."""
DTE_BAND_FRACTION = 0.25
"""Default fraction of a standardized Gaussian input inside DTE's band; not measured yet."""
_SIGMA_EPSILON = 1e-5  # BatchNormalization's, in the same units (activations' variance)
_FLAT_CHANNEL = 1e-3  # variance / mean^2 at or below which a channel has no spread (dte_sigma)


def dte_band_width(fraction: float) -> float:
    r"""DTE's band half-width b holding `fraction` of a standardized Gaussian input.

    Our design, following the DIR-Net paper's description (Qin et al., IJCV 2023,
    arXiv 2109.12338: a band around zero that keeps a gradient of at least epsilon):

    \\[ b = \Phi^{-1}\left(\frac{1 + f}{2}\right), \qquad P(|u| \le b) = f
    \quad \text{for } u \sim \mathcal{N}(0, 1) \\]

    # Raises
        ValueError: `fraction` not a real number in (0, 1).
    """
    fraction = real(fraction, "band_fraction", owner="DTE", above=0.0)
    if not fraction < 1.0:
        raise ValueError(f"DTE: `band_fraction` must be < 1.0, got band_fraction={fraction!r}.")
    return statistics.NormalDist().inv_cdf((1.0 + fraction) / 2.0)


def dte_sigma(x: tf.Tensor) -> tf.Tensor:
    r"""The spread sigma DTE scales its soft sign by: the per-channel std of `x`.

    Our design, following the DIR-Net paper's "distribution-sensitive" estimator (Qin
    et al., IJCV 2023, arXiv 2109.12338). Per channel c (the last axis), over the other
    axes (batch and space for NHWC activations, the filter for HWIO kernels):

    \\[ \sigma_c = \sqrt{\mathrm{Var}_c(x) + 10^{-5}}, \qquad
        \sigma_c = 1 \text{ where } \mathrm{Var}_c(x) \le 10^{-3}\,\bar{x}_c^2 \\]

    the population variance, as BatchNormalization's in training. A channel without
    spread has no distribution to follow and gets sigma = 1 (the scale of standardized
    weights) instead of a gradient of ~300 t. No gradient flows through sigma
    (`tf.stop_gradient`). Computed in float32; shape 1 on the reduced axes, as `x` on
    the last.

    A channel counts as without spread when its std is below 3.2% of its |mean| (a
    variance at most 1e-3 mean^2, which holds for an all-equal or all-zero channel):
    such a channel lies on one side of zero, far from it, where its sign cannot flip.

    It runs in every backward pass, on every binary layer's input, so the moments come
    from TensorFlow's fused batch-normalization kernel in training mode (one call; its
    normalized output is discarded), which is faster here than `tf.nn.moments` or
    `tf.nn.sufficient_statistics` (`_channel_moments`).
    """
    x = tf.cast(x, tf.float32)
    rank = len(x.shape)
    if rank < 2:
        return tf.ones_like(x)
    mean, variance = _channel_moments(x)
    spread = variance > _FLAT_CHANNEL * tf.square(mean)
    sigma = tf.where(spread, tf.sqrt(variance + _SIGMA_EPSILON), tf.ones_like(variance))
    return tf.stop_gradient(tf.reshape(sigma, [1] * (rank - 1) + [-1]))


def _as_nhwc(x: tf.Tensor) -> tf.Tensor:
    """`x` as the 4-D NHWC tensor the fused batch-norm kernel takes (a free reshape)."""
    return x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, tf.shape(x)[-1]])


def _channel_moments(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-channel (last axis) mean and population variance of float32 `x` (rank >= 2).

    Through `tf.compat.v1.nn.fused_batch_norm` in training mode, which returns the batch
    mean and the Bessel-corrected variance (rescaled here by (n - 1) / n; 0 for n = 1).
    Shapes: `x` (..., C) -> two (C,) tensors.
    """
    x = _as_nhwc(x)
    channels = tf.shape(x)[-1:]
    ones, zeros = tf.ones(channels), tf.zeros(channels)
    _, mean, corrected = tf.compat.v1.nn.fused_batch_norm(
        x, ones, zeros, epsilon=_SIGMA_EPSILON, is_training=True
    )
    n = tf.cast(tf.size(x) // tf.maximum(tf.shape(x)[-1], 1), tf.float32)
    return mean, tf.math.multiply_no_nan(corrected, (n - 1.0) / n)


def _scale_channels(x: tf.Tensor, scale: tf.Tensor | float) -> tf.Tensor:
    """`x * scale`, with `scale` a scalar or one value per channel (the last axis).

    A float32 `x` of rank >= 2 with a per-channel `scale` goes through the fused
    batch-norm kernel in inference mode, (x - 0) / sqrt(0.5 + 0.5) * scale + 0, exactly
    `x * scale`: TensorFlow's broadcasting multiply by a per-channel vector takes about
    twice as long as by a scalar, which DTE would pay twice in every backward pass. Any
    other `scale` (a scalar, another broadcast, a float64 `x`) is a plain multiply.
    """
    scale = tf.convert_to_tensor(scale, x.dtype)
    rank, shape = x.shape.rank, scale.shape
    channels = x.shape[-1] if rank else None
    per_channel = (
        x.dtype == tf.float32
        and rank is not None
        and 2 <= rank
        and shape.rank is not None
        and 1 <= shape.rank <= rank
        and channels is not None
        and shape[-1] == channels
        and all(d == 1 for d in shape[:-1])
    )
    if not per_channel:
        return x * scale
    scale = tf.reshape(scale, [-1])
    half = tf.fill(tf.shape(scale), 0.5)
    zeros = tf.zeros_like(scale)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        _as_nhwc(x), scale, zeros, mean=zeros, variance=half, epsilon=0.5, is_training=False
    )
    return tf.reshape(y, tf.shape(x))


def dte_gradient(
    x: tf.Tensor,
    sigma: tf.Tensor | float,
    t: tf.Tensor,
    k: tf.Tensor,
    band: tf.Tensor,
    epsilon: tf.Tensor,
    width: tf.Tensor,
) -> tf.Tensor:
    r"""DTE's derivative of sign: a distribution-scaled soft sign with a band floor.

    Our design, following the DIR-Net paper's description (Qin et al., IJCV 2023, arXiv
    2109.12338, the overview figure of DTE). With \\(u = x / \sigma\\):

    \\[
    \frac{\partial q}{\partial x} = \frac{1}{\sigma} \max\Big(
        k\,t\,\big(1 - \tanh^2(t u)\big),\;
        \beta\,\epsilon\,\mathbb{1}\left[\,|u| \le b\,\right] \Big)
    \\]

    the derivative of \\(k \tanh(t x / \sigma)\\), floored at \\(\epsilon / \sigma\\)
    inside the band \\(|u| \le b\\) when the band is on (\\(\beta = 1\\), stage 2). The
    floor is in the units of u, where the whole estimator lives, so it scales with
    \\(1/\sigma\\) like the rest (for standardized weights sigma = 1 and it is epsilon).

    Computed in float32 for float16/bfloat16 `x`, returned in `x`'s dtype, saturated at
    its largest finite value as `ede_gradient`'s (the factors k t / sigma, t / sigma and
    epsilon / sigma are capped at float32's, so no inf * 0 makes a NaN). Shapes: `x`
    any, `sigma` (> 0) broadcastable to it, the state scalars.

    It runs in every backward pass, so the per-channel factors t / sigma and k t / sigma
    are formed first and applied by the fused batch-norm kernel (`_scale_channels`,
    about as fast as EDE's multiply by a scalar), and the floor is computed
    only when it can exceed the soft sign somewhere in the band: the soft sign falls
    with |u|, so that is when \(\beta\,\epsilon > k\,t\,(1 - \tanh^2(t\,b))\).
    """
    dtype = tf.float32 if x.dtype in _HALF else x.dtype
    x_, sigma, t, k, band, epsilon, width = (
        tf.cast(v, dtype) for v in (x, sigma, t, k, band, epsilon, width)
    )
    inverse = 1.0 / sigma
    t_inverse = _finite_product(t, inverse)
    soft = _scale_channels(
        1.0 - tf.square(tf.tanh(_scale_channels(x_, t_inverse))), _finite_product(k, t_inverse)
    )
    floor = band * epsilon

    def with_floor():
        inside = tf.abs(x_) <= width * sigma  # |u| <= b
        floored = _finite_product(floor, inverse)
        return tf.maximum(soft, tf.where(inside, floored, tf.zeros_like(soft)))

    binds = floor > dte_soft_at_band_edge(t, k, width)
    return _as_input_dtype(tf.cond(binds, with_floor, lambda: soft), x.dtype)


def dte_soft_at_band_edge(t, k, width) -> tf.Tensor:
    r"""\(k\,t\,(1 - \tanh^2(t\,b))\): DTE's soft derivative at the band's edge
    \(|u| = b\), in units of u (`dte_gradient`).

    The soft sign's derivative falls with |u|, so this is its smallest value inside the
    band: the band's floor epsilon changes a gradient only while epsilon exceeds it
    (`larq_irnet.schedules.dte_floor_epochs`). Scalars (Python floats or tensors) in,
    a scalar tensor out.
    """
    # k (t (...)): k t may overflow where the parenthesis is 0, and inf * 0 is NaN.
    return k * (t * (1.0 - tf.square(tf.tanh(t * width))))


def dte_initial_state(t: float = 1.0, k: float | None = None) -> dict[str, float]:
    """DTE's state before a schedule runs: t, k (default max(1/t, 1)), the band off.

    The band's epsilon and width hold the defaults (`DTE_EPSILON`, `DTE_BAND_FRACTION`)
    so that switching the band on alone (`set_state(band=1.0)`) is meaningful.

    # Raises
        ValueError: `t` or `k` not a finite real number > 0.
    """
    t = real(t, "t", owner="DTE", above=0.0, float32=True)
    k = ede_default_k(t) if k is None else real(k, "k", owner="DTE", above=0.0, float32=True)
    width = dte_band_width(DTE_BAND_FRACTION)
    return {"t": t, "k": k, "band": 0.0, "epsilon": DTE_EPSILON, "width": width}


class ScheduledSign(lq.quantizers._BaseQuantizer):
    """Base of the quantizers whose backward pass reads a state set by a schedule.

    The state is a few float32 scalar, non-trainable `tf.Variable`s (`state_names`),
    created at `build` with `initial_state()` (or the values given by `set_state` before
    that). They are training-only: a schedule (`larq_irnet.schedules`) sets them through
    `set_state` between steps, and only the gradient reads them, as explicit inputs
    (`scheduled_sign`), never as captured variables. So they are not Keras weights:
    `layer.weights`, `count_params`, `larq.models.summary` and `.h5`/`.keras` files do not
    hold them, and a model loads into its twin with another estimator. They are
    checkpoint dependencies of the quantizer (named `<state_prefix><name>`, e.g.
    `ede_t`), so `tf.train.Checkpoint` saves and restores them and a resumed run
    continues from the same state. A subclass whose state values are its constructor
    arguments returns the current values from `get_config` (as `EDEState` does), so that
    `model.save` and `load_model` keep them too. `.h5` files saved before this change hold
    the state as weights; `larq_irnet.legacy_h5.h5_without_estimator_state` drops them.

    Subclasses set `state_names`, and implement `initial_state()` and
    `surrogate(x, *state)`; `estimate(x)` is the sign with that gradient.
    """

    precision = 1
    state_names: tuple[str, ...] = ()

    def __init__(self, **kwargs):
        self._pending: dict[str, float] = {}
        self._state: dict[str, tf.Variable] | None = None
        super().__init__(**kwargs)

    def initial_state(self) -> dict[str, float]:
        """The state's values before any schedule runs."""
        raise NotImplementedError

    def surrogate(self, x: tf.Tensor, *state: tf.Tensor) -> tf.Tensor:
        """The derivative that replaces sign's in the backward pass."""
        raise NotImplementedError

    @property
    def uses_state(self) -> bool:
        """Whether the backward pass reads the state (a subclass may switch it off)."""
        return bool(self.state_names)

    def build(self, input_shape):
        if self.uses_state and self._state is None:
            values = {**self.initial_state(), **self._pending}
            self._create_state(values)
        super().build(input_shape)

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _create_state(self, values: dict[str, float]) -> None:
        # Keras would make any variable assigned to an attribute a weight of this layer
        # (and so of the layer that owns the quantizer); the decorator turns that
        # attribute tracking off, and each variable is tracked for checkpoints only.
        prefix = getattr(self, "state_prefix", "")
        self._state = {}
        for name, value in values.items():
            # Always float32: k = 1/t of a small t overflows float16.
            variable = tf.Variable(value, dtype=tf.float32, trainable=False, name=f"{prefix}{name}")
            self._track_trackable(variable, name=f"{prefix}{name}")
            self._state[name] = variable

    def state_variable(self, name: str) -> tf.Variable | None:
        """The variable of state `name`, or None before `build` (or without state)."""
        return None if self._state is None else self._state[name]

    def state(self) -> dict[str, float]:
        """The current state values, as Python floats."""
        if self._state is None:
            return {**self.initial_state(), **self._pending}
        return {name: float(self._state[name].numpy()) for name in self.state_names}

    def set_state(self, **values: float) -> None:
        """Set state values; before `build` they become the initial values.

        # Raises
            ValueError: an unknown name, or a value that is not a real number float32
                holds (0, or a magnitude from 1.2e-38 to 3.4e38), naming it.
        """
        unknown = set(values) - set(self.state_names)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown state {sorted(unknown)}, expected names "
                f"from {self.state_names}."
            )
        owner = type(self).__name__
        values = {n: real(v, n, owner=owner, float32=True) for n, v in values.items()}
        if self._state is None:
            self._pending.update(values)
        else:
            for name, value in values.items():
                self._state[name].assign(value)

    def estimate(self, x: tf.Tensor) -> tf.Tensor:
        """sign(x) with this estimator's gradient, reading the state variables."""
        if self._state is None:  # unbuilt (e.g. a forward-only twin): the initial values
            state = [self.state()[n] for n in self.state_names]
        else:
            state = [self.state_variable(n) for n in self.state_names]
        return scheduled_sign(x, self.surrogate, *state)


class EDEState(ScheduledSign):
    """IR-Net's EDE as a `ScheduledSign`: state (t, k), gradient `ede_gradient`.

    # Arguments
        t: initial sharpness t > 0, finite.
        k: initial gain k > 0, finite; default max(1/t, 1).
    """

    state_names = ("t", "k")
    state_prefix = "ede_"  # the checkpoint names: ede_t, ede_k (old .h5 files hold them too)

    def __init__(self, t: float = 1.0, k: float | None = None, **kwargs):
        owner = type(self).__name__
        self._initial_t = real(t, "t", owner=owner, above=0.0, float32=True)
        if k is None:
            self._initial_k = ede_default_k(self._initial_t)
        else:
            self._initial_k = real(k, "k", owner=owner, above=0.0, float32=True)
        super().__init__(**kwargs)

    def initial_state(self) -> dict[str, float]:
        return {"t": self._initial_t, "k": self._initial_k}

    def surrogate(self, x: tf.Tensor, t: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
        return ede_gradient(x, t, k)

    @property
    def uses_ede(self) -> bool:
        """Whether this quantizer's backward pass reads EDE's t and k."""
        return self.uses_state

    @property
    def ede_t(self) -> tf.Variable | None:
        """EDE's t (a float32 scalar variable), None before `build`."""
        return self.state_variable("t")

    @property
    def ede_k(self) -> tf.Variable | None:
        """EDE's k (a float32 scalar variable), None before `build`."""
        return self.state_variable("k")

    def set_ede(self, t: float, k: float) -> None:
        """Set t and k; before `build`, they become the values the variables start at."""
        if self._state is None:
            self._initial_t, self._initial_k = float(t), float(k)
        self.set_state(t=t, k=k)

    def get_config(self):
        # The current t and k: a model saved as a Keras file (which holds no estimator
        # state, see `ScheduledSign`) reloads with the state it was saved with.
        state = self.state()
        return {**super().get_config(), "t": state["t"], "k": state["k"]}


class DTEState(ScheduledSign):
    r"""DIR-Net's DTE as a `ScheduledSign`: state `DTE_STATE`, gradient `dte_gradient`.

    Our design, following the DIR-Net paper's description (Qin et al., IJCV 2023, arXiv
    2109.12338). The state (t, k, band, epsilon, width) is set by
    `larq_irnet.schedules.dte_schedule` through `larq_irnet.DTECallback`; sigma comes
    from `sigma(x)`: the per-channel std of the quantizer's input in the current batch
    (`dte_sigma`), computed in the backward pass only, so it is no state at all.

    # Arguments
        t: initial sharpness t > 0, finite.
        k: initial gain k > 0, finite; default max(1/t, 1).
    """

    state_names = DTE_STATE
    state_prefix = "dte_"  # the checkpoint names: dte_t, dte_k, ...

    def __init__(self, t: float = 1.0, k: float | None = None, **kwargs):
        self._initial = dte_initial_state(t, k)
        super().__init__(**kwargs)

    def initial_state(self) -> dict[str, float]:
        return dict(self._initial)

    def sigma(self, x: tf.Tensor) -> tf.Tensor:
        """The spread of `x` the estimator follows (`dte_sigma`)."""
        return dte_sigma(x)

    def surrogate(self, x: tf.Tensor, *state: tf.Tensor) -> tf.Tensor:
        return dte_gradient(x, self.sigma(x), *state)

    @property
    def uses_dte(self) -> bool:
        """Whether this quantizer's backward pass is DTE (and reads its state)."""
        return self.uses_state

    def get_config(self):
        # The current t and k, as `EDEState`'s; the band's state restarts from
        # `initial_state()` in a model loaded from a Keras file (checkpoints keep it).
        state = self.state()
        return {**super().get_config(), "t": state["t"], "k": state["k"]}
