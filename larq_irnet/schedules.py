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

A new schedule (DIR-Net's DTE next) is a new small class with `name`, `state_names`,
`__call__`, `applies_to` and `get_config`, and a function that validates and returns it.

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Eq. 11](https://arxiv.org/abs/1909.10788)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

from larq_irnet._validation import real
from larq_irnet.estimators import EDEState, ede_default_k

__all__ = ["EDESchedule", "Schedule", "ede_schedule", "ede_values"]


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
    t_min = real(t_min, "t_min", owner="ede_schedule", above=0.0)
    t_max = real(t_max, "t_max", owner="ede_schedule", above=t_min)
    return EDESchedule(t_min, t_max)
