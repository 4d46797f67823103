"""The weights the package ships, by name, with a sha256 check before loading.

Every model of `larq_irnet.zoo` takes `weights=`: `None` (random initialization), the
path of a Keras weights file (`.h5`, as written by `model.save_weights`), or the name of
an entry of `WEIGHTS`. An entry says which model function the weights fit, the file under
`larq_irnet/zoo/weights/`, its sha256, and the model arguments they were trained with;
asking for them with other arguments is an error that names the argument.

```python
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import WEIGHTS

print(sorted(WEIGHTS))  # the names that can be passed as `weights=`
model = IRNetResNet20(weights="/path/to/my_weights.h5")
```

Adding weights: save them with `model.save_weights("zoo/weights/<file>.h5")`, compute
`sha256sum(path)`, and add a `WeightsEntry` to `WEIGHTS` with the arguments the model was
built with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "WEIGHTS",
    "WEIGHTS_DIR",
    "WeightsEntry",
    "check_fits",
    "get_entry",
    "resolve_weights",
    "sha256sum",
    "verified_path",
]

WEIGHTS_DIR = Path(__file__).resolve().with_name("weights")
"""Where the shipped weight files live (installed as package data)."""

_WEIGHT_SUFFIXES = (".h5", ".hdf5", ".keras")


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """One set of shipped weights.

    # Arguments
        model: name of the model function they fit, e.g. `"IRNetResNet20"`.
        filename: file name inside `WEIGHTS_DIR`.
        sha256: hex digest of the file, checked before every load.
        kwargs: the model arguments the weights were trained with, e.g.
            `{"input_shape": (28, 28, 1), "num_classes": 10, "bits": "1w1a"}`; arguments
            not listed are not checked. `num_classes` is not checked when
            `include_top=False`.
        description: what the weights are (data set, accuracy, how they were trained).
    """

    model: str
    filename: str
    sha256: str
    kwargs: Mapping[str, Any]
    description: str = ""


WEIGHTS: dict[str, WeightsEntry] = {
    "fashion_mnist": WeightsEntry(
        model="IRNetResNet20",
        filename="irnet_resnet20_fashion_mnist.h5",
        sha256="16c3db16b2698e0bb0133f56b7b84b6a2991b19c7624bcc73833679440142af8",
        kwargs={
            "input_shape": (28, 28, 1),
            "num_classes": 10,
            "structure": "bireal",
            "bits": "1w1a",
            "binarization": "irnet",
            "pad_values": 1.0,
        },
        description=(
            "IR-Net ResNet-20 (Bi-Real, 1w1a) on Fashion-MNIST, raw 0-255 pixels in: "
            "87.84% top-1 on the full 10,000-image test set (final epoch; 87.85% converted "
            "through LCE). Recipe fashion_mnist-resnet20-1w1a, seed 0, all 10 epochs "
            "(benchmarks/ablation.py, row irnet-seed0)."
        ),
    ),
}
"""Registered weights by name."""


def sha256sum(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _known() -> str:
    if not WEIGHTS:
        return "no weights are registered yet"
    names = ", ".join(f"{name!r} ({entry.model})" for name, entry in sorted(WEIGHTS.items()))
    return f"registered weights: {names}"


def get_entry(name: str) -> WeightsEntry:
    """The registry entry called `name`; a ValueError listing the known names otherwise."""
    try:
        return WEIGHTS[name]
    except KeyError:
        raise ValueError(f"Unknown weights name {name!r}; {_known()}.") from None


def verified_path(name: str) -> Path:
    """The file of registered weights `name`, after checking it exists and its sha256.

    # Raises
        ValueError: unknown name, or the file's sha256 differs from the registered one.
        FileNotFoundError: the registered file is missing.
    """
    entry = get_entry(name)
    path = WEIGHTS_DIR / entry.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights {name!r} are registered as {path}, but that file does not exist "
            "(was the package installed with its package data?)."
        )
    actual = sha256sum(path)
    if actual != entry.sha256:
        raise ValueError(
            f"Weights {name!r}: {path} has sha256 {actual}, expected {entry.sha256}; the "
            "file is corrupt or was replaced without updating the registry."
        )
    return path


def resolve_weights(weights: str | os.PathLike | None) -> tuple[Path | None, WeightsEntry | None]:
    """Turn a model's `weights=` argument into (file to load, registry entry or None).

    A registered name is checked (existence, sha256); any other value must be the path
    of an existing file.

    # Raises
        ValueError: a string that is neither registered nor a path.
        FileNotFoundError: a path (or registered file) that does not exist.
        TypeError: `weights` is not None, a string or a path.
    """
    if weights is None:
        return None, None
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "`weights` must be None, the path of a weights file or a registered name, got "
            f"weights={weights!r} of type {type(weights).__name__}."
        )
    if isinstance(weights, str) and weights in WEIGHTS:
        return verified_path(weights), WEIGHTS[weights]
    path = Path(weights)
    if path.is_file():
        return path, None
    text = os.fspath(weights)
    if isinstance(weights, os.PathLike) or os.sep in text or text.endswith(_WEIGHT_SUFFIXES):
        raise FileNotFoundError(f"`weights` file {text} does not exist.")
    raise ValueError(
        f"`weights` must be None, the path of a weights file or a registered name; "
        f"{text!r} is neither an existing file nor registered ({_known()})."
    )


def _normalize(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_normalize(v) for v in value)
    return value


def check_fits(
    entry: WeightsEntry, *, model: str, arguments: Mapping[str, Any], include_top: bool
) -> None:
    """Raise a ValueError unless `entry`'s weights fit `model` built with `arguments`.

    # Arguments
        entry: the registry entry.
        model: name of the model function being built.
        arguments: that function's resolved arguments (defaults filled in).
        include_top: whether the classifier is built (else `num_classes` is free).
    """
    if entry.model != model:
        raise ValueError(f"These weights are for {entry.model}, not {model}.")
    for key, expected in entry.kwargs.items():
        if key == "num_classes" and not include_top:
            continue
        if key not in arguments:
            raise ValueError(f"Registered weights name argument {key!r}, which {model} lacks.")
        if _normalize(arguments[key]) != _normalize(expected):
            raise ValueError(
                f"The weights fit {model}({key}={expected!r}), got {key}={arguments[key]!r}."
            )
