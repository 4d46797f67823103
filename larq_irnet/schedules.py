r"""Schedules of the estimators' state, as data handed to `larq_irnet.callbacks.EstimatorScheduler`.

A schedule is a small object: `schedule(i, n)` gives the state values after `i` of `n`
epochs (or steps), `schedule.name` prefixes the logged keys (`ede_t`, `ede_k`) and
`schedule.applies_to(quantizer)` says which quantizers it drives. Like Keras'
`LearningRateScheduler(schedule)`, the callback holds no formula.

```python
from larq_irnet.callbacks import EstimatorScheduler
from larq_irnet.schedules import ede_schedule

model.fit(x, y, epochs=40, callbacks=[EstimatorScheduler(ede_schedule(0.1, 10.0))])
# the same as callbacks=[EDECallback(t_min=0.1, t_max=10.0)]
```

A new schedule is a new small class with `name`, `state_names`, `__call__`,
`applies_to` and `get_config`, and a function that validates and returns it, as
`dte_schedule` (DIR-Net's DTE, our design following the paper's description) is.

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Eq. 11](https://arxiv.org/abs/1909.10788)
- [Distribution-Sensitive Information Retention for Accurate Binary Neural Network
  (Qin et al., IJCV 2023), DTE](https://arxiv.org/abs/2109.12338)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

from larq_irnet._validation import is_integer, real
from larq_irnet.estimators import (
    DTE_BAND_FRACTION,
    DTE_EPSILON,
    DTE_STATE,
    EDEState,
    dte_band_width,
    dte_soft_at_band_edge,
    ede_default_k,
)

__all__ = [
    "DTESchedule",
    "EDESchedule",
    "Schedule",
    "dte_floor_epochs",
    "dte_schedule",
    "dte_values",
    "ede_schedule",
    "ede_values",
]


class Schedule(Protocol):
    """What `EstimatorScheduler` needs of a schedule."""

    name: str
    state_names: tuple[str, ...]

    def __call__(self, i: int, n: int) -> dict[str, float]: ...

    def applies_to(self, quantizer: Any) -> bool: ...

    def get_config(self) -> dict[str, Any]: ...


def ede_values(i: int, n: int, t_min: float, t_max: float) -> tuple[float, float]:
    r"""EDE's t and k after `i` of `n` epochs (or steps) (IR-Net, Eq. 11; authors' trainer).

    \\[
    t_i = T_{min} \cdot 10^{\frac{i}{N} \log_{10} \frac{T_{max}}{T_{min}}}, \qquad
    k_i = \max(1 / t_i, 1)
    \\]

    t grows geometrically from T_min at i = 0; the last epoch (i = N - 1) uses
    T_min (T_max / T_min)^((N-1)/N), just under T_max, as in the authors' code.
    """
    t = t_min * 10 ** ((i / n) * math.log10(t_max / t_min))
    return t, ede_default_k(t)


@dataclasses.dataclass(frozen=True)
class EDESchedule:
    """IR-Net's EDE schedule (`ede_values`) from `t_min` to `t_max`; see `ede_schedule`."""

    t_min: float
    t_max: float
    name: str = dataclasses.field(default="ede", init=False)
    state_names: tuple[str, ...] = dataclasses.field(default=("t", "k"), init=False)

    def __call__(self, i: int, n: int) -> dict[str, float]:
        t, k = ede_values(i, n, self.t_min, self.t_max)
        return {"t": t, "k": k}

    def applies_to(self, quantizer: Any) -> bool:
        """Whether `quantizer`'s backward pass is EDE."""
        return isinstance(quantizer, EDEState) and quantizer.uses_ede

    def get_config(self) -> dict[str, Any]:
        return {"t_min": self.t_min, "t_max": self.t_max}


def ede_schedule(t_min: float = 0.1, t_max: float = 10.0) -> EDESchedule:
    """EDE's schedule from `t_min` to `t_max` (IR-Net, Eq. 11).

    The paper states T_min = 0.1, T_max = 10 (the default here); the authors' CIFAR-10
    ResNet-20 1w1a script uses T_min = 1e-3, T_max = 10.

    # Arguments
        t_min: t at the start, a finite real number > 0.
        t_max: t approached at the end, finite, > t_min.

    # Raises
        ValueError: naming the argument and its value.
    """
    owner = "ede_schedule"
    t_min = real(t_min, "t_min", owner=owner, above=0.0, float32=True)
    t_max = real(t_max, "t_max", owner=owner, above=t_min, above_name="t_min", float32=True)
    return EDESchedule(t_min, t_max)


def dte_values(
    i: int,
    n: int,
    t_min: float,
    t_max: float,
    stage_split: float = 0.5,
    epsilon: float = DTE_EPSILON,
    band_fraction: float = DTE_BAND_FRACTION,
) -> dict[str, float]:
    r"""DTE's state after `i` of `n` epochs (or steps): our design, following the DIR-Net
    paper's description of two stages (Qin et al., IJCV 2023, arXiv 2109.12338).

    With progress \\(p = i / N\\) and \\(s\\) = `stage_split`:

    \\[
    \text{stage 1 } (p < s):\; t = T_{min}^{\,1 - p/s},\; k = 1/t,\; \beta = 0 \qquad
    \text{stage 2 } (p \ge s):\; t = T_{max}^{\,(p - s)/(1 - s)},\; k = 1,\; \beta = 1
    \\]

    Stage 1 (updating capability) grows t geometrically from T_min to 1 with k t = 1;
    stage 2 (accurate gradient) from 1 towards T_max, with the band on: epsilon and
    width b = `dte_band_width(band_fraction)` (`larq_irnet.estimators.dte_gradient`).
    t and k are continuous at the switch (t = k = 1). With T_min = 1/T_max and s = 0.5
    the t and k are EDE's (`ede_values`); DTE's own parts are sigma and the band.

    # Returns
        `{"t", "k", "band", "epsilon", "width"}` (`DTE_STATE`).
    """
    p = i / n
    if p < stage_split:
        t = t_min ** (1.0 - p / stage_split)
        return {
            "t": t,
            "k": 1.0 / t,
            "band": 0.0,
            "epsilon": epsilon,
            "width": dte_band_width(band_fraction),
        }
    t = t_max ** ((p - stage_split) / (1.0 - stage_split))
    return {
        "t": t,
        "k": 1.0,
        "band": 1.0,
        "epsilon": epsilon,
        "width": dte_band_width(band_fraction),
    }


def dte_floor_epochs(
    n: int,
    t_min: float,
    t_max: float,
    stage_split: float = 0.5,
    epsilon: float = DTE_EPSILON,
    band_fraction: float = DTE_BAND_FRACTION,
) -> list[int]:
    """The epochs (0-based, of `n` with DTE's state updated once per epoch, as
    `DTECallback` does by default) in which DTE's band floor changes a gradient.

    The floor binds when the band is on and epsilon exceeds the soft derivative at the
    band's edge (`larq_irnet.estimators.dte_soft_at_band_edge`); in the other epochs
    DTE trains exactly as it would with epsilon = 0. E.g. the default floor (epsilon 0.1,
    band fraction 0.25, b = 0.319) binds only once t exceeds 9.28, where the edge's soft
    derivative falls below 0.1: with T_max = 10 and s = 0.5 that is the last 1.6% of
    training, and no epoch of a 10-epoch run (its last has t = 6.31, edge 0.44).

    # Raises
        ValueError: `n` not an integer >= 1.
    """
    if not (is_integer(n) and n >= 1):
        raise ValueError(f"dte_floor_epochs: `n` must be an integer >= 1, got n={n!r}.")
    out = []
    for i in range(int(n)):
        state = dte_values(i, n, t_min, t_max, stage_split, epsilon, band_fraction)
        edge = float(dte_soft_at_band_edge(state["t"], state["k"], state["width"]))
        if state["band"] * state["epsilon"] > edge:
            out.append(i)
    return out


@dataclasses.dataclass(frozen=True)
class DTESchedule:
    """DIR-Net's two-stage DTE schedule (`dte_values`); see `dte_schedule`."""

    t_min: float
    t_max: float
    stage_split: float = 0.5
    epsilon: float = DTE_EPSILON
    band_fraction: float = DTE_BAND_FRACTION
    name: str = dataclasses.field(default="dte", init=False)
    state_names: tuple[str, ...] = dataclasses.field(default=DTE_STATE, init=False)

    def __call__(self, i: int, n: int) -> dict[str, float]:
        return dte_values(
            i, n, self.t_min, self.t_max, self.stage_split, self.epsilon, self.band_fraction
        )

    def applies_to(self, quantizer: Any) -> bool:
        """Whether `quantizer`'s backward pass is DTE."""
        return bool(getattr(quantizer, "uses_dte", False))

    def get_config(self) -> dict[str, Any]:
        return {
            "t_min": self.t_min,
            "t_max": self.t_max,
            "stage_split": self.stage_split,
            "epsilon": self.epsilon,
            "band_fraction": self.band_fraction,
        }


def dte_schedule(
    t_min: float = 0.1,
    t_max: float = 10.0,
    stage_split: float = 0.5,
    epsilon: float = DTE_EPSILON,
    band_fraction: float = DTE_BAND_FRACTION,
) -> DTESchedule:
    """DTE's two-stage schedule (`dte_values`), validated: our design, following the
    DIR-Net paper's description (Qin et al., IJCV 2023, arXiv 2109.12338).

    # Arguments
        t_min: t at the start, in (0, 1] (stage 1 raises it to 1).
        t_max: t approached at the end, > 1 (stage 2 raises it from 1).
        stage_split: the fraction of training in stage 1, in [0, 1).
        epsilon: the minimum gradient inside the band in stage 2, >= 0.
        band_fraction: the fraction of a standardized Gaussian input inside the band,
            in (0, 1).

    # Raises
        ValueError: naming the argument and its value.
    """
    owner = "dte_schedule"
    t_min = real(t_min, "t_min", owner=owner, above=0.0, float32=True)
    if t_min > 1.0:
        raise ValueError(f"{owner}: `t_min` must be <= 1.0, got t_min={t_min!r}.")
    t_max = real(t_max, "t_max", owner=owner, above=1.0, float32=True)
    split = real(stage_split, "stage_split", owner=owner)
    if not 0.0 <= split < 1.0:
        raise ValueError(
            f"{owner}: `stage_split` must be in [0, 1), got stage_split={stage_split!r}."
        )
    epsilon = real(epsilon, "epsilon", owner=owner, float32=True)
    if epsilon < 0:
        raise ValueError(f"{owner}: `epsilon` must be >= 0, got epsilon={epsilon!r}.")
    band_fraction = real(band_fraction, "band_fraction", owner=owner, above=0.0)
    if not band_fraction < 1.0:
        raise ValueError(
            f"{owner}: `band_fraction` must be < 1.0, got band_fraction={band_fraction!r}."
        )
    return DTESchedule(t_min, t_max, split, epsilon, band_fraction)
