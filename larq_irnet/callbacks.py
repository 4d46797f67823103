r"""Callbacks for IR-Net and DIR-Net training: EDE's and DTE's schedules and the paper's
information diagnostics.

```python
model.fit(x, y, epochs=40, callbacks=[larq_irnet.EDECallback(t_min=0.1, t_max=10.0)])
```
"""

from __future__ import annotations

import warnings

from larq_irnet._validation import is_integer, real
from larq_irnet.estimators import DTE_BAND_FRACTION, DTE_EPSILON, ede_default_k
from larq_irnet.information import (
    binarized_kernels,
    flip_ratio,
    quantization_error,
    sign_entropy,
)
from larq_irnet.layers import binarized_weights, model_quantizers
from larq_irnet.schedules import Schedule, dte_schedule, ede_schedule

import numpy as np
import tensorflow as tf

__all__ = [
    "DTECallback",
    "EDECallback",
    "EstimatorScheduler",
    "InformationDiagnostics",
    "dte_quantizers",
    "ede_quantizers",
    "set_ede",
]

_UPDATE_FREQS = ("epoch", "step")


def ede_quantizers(model: tf.Module) -> list:
    """Every quantizer in `model` (nested layers and models included) whose gradient is EDE.

    Found by `larq_irnet.layers.model_quantizers`, in layer order.
    """
    return [q for q in model_quantizers(model) if getattr(q, "uses_ede", False)]


def dte_quantizers(model: tf.Module) -> list:
    """Every quantizer in `model` (nested layers and models included) whose gradient is DTE."""
    return [q for q in model_quantizers(model) if getattr(q, "uses_dte", False)]


def set_ede(model: tf.Module, t: float, k: float | None = None) -> int:
    """Set EDE's t (and k, default max(1/t, 1)) on every EDE quantizer of `model`.

    The quantizers read t and k as variables inside the traced training step, so the
    next step uses the new values with no retracing.

    # Arguments
        model: a Keras model or layer; nested models and layers are searched.
        t: EDE sharpness, a finite real number > 0.
        k: EDE gain, a finite real number > 0; default max(1/t, 1).

    # Returns
        The number of quantizers set.

    # Raises
        ValueError: `t` or `k` not a finite real number > 0.
    """
    t = real(t, "t", owner="set_ede", above=0.0, float32=True)
    k = ede_default_k(t) if k is None else real(k, "k", owner="set_ede", above=0.0, float32=True)
    quantizers = ede_quantizers(model)
    for quantizer in quantizers:
        quantizer.set_ede(t, k)
    return len(quantizers)


class EstimatorScheduler(tf.keras.callbacks.Callback):
    """Sets the state of the model's scheduled estimators from `schedule` during `fit`.

    At the start of every epoch (or step, with `update_freq="step"`) it computes
    `schedule(i, n)`, with i the number of epochs (or optimizer steps) done and n the
    total, and sets the values on every quantizer of the model that
    `schedule.applies_to`. Because i counts from the model's own state (the epoch `fit`
    starts at, or the optimizer's step counter), a resumed run continues the schedule.
    Each epoch it writes `<schedule.name>_<state>` (e.g. `ede_t`, `ede_k`) into `logs`, so
    `History`, `CSVLogger` and `TensorBoard` show them: list it before those callbacks.

    ```python
    model.fit(x, y, epochs=40, callbacks=[EstimatorScheduler(ede_schedule(0.1, 10.0))])
    ```

    # Arguments
        schedule: a `larq_irnet.schedules.Schedule`, e.g. `ede_schedule(...)`.
        update_freq: `"epoch"` (as the authors' trainers) or `"step"` (a model
            compiled with `steps_per_execution=1`, Keras' default).
        total: n; default the `epochs` given to `fit` (times its steps per epoch for
            `update_freq="step"`).

    # Raises
        ValueError: bad arguments (named with their value); at `fit`, a model without
            a quantizer the schedule applies to, or `update_freq="step"` with a model
            compiled with `steps_per_execution` > 1 (or `"auto"`): the callback runs
            once per execution, so the steps after its first would keep a stale state.
    """

    def __init__(self, schedule: Schedule, update_freq: str = "epoch", total: int | None = None):
        super().__init__()
        owner = type(self).__name__
        if update_freq not in _UPDATE_FREQS:
            raise ValueError(
                f"{owner}: `update_freq` must be one of {_UPDATE_FREQS}, "
                f"got update_freq={update_freq!r}."
            )
        if total is not None and not (is_integer(total) and total > 0):
            raise ValueError(f"{owner}: `total` must be a positive integer, got total={total!r}.")
        self.schedule = schedule
        self.update_freq = update_freq
        self.total = None if total is None else int(total)  # NumPy integers too
        self.values: dict[str, float] = {}
        self._quantizers: list = []
        self._n: int | None = None

    @property
    def t(self) -> float | None:
        """The t last set (every estimator's schedule sets one), None before the first epoch."""
        return self.values.get("t")

    @property
    def k(self) -> float | None:
        """The k last set, None before the first epoch."""
        return self.values.get("k")

    def on_train_begin(self, logs=None):
        self._quantizers = [q for q in model_quantizers(self.model) if self.schedule.applies_to(q)]
        if not self._quantizers:
            raise ValueError(self._no_quantizer_message())
        if self.update_freq == "step":
            self._check_one_step_per_execution()
        self._n = self.total or self._total_from_params()

    def _check_one_step_per_execution(self) -> None:
        # Keras calls on_train_batch_begin once per execution: with several steps in one,
        # the steps after the first would run with a stale state.
        variable = getattr(self.model, "steps_per_execution", None)
        steps = 1 if variable is None else int(variable.numpy())
        autotune = getattr(self.model, "autotune_steps_per_execution", False)
        if steps > 1 or autotune:
            got = "steps_per_execution='auto'" if autotune else f"steps_per_execution={steps}"
            raise ValueError(
                f"{type(self).__name__}: update_freq='step' sets the state before every "
                f"step, but the model was compiled with {got}, and Keras calls callbacks "
                "only before the first step of each execution; compile with "
                "steps_per_execution=1, or use update_freq='epoch'."
            )

    def _no_quantizer_message(self) -> str:
        return (
            f"{type(self).__name__}: the model has no quantizer that the "
            f"{self.schedule.name!r} schedule applies to."
        )

    def _total_from_params(self) -> int:
        epochs = self.params.get("epochs")
        if self.update_freq == "epoch":
            return epochs
        steps = self.params.get("steps")
        if not steps:
            raise ValueError(
                f"{type(self).__name__}: update_freq='step' needs `total=` when fit does "
                "not know its steps per epoch (pass steps_per_epoch= or total=)."
            )
        return epochs * steps

    def _anneal(self, i: int) -> None:
        self.values = self.schedule(i, self._n)
        for quantizer in self._quantizers:
            quantizer.set_state(**self.values)

    def on_epoch_begin(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._anneal(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self.update_freq == "step":
            self._anneal(int(self.model.optimizer.iterations.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"{self.schedule.name}_{k}": v for k, v in self.values.items()})

    def get_config(self) -> dict:
        """The callback's arguments, for logging and recreating it."""
        return {
            "schedule": self.schedule.get_config(),
            "update_freq": self.update_freq,
            "total": self.total,
        }


class EDECallback(EstimatorScheduler):
    r"""Anneals EDE's t from `t_min` to `t_max` (and k = max(1/t, 1)) during `fit`.

    `EstimatorScheduler(ede_schedule(t_min, t_max), ...)` under its friendly name:

    \\[
    t = T_{min} \cdot 10^{\frac{i}{N} \log_{10} \frac{T_{max}}{T_{min}}}, \qquad
    k = \max(1/t, 1)
    \\]

    with i the number of epochs (or optimizer steps) done and N the total. Because i
    counts from the model's own state (the epoch `fit` starts at, or the optimizer's
    step counter), a resumed run (`initial_epoch=...`) continues the schedule.

    Each epoch it writes `ede_t` and `ede_k` into `logs`, so `History`, `CSVLogger` and
    `TensorBoard` show them: list it before those callbacks.

    The paper states T_min = 0.1, T_max = 10 (the default here); the authors' CIFAR-10
    ResNet-20 1w1a script uses T_min = 1e-3, T_max = 10.

    ```python
    model.fit(x, y, epochs=100, callbacks=[EDECallback(t_min=1e-3, t_max=10.0)])
    ```

    # Arguments
        t_min: t at the start, a finite real number > 0 (NumPy scalars accepted).
        t_max: t approached at the end, finite, > t_min.
        update_freq: `"epoch"` (as the authors' trainers) or `"step"` (a model
            compiled with `steps_per_execution=1`, Keras' default).
        total: N; default the `epochs` given to `fit` (times its steps per epoch for
            `update_freq="step"`).

    # Raises
        ValueError: a bad argument, naming it and its value; at `fit`, as
            `EstimatorScheduler` (no EDE quantizer, or `update_freq="step"` with
            `steps_per_execution` > 1).

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Eq. 11](https://arxiv.org/abs/1909.10788)
    """

    def __init__(
        self,
        t_min: float = 0.1,
        t_max: float = 10.0,
        update_freq: str = "epoch",
        total: int | None = None,
    ):
        owner = "EDECallback"
        t_min = real(t_min, "t_min", owner=owner, above=0.0, float32=True)
        t_max = real(t_max, "t_max", owner=owner, above=t_min, above_name="t_min", float32=True)
        super().__init__(ede_schedule(t_min, t_max), update_freq=update_freq, total=total)
        self.t_min = t_min
        self.t_max = t_max

    def _no_quantizer_message(self) -> str:
        message = (
            "EDECallback: the model has no quantizer with an EDE gradient; use "
            '"ede_sign" or "libra_pb" as input_quantizer/kernel_quantizer'
        )
        if dte_quantizers(self.model):  # e.g. irnetify(model, method="dirnet")
            return f"{message}, or larq_irnet.DTECallback for its DTE quantizers."
        return f"{message}."

    def get_config(self) -> dict:
        """The callback's arguments, for logging and recreating it."""
        return {
            "t_min": self.t_min,
            "t_max": self.t_max,
            "update_freq": self.update_freq,
            "total": self.total,
        }


class DTECallback(EstimatorScheduler):
    r"""Runs DIR-Net's two-stage DTE schedule during `fit`: our design, following the
    DIR-Net paper's description (Qin et al., IJCV 2023, arXiv 2109.12338).

    `EstimatorScheduler(dte_schedule(...), ...)` under its friendly name. With i the
    number of epochs (or optimizer steps) done, N the total, p = i/N and s =
    `stage_split` (`larq_irnet.schedules.dte_values`):

    \\[
    p < s:\; t = T_{min}^{\,1 - p/s},\; k = 1/t,\; \text{no band} \qquad
    p \ge s:\; t = T_{max}^{\,(p - s)/(1 - s)},\; k = 1,\; \text{band on}
    \\]

    Because i counts from the model's own state (the epoch `fit` starts at, or the
    optimizer's step counter), a resumed run continues the schedule.

    Each epoch it writes into `logs` (list it before `CSVLogger`/`TensorBoard`):
    `dte_t`, `dte_k`, `dte_band` (0 in stage 1, 1 in stage 2), `dte_epsilon`,
    `dte_width` (the band's half-width b in units of sigma) and `dte_in_band`: the
    fraction of the binarized weights driven by DTE whose binarizer input lies inside
    the band (\\(|w_{std}| \le b\\)), computed at the epoch's end from the latent
    weights (`larq_irnet.layers.binarized_weights`). Activations' fraction is not
    logged: measuring it would need state updated in the forward pass; for
    Gaussian-like activations it is `band_fraction` by construction.

    ```python
    model.fit(x, y, epochs=100, callbacks=[DTECallback(t_min=0.1, t_max=10.0)])
    ```

    # Arguments
        t_min: t at the start, in (0, 1].
        t_max: t approached at the end, > 1.
        stage_split: fraction of training in stage 1, in [0, 1).
        epsilon: minimum gradient inside the band in stage 2, >= 0.
        band_fraction: fraction of a standardized Gaussian input inside the band, in
            (0, 1).
        update_freq: `"epoch"` or `"step"` (a model compiled with
            `steps_per_execution=1`, Keras' default).
        total: N; default the `epochs` given to `fit` (times its steps per epoch for
            `update_freq="step"`).

    # Raises
        ValueError: a bad argument, naming it and its value; at `fit`, a model without
            a DTE quantizer, or `update_freq="step"` with `steps_per_execution` > 1.

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023), DTE](https://arxiv.org/abs/2109.12338)
    """

    def __init__(
        self,
        t_min: float = 0.1,
        t_max: float = 10.0,
        stage_split: float = 0.5,
        epsilon: float = DTE_EPSILON,
        band_fraction: float = DTE_BAND_FRACTION,
        update_freq: str = "epoch",
        total: int | None = None,
    ):
        schedule = dte_schedule(t_min, t_max, stage_split, epsilon, band_fraction)
        super().__init__(schedule, update_freq=update_freq, total=total)
        self.in_band: float | None = None

    def _no_quantizer_message(self) -> str:
        return (
            "DTECallback: the model has no quantizer with a DTE gradient; use "
            '"dte_sign", "imb", "imb_sign" or LibraPB(gradient="dte").'
        )

    def band_fraction_of_weights(self) -> float | None:
        """The fraction of DTE-driven binarized weights inside the band, None if none."""
        inside, total = 0.0, 0
        for found in binarized_weights(self.model):
            if not self.schedule.applies_to(found.quantizer):
                continue
            latent = getattr(found.variable, "latent_variable", found.variable)
            size = int(np.prod(latent.shape))
            inside += found.quantizer.in_band_fraction(tf.convert_to_tensor(latent)) * size
            total += size
        return inside / total if total else None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.in_band = self.band_fraction_of_weights()
        if logs is not None and self.in_band is not None:
            logs["dte_in_band"] = self.in_band

    def get_config(self) -> dict:
        """The callback's arguments, for logging and recreating it."""
        return {
            **self.schedule.get_config(),
            "update_freq": self.update_freq,
            "total": self.total,
        }


class InformationDiagnostics(tf.keras.callbacks.Callback):
    r"""Logs IR-Net's information measures of every binarized layer, once per epoch.

    For each binarized weight (a Larq layer whose kernel quantizer has precision 1), at
    the end of every epoch, from its current weights w, the quantizer's own
    \\(w_{std}\\) (`larq_irnet.information.standardized_kernel`) and its output Q(w):

    - `entropy/<layer>`: entropy in bits of the binary weights per output channel,
      averaged over channels, \\(\frac{1}{C}\sum_o H(p_o)\\) with
      \\(H(p) = -p \log_2 p - (1-p) \log_2 (1-p)\\) and p the fraction of +1
      (`sign_entropy`); 1.0 = balanced. Libra-PB keeps it at ~1.0.
    - `kernel_entropy/<layer>`: the same over the whole kernel, \\(H(p)\\).
    - `qerror/<layer>`: \\(\lVert w_{std} - Q(w) \rVert^2 / n\\) (`quantization_error`).
    - `flip_ratio/<layer>`: the fraction of binary weights whose sign changed since the
      previous epoch's end (in the first epoch: since training began).
    - `entropy_mean`, `kernel_entropy_mean`, `qerror_mean`, `flip_ratio_mean`: unweighted
      means over the layers (each layer counts once, as in the paper's per-layer view).

    The values go into `logs`, so `History`, `CSVLogger` and `TensorBoard` record them:
    list this callback before those. It costs one eager forward pass of each kernel
    quantizer and some NumPy per epoch, nothing inside the training step; under
    `tf.distribute` it reads replica 0's weights (all replicas hold the same). A model
    without binarized weights logs nothing, with a warning.

    ```python
    model.fit(x, y, epochs=40, callbacks=[
        EDECallback(), InformationDiagnostics(), tf.keras.callbacks.CSVLogger("history.csv")
    ])
    ```

    # Arguments
        per_layer: log the per-layer keys; with False only the four means.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020), Sec. 3.1](https://arxiv.org/abs/1909.10788)
    """

    def __init__(self, per_layer: bool = True):
        super().__init__()
        self.per_layer = bool(per_layer)
        self.latest: dict[str, float] = {}
        self._kernels: list = []
        self._previous_signs: dict[str, np.ndarray] = {}

    def on_train_begin(self, logs=None):
        self._kernels = binarized_kernels(self.model)
        if not self._kernels:
            warnings.warn(
                "InformationDiagnostics: the model has no binarized weights (no Larq layer "
                "with a precision-1 kernel quantizer); nothing will be logged.",
                stacklevel=2,
            )
        self._previous_signs = {k.name: k.quantize(k.value()) > 0 for k in self._kernels}

    def on_epoch_end(self, epoch, logs=None):
        per_measure: dict[str, dict[str, float]] = {
            "entropy": {},
            "kernel_entropy": {},
            "qerror": {},
            "flip_ratio": {},
        }
        for kernel in self._kernels:
            _, w_std, binary = kernel.arrays()
            signs = binary > 0
            per_measure["entropy"][kernel.name] = sign_entropy(
                binary, per_channel=True, channel_axes=kernel.channel_axes
            )
            per_measure["kernel_entropy"][kernel.name] = sign_entropy(binary, per_channel=False)
            per_measure["qerror"][kernel.name] = quantization_error(w_std, binary)
            previous = self._previous_signs[kernel.name]
            per_measure["flip_ratio"][kernel.name] = flip_ratio(previous, signs)
            self._previous_signs[kernel.name] = signs
        self.latest = {}
        for measure, per_layer in per_measure.items():
            if not per_layer:
                continue
            if self.per_layer:
                self.latest.update({f"{measure}/{name}": v for name, v in per_layer.items()})
            self.latest[f"{measure}_mean"] = float(np.mean(list(per_layer.values())))
        if logs is not None:
            logs.update(self.latest)

    def get_config(self) -> dict:
        """The callback's arguments, for logging and recreating it."""
        return {"per_layer": self.per_layer}
