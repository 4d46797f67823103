"""Argument checks shared by the public constructors: one wording for every message."""

from __future__ import annotations

import math
import numbers
from typing import Any


def real(value: Any, name: str, *, owner: str = "", above: float | None = None) -> float:
    """`value` as a finite float, or a ValueError naming `name` and the value.

    Any real number type is accepted (Python and NumPy ints and floats), `bool` is not.
    With `above`, the value must be strictly greater.
    """
    prefix = f"{owner}: " if owner else ""
    bound = "" if above is None else f" > {above!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{prefix}`{name}` must be a real number{bound}, got {name}={value!r}.")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{prefix}`{name}` must be finite{bound}, got {name}={value!r}.")
    if above is not None and not result > above:
        raise ValueError(f"{prefix}`{name}` must be{bound}, got {name}={value!r}.")
    return result
