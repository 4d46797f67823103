"""Argument checks shared by the public constructors and the command lines (numbers,
CLI integers, output paths): one wording for every message."""

from __future__ import annotations

import argparse
import math
import numbers
import os
from pathlib import Path
from typing import Any


def first_line(error: BaseException) -> str:
    """An error's message as one line (its first), or its type's name if it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


#: float32's largest finite value and its smallest normal one (numpy.finfo(float32)).
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38


def is_integer(value: Any) -> bool:
    """Whether `value` is an integer of any type (Python or NumPy); `bool` is not one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether `value` is a real number of any type (Python or NumPy ints and floats);
    `bool` is not one."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(
    value: Any,
    name: str,
    *,
    owner: str = "",
    above: float | None = None,
    above_name: str | None = None,
    float32: bool = False,
) -> float:
    """`value` as a finite float, or a ValueError naming `name` and the value.

    Any real number type is accepted (Python and NumPy ints and floats), `bool` is not.
    With `above`, the value must be strictly greater; `above_name` names where that bound
    comes from (another argument), so the message reads "> t_min (10.0)". With
    `float32`, it must be 0 or of a magnitude float32 holds as a normal number
    (`FLOAT32_TINY` to `FLOAT32_MAX`): the estimators' state is float32, and 1/t of
    such a t is finite too.
    """
    prefix = f"{owner}: " if owner else ""
    if above is None:
        bound = ""
    elif above_name is not None:
        bound = f" > {above_name} ({above!r})"
    else:
        bound = f" > {above!r}"
    if not is_real(value):
        raise ValueError(f"{prefix}`{name}` must be a real number{bound}, got {name}={value!r}.")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{prefix}`{name}` must be finite{bound}, got {name}={value!r}.")
    if above is not None and not result > above:
        raise ValueError(f"{prefix}`{name}` must be{bound}, got {name}={value!r}.")
    if float32 and result != 0 and not FLOAT32_TINY <= abs(result) <= FLOAT32_MAX:
        raise ValueError(
            f"{prefix}`{name}` must be 0 or of a magnitude from {FLOAT32_TINY:.4g} to "
            f"{FLOAT32_MAX:.4g} (float32's normal numbers: the estimators' state is "
            f"float32), got {name}={value!r}."
        )
    return result


def int_argument(text: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An argparse `type` for an integer in [minimum, maximum]; the error says the range.

    argparse prefixes the message with the option (`argument --layers: ...`).
    """
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            expected = f"an integer from {minimum} to {maximum}"
        elif minimum == 1:
            expected = "a positive integer"
        else:
            expected = f"an integer >= {minimum}"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int_argument(text: str) -> int:
    """An argparse `type` for an integer >= 1."""
    return int_argument(text)


def non_negative_int_argument(text: str) -> int:
    """An argparse `type` for an integer >= 0."""
    return int_argument(text, minimum=0)


def check_output_path(path: str | os.PathLike, what: str) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    # Arguments
        path: the file to be written (atomically: a temporary file beside it, renamed).
        what: what the file is, for the message (`"--report"`, ...).

    # Raises
        ValueError: one line naming `path` and what was expected: it is a directory,
            its parent is missing or not a directory, or the parent is not writable.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a directory; expected a file path")
    if not parent.exists():
        raise ValueError(f"{what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: directory {parent} is not writable")
