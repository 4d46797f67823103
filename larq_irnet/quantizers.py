r"""IR-Net's and DIR-Net's quantizers for Larq: Libra-PB, IMB, and the EDE and DTE signs.

Importing `larq_irnet` registers them under the names `"libra_pb"`, `"ede_sign"`,
`"imb"`, `"imb_sign"` and `"dte_sign"`, so that any Larq layer accepts them:

```python
import larq as lq
import larq_irnet  # noqa: F401  (registers the quantizers)

lq.layers.QuantConv2D(
    64, 3, padding="same", pad_values=1.0, use_bias=False,
    input_quantizer="ede_sign", kernel_quantizer="libra_pb",
)
# DIR-Net (our design following the paper's description):
lq.layers.QuantConv2D(
    64, 3, padding="same", pad_values=1.0, use_bias=False,
    input_quantizer="dte_sign", kernel_quantizer="imb",
)
```

The forward sign is `larq.math.sign`, the pattern Larq Compute Engine turns into binary
operators; the Libra-PB and IMB scales are per output channel, which LCE folds into the
binary convolution's output multiplier.

DIR-Net's formulas are not public: IMB, `imb_sign` and DTE are our design, following the
DIR-Net paper's description (see docs/dirnet.md).

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
- [Distribution-Sensitive Information Retention for Accurate Binary Neural Network
  (Qin et al., IJCV 2023)](https://arxiv.org/abs/2109.12338)
- [XNOR-Net: ImageNet Classification Using Binary Convolutional Neural Networks
  (Rastegari et al., ECCV 2016), Eq. 4-6](https://arxiv.org/abs/1603.05279)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from larq_irnet._validation import is_integer, real
from larq_irnet.estimators import (
    DTE_STATE,
    DTEState,
    EDEState,
    dte_gradient,
    dte_initial_state,
    dte_sigma,
    ede_default_k,
    ede_gradient,
    ede_sign,
)
from larq_irnet.layers import QUANTIZED_WEIGHTS, calling_layer, kernel_channel_axes

import larq as lq
import tensorflow as tf

__all__ = [
    "DTESign",
    "EDESign",
    "IMB",
    "IMBSign",
    "LibraPB",
    "binary_filter_scale",
    "bit_shift_scale",
    "ede_default_k",
    "ede_gradient",
    "ede_sign",
    "libra_standardize",
    "mean_abs_scale",
]

_SCALES = ("mean_abs", "bit_shift", "none")
_HALF = (tf.float16, tf.bfloat16)


def _reduction_axes(rank: int, channel_axes: Sequence[int] | None) -> list[int]:
    """The axes a filter spans: all but `channel_axes` (default: the last axis)."""
    channels = {a % rank for a in (channel_axes if channel_axes is not None else (-1,))}
    return [a for a in range(rank) if a not in channels]


def _check_filter_size(shape, channel_axes: Sequence[int] | None, owner: str) -> int:
    """The number n of weights per filter; a ValueError naming `owner` and the shape if a
    filter axis is unknown (an activation's batch axis: not a kernel) or n < 2 (no std)."""
    shape = tuple(tf.TensorShape(shape))
    axes = _reduction_axes(len(shape), channel_axes)
    unknown = [a for a in axes if shape[a] is None]
    if unknown:
        raise ValueError(
            f"{owner} standardizes each output channel over the other kernel axes, so it "
            f"needs their sizes; got a tensor of shape {shape} whose axis {unknown[0]} is "
            "unknown. It quantizes kernels (`kernel_quantizer=`); for activations use "
            '"ede_sign", "dte_sign" or "imb_sign" as `input_quantizer`.'
        )
    n = math.prod(shape[a] for a in axes) if len(shape) >= 2 else 1
    if len(shape) < 2 or n < 2:
        raise ValueError(
            f"{owner} standardizes each output channel over the other kernel axes and "
            f"needs at least 2 entries per channel; got a kernel of shape {tuple(shape)} "
            f"with output-channel axes {tuple(channel_axes or (-1,))}."
        )
    return n


def _owner(quantizer: tf.keras.layers.Layer, layer: tf.keras.layers.Layer | None) -> str:
    """How a refusal names `quantizer`: with the layer that calls it, if any."""
    if layer is None or layer is quantizer:
        return type(quantizer).__name__
    return f"{type(quantizer).__name__} in layer {layer.name!r}"


def _leave_quantized_scope(layer: tf.keras.layers.Layer | None) -> None:
    """Turn Larq's quantized scope off before a refusal raised inside `layer`'s call.

    A Larq layer reads its quantized kernel inside `larq.context.quantized_scope(True)`,
    which Larq restores without try/finally: an error raised there would leave the scope
    on for the thread, and every later `get_weights()` and `save()` would silently hold
    binarized weights. Refusals happen at a layer's first call (when its quantizers are
    built), which is not made inside a quantized scope of the user's: off is its state.
    """
    if layer is not None and lq.context.should_quantize():
        lq.context.quantized_scope(False).__enter__()  # sets it off; no exit to run


def libra_standardize(
    w: tf.Tensor,
    *,
    standardize: bool = True,
    epsilon: float = 1e-8,
    channel_axes: Sequence[int] | None = None,
) -> tf.Tensor:
    r"""Libra-PB's balance and standardization of a kernel (IR-Net, Eq. 5-6).

    Per output channel o (by default the last kernel axis: HWIO conv kernels, IO dense
    kernels; `channel_axes` for other layouts, see `larq_irnet.layers`), over the n
    entries of the filter:

    \\[
    \hat{w} = w - \mu_o(w), \qquad
    w_{std} = \frac{\hat{w}}{\sqrt{\sigma_o^2(\hat{w}) + \epsilon}}, \qquad
    \sigma_o^2(\hat{w}) = \frac{1}{n - 1} \sum \hat{w}^2
    \\]

    The std is the unbiased one, as in the authors' code. The authors add no epsilon, so
    a filter with all-equal weights gives NaN there; here \\(\hat{w}\\) of an
    all-equal filter is exactly 0 (whatever the rounding of its mean), and `epsilon`
    (under the root, so the gradient stays finite too) keeps \\(w_{std} = 0\\), which
    binarizes to +1. Mean and std are not detached: the gradient flows through the
    standardization (for an all-equal filter too). With `standardize=False` only the
    balancing step runs (the ablation "Libra-PB without standardization").

    Computed in float32 for float16/bfloat16 kernels (epsilon underflows in float16) and
    returned in the kernel's dtype.

    # Arguments
        w: a kernel, rank >= 2.
        standardize: divide by the per-filter std.
        epsilon: added to the variance, >= 0.
        channel_axes: the axes that index filters; default `(-1,)`.

    # Returns
        \\(w_{std}\\), the shape of `w`.

    # Raises
        ValueError: a kernel with fewer than 2 weights per filter (no std exists), or
            `epsilon` not a finite real number >= 0.
    """
    if real(epsilon, "epsilon", owner="libra_standardize") < 0:
        raise ValueError(f"libra_standardize: `epsilon` must be >= 0, got epsilon={epsilon!r}.")
    if standardize:
        n = _check_filter_size(w.shape, channel_axes, "libra_standardize")
    dtype = w.dtype
    w = tf.cast(w, tf.float32) if dtype in _HALF else w
    axes = _reduction_axes(len(w.shape), channel_axes)
    mean = tf.reduce_mean(w, axis=axes, keepdims=True)
    w_min = tf.reduce_min(w, axis=axes, keepdims=True)
    all_equal = tf.reduce_max(w, axis=axes, keepdims=True) == w_min
    # An all-equal filter centres on its value, so w_hat is exactly 0 there (the
    # float mean of n equal values need not equal them), with the mean's gradient.
    # Only per-filter tensors are selected: a select over the whole kernel has
    # operands too large for the converter to fold into a constant in big layers.
    shift = tf.where(all_equal, w_min - mean, tf.zeros_like(mean))
    w_hat = w - (mean + tf.stop_gradient(shift))
    if standardize:
        variance = tf.reduce_sum(tf.square(w_hat), axis=axes, keepdims=True) / (n - 1)
        w_hat = w_hat / tf.sqrt(variance + tf.cast(epsilon, w.dtype))
    return tf.cast(w_hat, dtype)


def bit_shift_scale(w_std: tf.Tensor, *, channel_axes: Sequence[int] | None = None) -> tf.Tensor:
    r"""Libra-PB's power-of-two scale per output channel, without gradient (IR-Net, Eq. 7).

    \\[
    s_o = 2^{\mathrm{round}\left(\log_2 \frac{1}{n} \sum |w_{std}|\right)}
    \\]

    A scale that is a power of two is a bit shift at inference. After standardization
    the mean magnitude is at most 1, so s is almost always 1 or 1/2. A filter whose
    \\(w_{std}\\) is all zero (an all-equal filter) gets s = 1, so it binarizes to +1.
    Shape: 1 on the reduced axes, as `w_std` on `channel_axes` (default `(-1,)`).
    """
    axes = _reduction_axes(len(w_std.shape), channel_axes)
    mean_abs = tf.reduce_mean(tf.abs(w_std), axis=axes, keepdims=True)
    # Keep log2 finite; a zero filter takes s = 1 below.
    floor = tf.maximum(mean_abs, tf.cast(tf.keras.backend.epsilon(), w_std.dtype))
    scale = 2.0 ** tf.round(tf.math.log(floor) / math.log(2.0))
    return tf.stop_gradient(tf.where(mean_abs > 0, scale, tf.ones_like(scale)))


def mean_abs_scale(w_std: tf.Tensor, *, channel_axes: Sequence[int] | None = None) -> tf.Tensor:
    r"""IMB's per-filter scale: the mean magnitude of the standardized filter, no gradient.

    Our design, following the DIR-Net paper's description (IMB: "minimizing ... the
    binarization error", a scale alpha in its figure). Over the n entries of filter o:

    \\[
    \alpha_o = \frac{1}{n} \sum |w_{std}|
      = \arg\min_{\alpha} \left\lVert w_{std} - \alpha\, \mathrm{sign}(w_{std})
        \right\rVert_2^2
    \\]

    the minimizer of the binarization error (XNOR-Net, Eq. 4-6). A filter whose
    \\(w_{std}\\) is all zero (an all-equal filter) gets 1, so it binarizes to +1, as
    with `bit_shift_scale`. No gradient (`tf.stop_gradient`), like IR-Net's bit-shift
    scale: in the zoo a BatchNormalization follows every binary convolution and
    cancels a per-channel scale in training, so its gradient is ~0 anyway. Shape: 1 on
    the reduced axes, as `w_std` on `channel_axes` (default `(-1,)`).
    """
    axes = _reduction_axes(len(w_std.shape), channel_axes)
    mean_abs = tf.reduce_mean(tf.abs(w_std), axis=axes, keepdims=True)
    return tf.stop_gradient(tf.where(mean_abs > 0, mean_abs, tf.ones_like(mean_abs)))


def binary_filter_scale(
    w: tf.Tensor, *, channel_axes: Sequence[int] | None = None, power_of_two: bool = True
) -> tuple[tf.Tensor, tf.Tensor]:
    r"""Which filters of `w` are already Libra-PB outputs, and their magnitude.

    A filter is an output of Libra-PB with the bit-shift scale when its weights are
    \\(\pm c\\), both signs present, with c a power of two. Libra-PB keeps c as the
    scale of such a filter, so that applying it to its own output changes nothing
    (\\(Q(Q(w)) = Q(w)\\)): Larq's `quantized_scope(True)` saves binarized weights, and
    reloading them must give the same outputs. Eq. 7 alone would rescale them (a
    balanced \\(\pm c\\) filter standardizes to mean magnitude \\(\sqrt{(n-1)/n}\\),
    so s = 1 whatever c was).

    # Returns
        `(is_binary, c)`: booleans and magnitudes, 1 on the reduced axes.
    """
    axes = _reduction_axes(len(w.shape), channel_axes)
    magnitude = tf.abs(w)
    c = tf.reduce_max(magnitude, axis=axes, keepdims=True)
    safe = tf.maximum(c, tf.cast(tf.keras.backend.epsilon(), w.dtype))
    is_binary = (
        (tf.reduce_min(magnitude, axis=axes, keepdims=True) == c)
        & (tf.reduce_max(w, axis=axes, keepdims=True) == c)
        & (tf.reduce_min(w, axis=axes, keepdims=True) == -c)
        & (c > 0)
    )
    if power_of_two:
        is_binary &= c == 2.0 ** tf.round(tf.math.log(safe) / math.log(2.0))
    return is_binary, tf.stop_gradient(c)


class _EstimatedSign(EDEState):
    """Quantizers whose backward pass is chosen by `gradient`: EDE, DTE or Larq's STE.

    The state follows the choice: EDE's (t, k), named `ede_t`, `ede_k`; DTE's
    (`larq_irnet.estimators.DTE_STATE`), named `dte_t`, ...; none for the STE. `t` and
    `k` are the initial sharpness and gain of either estimator. The sigma DTE divides
    by is `sigma(x)`: 1 here (standardized weights), the batch's per-channel std for
    activations (`IMBSign`).
    """

    _gradients: tuple[str, ...] = ("ede", "dte", "ste")

    def __init__(self, gradient: str, t: float = 1.0, k: float | None = None, **kwargs):
        if gradient not in self._gradients:
            raise ValueError(
                f"{type(self).__name__}: `gradient` must be one of {self._gradients}, "
                f"got gradient={gradient!r}."
            )
        self.gradient = gradient
        super().__init__(t=t, k=k, **kwargs)

    @property
    def state_names(self) -> tuple[str, ...]:
        return {"ede": EDEState.state_names, "dte": DTE_STATE}.get(self.gradient, ())

    @property
    def state_prefix(self) -> str:
        return f"{self.gradient}_"

    def initial_state(self) -> dict[str, float]:
        if self.gradient == "dte":
            return dte_initial_state(self._initial_t, self._initial_k)
        return super().initial_state()

    def sigma(self, x: tf.Tensor) -> tf.Tensor | float:
        """The spread DTE scales by: 1, for standardized weights."""
        return 1.0

    def surrogate(self, x: tf.Tensor, *state: tf.Tensor) -> tf.Tensor:
        if self.gradient == "dte":
            return dte_gradient(x, self.sigma(x), *state)
        return ede_gradient(x, *state)

    @property
    def uses_state(self) -> bool:
        """Whether the backward pass reads a scheduled state (EDE or DTE)."""
        return self.gradient in ("ede", "dte")

    @property
    def uses_ede(self) -> bool:
        """Whether the backward pass is EDE (`gradient="ede"`)."""
        return self.gradient == "ede"

    @property
    def uses_dte(self) -> bool:
        """Whether the backward pass is DTE (`gradient="dte"`)."""
        return self.gradient == "dte"

    def binarize(self, x: tf.Tensor) -> tf.Tensor:
        """`larq.math.sign(x)` with the chosen gradient (the STE clips at |x| <= 1)."""
        if self.uses_state:
            return self.estimate(x)
        return lq.quantizers.ste_sign(x, clip_value=1.0)

    def get_config(self):
        return {**super().get_config(), "gradient": self.gradient}


class _EDEQuantizer(EDEState):
    """Quantizers whose backward pass is EDE (`larq_irnet.estimators.EDEState`)."""


@lq.utils.register_alias("ede_sign")
@lq.utils.register_keras_custom_object
class EDESign(_EDEQuantizer):
    r"""Sign with IR-Net's Error Decay Estimator as its gradient.

    \\[
    q(x) = \begin{cases} -1 & x < 0 \\\ 1 & x \geq 0 \end{cases}
    \qquad
    \frac{\partial q(x)}{\partial x} = k\,t\,\left(1 - \tanh^2(t x)\right)
    \\]

    t starts small (the gradient is identity-like, so weights keep updating) and grows
    large (the gradient approaches sign's true one); `EDECallback` anneals it during
    `fit`. Unlike the STE there is no |x| <= 1 mask. Use it for activations, or for
    weights without Libra-PB.

    ```python
    lq.layers.QuantConv2D(64, 3, input_quantizer="ede_sign", kernel_quantizer="libra_pb")
    ```

    # Arguments
        t: initial sharpness t > 0, finite (a `tf.Variable`, later set by
            `EDECallback`). Under float16 the gradient is computed in float32, so it stays
            finite over the schedules' range (1e-3 to 10) and beyond.
        k: initial gain k > 0, finite; default max(1/t, 1).
        metrics: Larq metrics to add, e.g. `["flip_ratio"]`; default from
            `larq.context.metrics_scope`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 10-11](https://arxiv.org/abs/1909.10788)

    # Raises
        ValueError: `t` or `k` not a finite real number > 0.
    """

    def call(self, inputs):
        return super().call(self.estimate(inputs))


@lq.utils.register_alias("libra_pb")
@lq.utils.register_keras_custom_object
class LibraPB(_EstimatedSign):
    r"""Libra Parameter Binarization of weights (IR-Net), with EDE as its gradient.

    Per output channel o, over the filter's n entries:

    \\[
    w_{std} = \frac{w - \mu_o(w)}{\sigma_o(w - \mu_o(w))}, \qquad
    s_o = 2^{\mathrm{round}(\log_2 \overline{|w_{std}|}_o)}, \qquad
    Q_w(w) = \mathrm{sign}(w_{std})\, s_o
    \\]

    with the unbiased std. The balanced, standardized weights binarize to +1 and -1 in
    nearly equal numbers, which maximizes the binary weights' entropy, and standardizing
    keeps the quantization error small. \\(s_o\\) carries no gradient. The gradient with
    respect to \\(w_{std}\\) is EDE's, \\(s_o\, k\, t\, (1 - \tanh^2(t\, w_{std}))\\),
    and it flows on through the mean and std into w.

    The output channels are the last kernel axis for convolutions and dense layers; in
    other Larq layers (depthwise, transposed, separable, locally connected) they are the
    axes of `larq_irnet.layers.kernel_channel_axes`. Without `channel_axes`, the
    quantizer learns them from its layer the first time the layer reads its kernel
    (`larq_irnet.layers.calling_layer`), and keeps them in its config; called on its own,
    it uses the last axis.

    Statistics are computed in float32 under any mixed-precision policy; the output
    has the input's dtype. An all-equal filter binarizes to +1 (scale 1). A filter that
    already is \\(\pm c\\) with both signs and c a power of two (Libra-PB's own output)
    keeps c as its scale (`binary_filter_scale`), so Libra-PB applied to its own output
    returns it unchanged and binarized weights saved under `quantized_scope(True)`
    reload to the same outputs.

    ```python
    lq.layers.QuantConv2D(64, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign")
    # the ablation rows of the paper's Table 2:
    LibraPB(standardize=False)  # Libra-PB without weight standardization
    LibraPB(bit_shift=False)    # Libra-PB without the bit-shift scale
    LibraPB(gradient="ste")     # Libra-PB with Larq's STE (clip 1) instead of EDE
    LibraPB(gradient="dte")     # Libra-PB with DIR-Net's DTE (the "dte" zoo row)
    ```

    # Arguments
        gradient: `"ede"` (default, as the authors' code), `"dte"` (DIR-Net's DTE,
            our design; `larq_irnet.estimators.dte_gradient` with sigma = 1) or
            `"ste"`.
        standardize: divide by the per-channel std (else only balance the mean).
        bit_shift: multiply by the power-of-two scale s_o (else output +-1).
        epsilon: added to the variance under the root, so zero-variance filters stay
            finite (the authors' code has none).
        t: initial EDE or DTE sharpness t > 0 (with `gradient="ede"` or `"dte"`).
        k: initial EDE or DTE gain k > 0; default max(1/t, 1).
        channel_axes: the kernel axes that index output channels; default: from the
            layer (see above).
        metrics: Larq metrics, e.g. `["flip_ratio"]` (computed on the signs).

    Shapes: a kernel of rank >= 2 in, the same shape out.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 5-7 and 10-11](
          https://arxiv.org/abs/1909.10788)

    # Raises
        ValueError: a bad argument (named with its value); at the first call, before
            anything is built, naming the layer and the shape: a tensor with an unknown
            filter axis (an activation's batch axis: it quantizes kernels), a kernel
            with fewer than 2 weights per filter, or a layer kind whose kernel has no
            filter axes. Larq's quantized scope is left off after such a refusal.
    """

    def __init__(
        self,
        gradient: str = "ede",
        standardize: bool = True,
        bit_shift: bool = True,
        epsilon: float = 1e-8,
        t: float = 1.0,
        k: float | None = None,
        channel_axes: Sequence[int] | None = None,
        **kwargs,
    ):
        self.standardize = bool(standardize)
        self.bit_shift = bool(bit_shift)
        owner = type(self).__name__
        self.epsilon = real(epsilon, "epsilon", owner=owner)
        if self.epsilon < 0:
            raise ValueError(f"{owner}: `epsilon` must be >= 0, got epsilon={epsilon!r}.")
        if channel_axes is not None:
            if is_integer(channel_axes):
                channel_axes = (channel_axes,)
            if not channel_axes or not all(is_integer(a) for a in channel_axes):
                raise ValueError(
                    f"{owner}: `channel_axes` must be a non-empty sequence of ints, got "
                    f"channel_axes={channel_axes!r}."
                )
            channel_axes = tuple(int(a) for a in channel_axes)  # NumPy integers too
        self.channel_axes: tuple[int, ...] | None = channel_axes
        super().__init__(gradient, t=t, k=k, **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        # The layer reading its kernel, found before this quantizer's own call starts.
        layer = calling_layer()
        try:
            if self.channel_axes is None:
                self._learn_channel_axes(layer)
            if not self.built:
                _check_filter_size(inputs.shape, self.channel_axes, _owner(self, layer))
        except ValueError:
            _leave_quantized_scope(layer)
            raise
        return super().__call__(inputs, *args, **kwargs)

    def _learn_channel_axes(self, layer: tf.keras.layers.Layer | None) -> None:
        for quantizer_attribute, weight in QUANTIZED_WEIGHTS:
            if layer is not None and getattr(layer, quantizer_attribute, None) is self:
                self.channel_axes = kernel_channel_axes(layer, weight)
                return

    def build(self, input_shape):
        _check_filter_size(input_shape, self.channel_axes, type(self).__name__)
        super().build(input_shape)

    def call(self, inputs):
        axes = self.channel_axes
        w = tf.cast(inputs, tf.float32) if inputs.dtype in _HALF else inputs
        w_std = libra_standardize(
            w, standardize=self.standardize, epsilon=self.epsilon, channel_axes=axes
        )
        binary = self.binarize(w_std)
        # Larq's flip-ratio metric counts sign flips; the scale would be cast away.
        super().call(binary)
        if self.bit_shift:
            is_binary, magnitude = binary_filter_scale(
                w, channel_axes=axes, power_of_two=self._power_of_two_scale
            )
            scale = self.filter_scale(w_std)
            binary = binary * tf.where(is_binary, magnitude, scale)
        return tf.cast(binary, inputs.dtype)

    _power_of_two_scale = True

    def filter_scale(self, w_std: tf.Tensor) -> tf.Tensor:
        """The per-filter scale of the binary weights: `bit_shift_scale` (IR-Net, Eq. 7)."""
        return bit_shift_scale(w_std, channel_axes=self.channel_axes)

    def in_band_fraction(self, w: tf.Tensor) -> float:
        """The fraction of `w`'s entries inside DTE's band: \\(|w_{std}| \\le b\\).

        What `DTECallback` logs as `dte_in_band`; b is the current `width` state.
        """
        w_std = libra_standardize(
            tf.cast(w, tf.float32),
            standardize=self.standardize,
            epsilon=self.epsilon,
            channel_axes=self.channel_axes,
        )
        return float(tf.reduce_mean(tf.cast(tf.abs(w_std) <= self.state()["width"], tf.float32)))

    def get_config(self):
        return {
            **super().get_config(),
            "standardize": self.standardize,
            "bit_shift": self.bit_shift,
            "epsilon": self.epsilon,
            "channel_axes": None if self.channel_axes is None else list(self.channel_axes),
        }


@lq.utils.register_alias("imb")
@lq.utils.register_keras_custom_object
class IMB(LibraPB):
    r"""DIR-Net's Information Maximized Binarization of weights, DTE as its gradient.

    Our design, following the DIR-Net paper's description (IMB: "minimizing the
    information loss and the binarization error of weights ... by weight balance and
    standardization"; its figure: a centred, spread weight distribution binarized to
    \\(\pm\alpha\\)). Per filter o (the layer's output channels, as for `LibraPB`),
    over its n entries:

    \\[
    w_{std} = \frac{w - \mu_o(w)}{\sqrt{\sigma_o^2(w - \mu_o(w)) + \epsilon}}, \qquad
    \alpha_o = \frac{1}{n} \sum |w_{std}|, \qquad
    Q_w(w) = \alpha_o\, \mathrm{sign}(w_{std})
    \\]

    Balance and standardization are Libra-PB's (`libra_standardize`: unbiased std,
    epsilon, the gradient through mean and std, float32 statistics), so the binary
    weights have maximal entropy; \\(\alpha_o\\) (`mean_abs_scale`) minimizes the
    binarization error \\(\lVert w_{std} - \alpha\, \mathrm{sign}(w_{std}) \rVert^2\\)
    (XNOR-Net's result) and carries no gradient. `scale="bit_shift"` uses IR-Net's
    power of two instead (`bit_shift_scale`), `scale="none"` outputs \\(\pm 1\\).

    Backward, with \\(g\\) the chosen estimator's derivative:
    \\(\partial Q / \partial w_{std} = \alpha_o\, g(w_{std})\\), on through the mean
    and std into w. The default is DTE (`larq_irnet.estimators.dte_gradient` with
    sigma = 1: the weights are standardized), driven by `larq_irnet.DTECallback`;
    `gradient="ede"` is IR-Net's EDE (`EDECallback`), `"ste"` Larq's STE.

    Every scale is one positive number per output channel, which LCE folds into its
    binary convolution's output multiplier. Like `LibraPB`, IMB applied to its own
    output returns it unchanged (a filter that already is \\(\pm c\\) with both signs
    keeps c, `binary_filter_scale`), so weights saved under `quantized_scope(True)`
    reload to the same outputs.

    ```python
    lq.layers.QuantConv2D(64, 3, kernel_quantizer="imb", input_quantizer="dte_sign")
    IMB(scale="bit_shift", gradient="ede")  # = LibraPB(): IR-Net's weights
    ```

    # Arguments
        scale: `"mean_abs"` (default), `"bit_shift"` or `"none"`.
        gradient: `"dte"` (default), `"ede"` or `"ste"`.
        epsilon: added to the variance under the root (>= 0).
        t: initial DTE/EDE sharpness t > 0.
        k: initial gain k > 0; default max(1/t, 1).
        channel_axes: the kernel axes that index output channels; default: from the
            layer (as `LibraPB`).
        metrics: Larq metrics, e.g. `["flip_ratio"]`.

    Shapes: a kernel of rank >= 2 in, the same shape out.

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023), IMB](https://arxiv.org/abs/2109.12338)
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 5-7](https://arxiv.org/abs/1909.10788)
        - [XNOR-Net (Rastegari et al., ECCV 2016), Eq. 4-6](
          https://arxiv.org/abs/1603.05279)

    # Raises
        ValueError: a bad argument (named with its value); at the first call, before
            anything is built, naming the layer and the shape: a tensor with an unknown
            filter axis (an activation's batch axis: it quantizes kernels), a kernel
            with fewer than 2 weights per filter, or a layer kind whose kernel has no
            filter axes. Larq's quantized scope is left off after such a refusal.
    """

    def __init__(
        self,
        scale: str = "mean_abs",
        gradient: str = "dte",
        epsilon: float = 1e-8,
        t: float = 1.0,
        k: float | None = None,
        channel_axes: Sequence[int] | None = None,
        **kwargs,
    ):
        if scale not in _SCALES:
            raise ValueError(f"IMB: `scale` must be one of {_SCALES}, got scale={scale!r}.")
        self.scale = scale
        super().__init__(
            gradient=gradient,
            standardize=True,
            bit_shift=scale != "none",
            epsilon=epsilon,
            t=t,
            k=k,
            channel_axes=channel_axes,
            **kwargs,
        )

    @property
    def _power_of_two_scale(self) -> bool:
        return self.scale == "bit_shift"

    def filter_scale(self, w_std: tf.Tensor) -> tf.Tensor:
        """The per-filter scale: `mean_abs_scale` or `bit_shift_scale`, per `scale`."""
        if self.scale == "mean_abs":
            return mean_abs_scale(w_std, channel_axes=self.channel_axes)
        return super().filter_scale(w_std)

    def get_config(self):
        config = super().get_config()
        del config["standardize"], config["bit_shift"]
        return {**config, "scale": self.scale}


@lq.utils.register_alias("dte_sign")
@lq.utils.register_keras_custom_object
class DTESign(DTEState):
    r"""Sign with DIR-Net's Distribution-sensitive Two-stage Estimator as its gradient.

    Our design, following the DIR-Net paper's description (DTE: "distribution-sensitive
    soft approximation by jointly considering the updating capability and accurate
    gradient"). Per channel c (the last axis), with \\(\sigma_c\\) the std of this
    batch's input on that channel (`dte_sigma`, no gradient) and \\(u = x/\sigma_c\\):

    \\[
    q(x) = \begin{cases} -1 & x < 0 \\\ 1 & x \geq 0 \end{cases}
    \qquad
    \frac{\partial q}{\partial x} = \frac{1}{\sigma_c}\max\Big(
        k\,t\,\big(1 - \tanh^2(t u)\big),\; \beta\,\epsilon\,\mathbb{1}[|u| \le b]\Big)
    \\]

    (`dte_gradient`). `DTECallback` runs two stages: stage 1 (updating capability)
    raises t from T_min to 1 with k = 1/t, no band (\\(\beta = 0\\)); stage 2
    (accurate gradient) raises t from 1 to T_max with k = 1, and a band \\(|u| \le b\\)
    holding a chosen fraction of the inputs keeps a gradient of at least
    \\(\epsilon/\sigma_c\\) (\\(\beta = 1\\)). sigma is the current batch's: the
    backward pass only runs on training batches, so it needs no running estimate (no
    state updated in `call`). Used as a kernel quantizer, its channels are the output
    channels (the last axis of conv and dense kernels). The forward graph is
    `larq.math.sign` only: LCE converts it to `LceQuantize`.

    ```python
    lq.layers.QuantConv2D(64, 3, input_quantizer="dte_sign", kernel_quantizer="imb")
    model.fit(..., callbacks=[larq_irnet.DTECallback(t_min=0.1, t_max=10.0)])
    ```

    # Arguments
        t: initial sharpness t > 0, finite (a `tf.Variable`, later set by
            `DTECallback`).
        k: initial gain k > 0, finite; default max(1/t, 1).
        metrics: Larq metrics to add, e.g. `["flip_ratio"]`.

    Shapes: any input of rank >= 1 (channels last), the same shape out.

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023), DTE](https://arxiv.org/abs/2109.12338)

    # Raises
        ValueError: `t` or `k` not a finite real number > 0.
    """

    def call(self, inputs):
        return super().call(self.estimate(inputs))

    def in_band_fraction(self, w: tf.Tensor) -> float:
        """The fraction of `w`'s entries inside DTE's band, \\(|w| / \\sigma_c \\le b\\)."""
        w = tf.cast(w, tf.float32)
        inside = tf.abs(w / dte_sigma(w)) <= self.state()["width"]
        return float(tf.reduce_mean(tf.cast(inside, tf.float32)))


@lq.utils.register_alias("imb_sign")
@lq.utils.register_keras_custom_object
class IMBSign(_EstimatedSign):
    r"""DIR-Net's IMB for activations: a sign whose threshold is balanced per channel.

    Our design, following the DIR-Net paper's description (IMB retains the information
    of "weights/activations"; the paper publishes no activation formula). Per channel c
    (the last axis), with a learnable threshold \\(\tau_c\\) initialised at 0:

    \\[
    q(x) = \mathrm{sign}(x - \tau_c), \qquad
    \frac{\partial q}{\partial x} = g(x - \tau_c), \qquad
    \frac{\partial q}{\partial \tau_c} = -g(x - \tau_c)
    \\]

    with g the chosen estimator's derivative: DTE by default (sigma the batch's
    per-channel std of \\(x - \tau\\), `dte_sigma`), or EDE, or Larq's STE. A binary
    activation carries the most information when +1 and -1 are equally likely
    (IR-Net's entropy argument for weights); a per-channel threshold lets training move
    each channel's split point to where the task wants it, starting from plain sign.

    The threshold is a plain trainable weight, not a statistic tracked in `call`: no
    state changes in the forward pass, so it is safe under `tf.cond`, `tf.distribute`
    and float16, and saved like any weight. LCE converts it to one per-channel float
    `SUB` (or `ADD`) right before `LceQuantize`; the convolution stays `LceBconv2d`.

    ```python
    lq.layers.QuantConv2D(64, 3, input_quantizer="imb_sign", kernel_quantizer="imb")
    ```

    # Arguments
        gradient: `"dte"` (default), `"ede"` or `"ste"`.
        t: initial DTE/EDE sharpness t > 0.
        k: initial gain k > 0; default max(1/t, 1).
        metrics: Larq metrics, e.g. `["flip_ratio"]`.

    Shapes: an input of rank >= 2 with a known last (channel) axis C; the same shape
    out. Weights: `threshold`, shape (C,), trainable.

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023), IMB](https://arxiv.org/abs/2109.12338)

    # Raises
        ValueError: a bad argument (named with its value); at the first call, an input
            whose channel axis is unknown (naming the layer and the shape).
    """

    def __init__(self, gradient: str = "dte", t: float = 1.0, k: float | None = None, **kwargs):
        super().__init__(gradient, t=t, k=k, **kwargs)

    def __call__(self, inputs, *args, **kwargs):
        layer = calling_layer()  # the layer using it, found before this call starts
        if not self.built:
            try:
                self._check_channels(inputs.shape, _owner(self, layer))
            except ValueError:
                _leave_quantized_scope(layer)
                raise
        return super().__call__(inputs, *args, **kwargs)

    @staticmethod
    def _check_channels(input_shape, owner: str = "IMBSign") -> int:
        shape = tf.TensorShape(input_shape)
        channels = shape[-1] if shape.rank is not None and shape.rank >= 2 else None
        if channels is None:
            raise ValueError(
                f"{owner} needs inputs of rank >= 2 with a known channel (last) axis, got "
                f"input_shape={tuple(shape) if shape.rank is not None else shape}."
            )
        return channels

    def build(self, input_shape):
        channels = self._check_channels(input_shape)
        self.threshold = self.add_weight(
            name="threshold", shape=(int(channels),), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def sigma(self, x: tf.Tensor) -> tf.Tensor:
        """The spread DTE scales by: this batch's per-channel std (`dte_sigma`)."""
        return dte_sigma(x)

    def call(self, inputs):
        return super().call(self.binarize(inputs - tf.cast(self.threshold, inputs.dtype)))
