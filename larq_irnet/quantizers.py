r"""IR-Net's quantizers for Larq: Libra-PB for weights and the EDE sign.

Importing `larq_irnet` registers them under the names `"libra_pb"` and `"ede_sign"`, so
that any Larq layer accepts them:

```python
import larq as lq
import larq_irnet  # noqa: F401  (registers the quantizers)

lq.layers.QuantConv2D(
    64, 3, padding="same", pad_values=1.0, use_bias=False,
    input_quantizer="ede_sign", kernel_quantizer="libra_pb",
)
```

The forward sign is `larq.math.sign`, the pattern Larq Compute Engine turns into binary
operators; the Libra-PB scale is per output channel, which LCE folds into the binary
convolution's output multiplier.

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
"""

from __future__ import annotations

import logging
import math
import sys

import larq as lq
import tensorflow as tf

__all__ = [
    "EDESign",
    "LibraPB",
    "bit_shift_scale",
    "ede_default_k",
    "ede_gradient",
    "ede_sign",
    "libra_standardize",
]

_GRADIENTS = ("ede", "ste")


def ede_default_k(t: float) -> float:
    r"""EDE's gradient gain for a given t: \\(k = \max(1/t, 1)\\) (IR-Net, Eq. 11).

    While t < 1 this makes \\(k t = 1\\), so the estimator's slope at zero is that of the
    identity; once t > 1 it is t itself.
    """
    if not t > 0:
        raise ValueError(f"EDE `t` must be > 0, got t={t!r}.")
    return max(1.0 / t, 1.0)


def ede_gradient(x: tf.Tensor, t: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    r"""The Error Decay Estimator: derivative of \\(g(x) = k \tanh(t x)\\) (IR-Net, Eq. 10).

    \\[
    g'(x) = k\,t\,\left(1 - \tanh^2(t x)\right)
    \\]
    """
    t = tf.cast(t, x.dtype)
    k = tf.cast(k, x.dtype)
    return k * t * (1.0 - tf.square(tf.tanh(t * x)))


def ede_sign(x: tf.Tensor, t: tf.Tensor | float, k: tf.Tensor | float) -> tf.Tensor:
    r"""Binarize with `larq.math.sign`; backward pass through EDE with gain `k`, sharpness `t`.

    `t` and `k` are read when the gradient is computed, so passing `tf.Variable`s lets a
    callback anneal them inside an already traced training step. The forward graph holds
    only the sign, which LCE recognizes.
    """

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            return dy * ede_gradient(x, tf.convert_to_tensor(t), tf.convert_to_tensor(k))

        return lq.math.sign(x), grad

    return _call(x)


def libra_standardize(
    w: tf.Tensor, *, standardize: bool = True, epsilon: float = 1e-8
) -> tf.Tensor:
    r"""Libra-PB's balance and standardization of a kernel (IR-Net, Eq. 5-6).

    Per output channel o (the last kernel axis: HWIO conv kernels, IO dense kernels),
    over the n = H*W*I entries of the filter:

    \\[
    \hat{w} = w - \mu_o(w), \qquad
    w_{std} = \frac{\hat{w}}{\sqrt{\sigma_o^2(\hat{w}) + \epsilon}}, \qquad
    \sigma_o^2(\hat{w}) = \frac{1}{n - 1} \sum \hat{w}^2
    \\]

    The std is the unbiased one, as in the authors' code. The authors add no epsilon, so
    a filter with all-equal weights gives NaN there; here `epsilon` (under the root, so
    the gradient stays finite too) makes it binarize to +1. Mean and std are not
    detached: the gradient flows through the standardization. With `standardize=False`
    only the balancing step runs (the ablation "Libra-PB without standardization").
    """
    axes = list(range(len(w.shape) - 1))
    w_hat = w - tf.reduce_mean(w, axis=axes, keepdims=True)
    if not standardize:
        return w_hat
    n = math.prod(w.shape[:-1])
    variance = tf.reduce_sum(tf.square(w_hat), axis=axes, keepdims=True) / (n - 1)
    return w_hat / tf.sqrt(variance + epsilon)


def bit_shift_scale(w_std: tf.Tensor) -> tf.Tensor:
    r"""Libra-PB's power-of-two scale per output channel, without gradient (IR-Net, Eq. 7).

    \\[
    s_o = 2^{\mathrm{round}\left(\log_2 \frac{1}{n} \sum |w_{std}|\right)}
    \\]

    A scale that is a power of two is a bit shift at inference. After standardization
    the mean magnitude is at most 1, so s is almost always 1 or 1/2.
    """
    axes = list(range(len(w_std.shape) - 1))
    mean_abs = tf.reduce_mean(tf.abs(w_std), axis=axes, keepdims=True)
    # A zero-variance filter has mean_abs == 0; keep log2 finite for it.
    mean_abs = tf.maximum(mean_abs, tf.keras.backend.epsilon())
    return tf.stop_gradient(2.0 ** tf.round(tf.math.log(mean_abs) / math.log(2.0)))


class _EDEQuantizer(lq.quantizers._BaseQuantizer):
    """Shared state of quantizers whose backward pass is EDE: t and k as variables.

    t and k are non-trainable `tf.Variable`s created in `build`; the gradient reads them
    when it runs, so `larq_irnet.callbacks.set_ede` (or `EDECallback`) changes the very
    next training step without retracing. They are weights of the layer that owns the
    quantizer, so `model.save`, `load_model` and `tf.train.Checkpoint` keep them.
    """

    precision = 1

    def __init__(self, t: float = 1.0, k: float | None = None, **kwargs):
        self._initial_k = ede_default_k(t) if k is None else float(k)
        self._initial_t = float(t)
        if not self._initial_k > 0:
            raise ValueError(f"EDE `k` must be > 0, got k={k!r}.")
        self.ede_t: tf.Variable | None = None
        self.ede_k: tf.Variable | None = None
        super().__init__(**kwargs)

    @property
    def uses_ede(self) -> bool:
        """Whether this quantizer's backward pass reads EDE's t and k."""
        return True

    def build(self, input_shape):
        if self.uses_ede:
            self.ede_t = self._ede_weight("ede_t", self._initial_t)
            self.ede_k = self._ede_weight("ede_k", self._initial_k)
        super().build(input_shape)

    def _ede_weight(self, name: str, value: float) -> tf.Variable:
        return self.add_weight(
            name=name,
            shape=(),
            dtype=tf.float32,
            initializer=tf.keras.initializers.Constant(value),
            trainable=False,
        )

    def set_ede(self, t: float, k: float) -> None:
        """Set t and k; before `build`, they become the values the variables start at."""
        if self.ede_t is None:
            self._initial_t, self._initial_k = float(t), float(k)
        else:
            self.ede_t.assign(t)
            self.ede_k.assign(k)

    @property
    def non_trainable_weights(self):
        # Larq's base class hides every non-trainable weight (the flip-ratio metric's
        # state); t and k must stay visible so that saving a model keeps them.
        return [v for v in (self.ede_t, self.ede_k) if v is not None]

    def get_config(self):
        return {**super().get_config(), "t": self._initial_t, "k": self._initial_k}


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
        t: initial sharpness t > 0 (a `tf.Variable`, later set by `EDECallback`).
        k: initial gain k > 0; default max(1/t, 1).
        metrics: Larq metrics to add, e.g. `["flip_ratio"]`; default from
            `larq.context.metrics_scope`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 10-11](https://arxiv.org/abs/1909.10788)
    """

    def call(self, inputs):
        outputs = ede_sign(inputs, self.ede_t, self.ede_k)
        return super().call(outputs)


@lq.utils.register_alias("libra_pb")
@lq.utils.register_keras_custom_object
class LibraPB(_EDEQuantizer):
    r"""Libra Parameter Binarization of weights (IR-Net), with EDE as its gradient.

    Per output channel o (the last kernel axis), over the filter's n entries:

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

    ```python
    lq.layers.QuantConv2D(64, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign")
    # the ablation rows of the paper's Table 2:
    LibraPB(standardize=False)  # Libra-PB without weight standardization
    LibraPB(bit_shift=False)    # Libra-PB without the bit-shift scale
    LibraPB(gradient="ste")     # Libra-PB with Larq's STE (clip 1) instead of EDE
    ```

    # Arguments
        gradient: `"ede"` (default, as the authors' code) or `"ste"`.
        standardize: divide by the per-channel std (else only balance the mean).
        bit_shift: multiply by the power-of-two scale s_o (else output +-1).
        epsilon: added to the variance under the root, so zero-variance filters stay
            finite (the authors' code has none).
        t: initial EDE sharpness t > 0 (with `gradient="ede"`).
        k: initial EDE gain k > 0; default max(1/t, 1).
        metrics: Larq metrics, e.g. `["flip_ratio"]` (computed on the signs).

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 5-7 and 10-11](
          https://arxiv.org/abs/1909.10788)
    """

    def __init__(
        self,
        gradient: str = "ede",
        standardize: bool = True,
        bit_shift: bool = True,
        epsilon: float = 1e-8,
        t: float = 1.0,
        k: float | None = None,
        **kwargs,
    ):
        if gradient not in _GRADIENTS:
            raise ValueError(f"`gradient` must be one of {_GRADIENTS}, got gradient={gradient!r}.")
        self.gradient = gradient
        self.standardize = bool(standardize)
        self.bit_shift = bool(bit_shift)
        if not epsilon >= 0:
            raise ValueError(f"`epsilon` must be >= 0, got epsilon={epsilon!r}.")
        self.epsilon = float(epsilon)
        super().__init__(t=t, k=k, **kwargs)

    @property
    def uses_ede(self) -> bool:
        """Whether this quantizer's backward pass reads EDE's t and k."""
        return self.gradient == "ede"

    def build(self, input_shape):
        fan_in = math.prod(input_shape[:-1])
        if len(input_shape) < 2 or fan_in < 2:
            raise ValueError(
                "LibraPB standardizes each output channel over the other kernel axes and "
                f"needs at least 2 entries per channel; got a kernel of shape {input_shape}."
            )
        super().build(input_shape)

    def call(self, inputs):
        w_std = libra_standardize(inputs, standardize=self.standardize, epsilon=self.epsilon)
        if self.uses_ede:
            binary = ede_sign(w_std, self.ede_t, self.ede_k)
        else:
            binary = lq.quantizers.ste_sign(w_std, clip_value=1.0)
        # Larq's flip-ratio metric counts sign flips; the scale would be cast away.
        super().call(binary)
        if not self.bit_shift:
            return binary
        return binary * bit_shift_scale(w_std)

    def get_config(self):
        return {
            **super().get_config(),
            "gradient": self.gradient,
            "standardize": self.standardize,
            "bit_shift": self.bit_shift,
            "epsilon": self.epsilon,
        }


class _StandardizedKernelsDoNotStarve(logging.Filter):
    """Drops Larq's "starved weights" warning for layers whose kernel quantizer is a
    standardizing `LibraPB`.

    Larq warns when a binary kernel quantizer comes without a `kernel_constraint`, because
    a clipped straight-through gradient stops for weights that drift out of [-1, 1]. Libra-PB
    binarizes the standardized kernel, whose values do not grow with |w|, and every weight
    also gets gradient through the filter's mean and std, so it needs no clipping (the
    authors' code clips none). Larq logs the warning from inside the layer's `__init__`,
    so the layer is found on the call stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "starved weights" not in record.getMessage():
            return True
        frame = sys._getframe()
        while frame is not None:
            quantizer = getattr(frame.f_locals.get("self"), "kernel_quantizer", None)
            if frame.f_code.co_name == "__init__" and quantizer is not None:
                return not (isinstance(quantizer, LibraPB) and quantizer.standardize)
            frame = frame.f_back
        return True


logging.getLogger("larq.layers_base").addFilter(_StandardizedKernelsDoNotStarve())
