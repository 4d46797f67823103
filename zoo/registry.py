"""The weights the package ships, by name, with a sha256 check before loading.

Every model of `larq_irnet.zoo` takes `weights=`: `None` (random initialization), the
path of a Keras weights file (`.h5`, as written by `model.save_weights`), or the name of
an entry of `WEIGHTS`. A name holds one or more variants, `WeightsEntry`s that differ by
`kwargs["binarization"]` (e.g. the IR-Net model of a data set and its full-precision
teacher): the model loads the variant of its own `binarization=`. An entry says which
model function the weights fit, the file under `larq_irnet/zoo/weights/`, its sha256, and
the model arguments they were trained with; asking for them with other arguments is an
error that names the argument.

```python
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import WEIGHTS

print(sorted(WEIGHTS))  # the names that can be passed as `weights=`
model = IRNetResNet20(weights="/path/to/my_weights.h5")
# The variant of "fashion_mnist" for the model's binarization, here the default "irnet":
model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
```

Adding weights: save them with `model.save_weights("zoo/weights/<file>.h5")`, compute
`sha256sum(path)`, and add a `WeightsEntry` with the arguments the model was built with
(`binarization` among them) to the tuple of its name in `WEIGHTS`, a new name or an
existing one (another binarization of the same model). The variants of a name differ by
binarization; the first is the name's default (`get_entry(name)`, `verified_path(name)`)
and should be the one the model's default `binarization` loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "WEIGHTS",
    "WEIGHTS_DIR",
    "WeightsEntry",
    "check_fits",
    "get_entry",
    "registered_as",
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
            `include_top=False`. `binarization` tells the variants of one name apart
            (an entry without it fits any binarization).
        description: one line saying how the weights were trained (data, recipe, seed).
    """

    model: str
    filename: str
    sha256: str
    kwargs: Mapping[str, Any]
    description: str = ""

    @property
    def binarization(self) -> str | None:
        """`kwargs["binarization"]`, which tells a name's variants apart (None: any fits)."""
        return self.kwargs.get("binarization")


#: The model arguments of every Fashion-MNIST ResNet-20 below (the recipe
#: `fashion_mnist-resnet20-1w1a`'s model); the variants differ by `binarization`.
_FASHION_MNIST_RESNET20 = {
    "input_shape": (28, 28, 1),
    "num_classes": 10,
    "structure": "bireal",
    "bits": "1w1a",
    "pad_values": 1.0,
}

WEIGHTS: dict[str, tuple[WeightsEntry, ...]] = {
    "fashion_mnist": (
        WeightsEntry(
            model="IRNetResNet20",
            filename="irnet_resnet20_fashion_mnist.h5",
            sha256="13f7644a862b177ffd4937cf9bfccfbdef0b113edb7dbd9057be475670962c53",
            kwargs={**_FASHION_MNIST_RESNET20, "binarization": "irnet"},
            description=(
                "Fashion-MNIST, raw 0-255 pixels; Adam 2.5e-2, cosine decay, weight decay "
                "1e-4 (latent weights too), seed 0, 10 epochs."
            ),
        ),
        WeightsEntry(
            model="IRNetResNet20",
            filename="fp_resnet20_fashion_mnist.h5",
            sha256="efe1a90bdef4638801e9c7d939ec9249b85b2b637b409a6a4b21c2989e35abe4",
            kwargs={**_FASHION_MNIST_RESNET20, "binarization": "fp"},
            description=(
                "Fashion-MNIST, raw 0-255 pixels; Adam 1e-2, cosine decay, weight decay 1e-4, "
                "seed 0, 10 epochs. RBD's teacher: `--distill-from fashion_mnist`."
            ),
        ),
        WeightsEntry(
            model="IRNetResNet20",
            filename="dirnet_resnet20_fashion_mnist.h5",
            sha256="1884d99039870be0351f650ed52415063d4812d4bb3df5df7ab0d33dbce5da9d",
            kwargs={**_FASHION_MNIST_RESNET20, "binarization": "dirnet"},
            description=(
                "Fashion-MNIST, raw 0-255 pixels; distilled with RBD (alignment weight 1) "
                "from the fp variant; Adam 1e-2, cosine decay, weight decay 1e-4 (latent "
                "weights too), seed 0, 10 epochs."
            ),
        ),
    ),
    "fashion_mnist_paper": (
        WeightsEntry(
            model="IRNetResNet20",
            filename="irnet_resnet20_fashion_mnist_paper.h5",
            sha256="16c3db16b2698e0bb0133f56b7b84b6a2991b19c7624bcc73833679440142af8",
            kwargs={**_FASHION_MNIST_RESNET20, "binarization": "irnet"},
            description=(
                "Fashion-MNIST, raw 0-255 pixels; the paper's protocol (SGD 0.1, cosine "
                "decay, weight decay 1e-4), seed 0, 10 epochs."
            ),
        ),
    ),
}
"""Registered weights by name: one `WeightsEntry` per binarization, the first the
name's default."""


def sha256sum(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def registered_as(sha256: str) -> list[tuple[str, WeightsEntry]]:
    """The (name, variant) pairs of `WEIGHTS` whose file has this sha256 hex digest.

    Tells a registered file apart wherever it was copied to, e.g. to refuse the weights of
    a binary variant given as a full-precision teacher (`larq_irnet.training.train`).
    """
    return [
        (name, entry)
        for name, variants in WEIGHTS.items()
        for entry in variants
        if entry.sha256 == sha256.lower()
    ]


def _binarizations(variants: tuple[WeightsEntry, ...]) -> str:
    """The binarizations of a name's variants, for messages: `'irnet', 'fp'`."""
    if not variants:
        return "none"
    return ", ".join("any" if e.binarization is None else repr(e.binarization) for e in variants)


def _known() -> str:
    if not WEIGHTS:
        return "no weights are registered yet"
    names = []
    for name, variants in sorted(WEIGHTS.items()):
        models = ", ".join(dict.fromkeys(entry.model for entry in variants))
        if any(entry.binarization is not None for entry in variants):
            models += f"; binarization {_binarizations(variants)}"
        names.append(f"{name!r} ({models})")
    return f"registered weights: {', '.join(names)}"


def get_entry(name: str, binarization: str | None = None) -> WeightsEntry:
    """The variant of the registered weights `name` for a model's `binarization`.

    # Arguments
        name: a key of `WEIGHTS`.
        binarization: the `binarization=` of the model to load them into; None for the
            name's default variant (its first). A variant registered without a
            binarization fits any binarization that has no variant of its own.

    # Raises
        ValueError: `name` is not registered (listing those that are), or has no variant
            for `binarization` (naming the name, the binarization asked for and those
            registered).
    """
    try:
        variants = WEIGHTS[name]
    except KeyError:
        raise ValueError(f"Unknown weights name {name!r}; {_known()}.") from None
    if binarization is None and variants:
        return variants[0]
    for wanted in (binarization, None):
        for entry in variants:
            if entry.binarization == wanted:
                return entry
    raise ValueError(
        f"Weights {name!r} have no variant for binarization={binarization!r}; registered "
        f"binarizations: {_binarizations(variants)}."
    )


def _checked_file(name: str, entry: WeightsEntry) -> Path:
    """`entry`'s file, after checking it exists and its sha256 (`verified_path`)."""
    label = repr(name)
    if len(WEIGHTS.get(name, ())) > 1 and entry.binarization is not None:
        label += f" (binarization={entry.binarization!r})"
    path = WEIGHTS_DIR / entry.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights {label} are registered as {path}, but that file does not exist "
            "(was the package installed with its package data?)."
        )
    actual = sha256sum(path)
    if actual != entry.sha256:
        raise ValueError(
            f"Weights {label}: {path} has sha256 {actual}, expected {entry.sha256}; the "
            "file is corrupt or was replaced without updating the registry."
        )
    return path


def verified_path(name: str, binarization: str | None = None) -> Path:
    """The file of the registered weights `name`, after checking it exists and its sha256.

    The file is that of the variant for `binarization` (see `get_entry`); each variant's
    own sha256 is checked.

    # Raises
        ValueError: unknown name, no variant for `binarization`, or the file's sha256
            differs from the registered one.
        FileNotFoundError: the registered file is missing.
    """
    return _checked_file(name, get_entry(name, binarization))


def resolve_weights(
    weights: str | os.PathLike | None, binarization: str | None = None
) -> tuple[Path | None, WeightsEntry | None]:
    """Turn a model's `weights=` argument into (file to load, registry entry or None).

    A registered name gives its variant for `binarization` (see `get_entry`), checked
    (existence, sha256); any other value must be the path of an existing file.

    # Arguments
        weights: None, the path of a weights file, or a name of `WEIGHTS`.
        binarization: the `binarization=` of the model being built; None for a
            registered name's default variant.

    # Raises
        ValueError: a string that is neither registered nor a path, a registered name
            without a variant for `binarization`, or a registered file whose sha256
            differs.
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
        entry = get_entry(weights, binarization)
        return _checked_file(weights, entry), entry
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
    entry: WeightsEntry,
    *,
    model: str,
    arguments: Mapping[str, Any],
    include_top: bool,
    derived: Collection[str] = (),
) -> None:
    """Raise a ValueError unless `entry`'s weights fit `model` built with `arguments`.

    Every argument that differs is named in one line, those the caller chose first: an
    argument in `derived` (left unset, its value chosen from the others, e.g. the
    structure a ResNet takes for `bits="1w32a"`) is marked `(by default)` and comes last,
    so the message leads with the argument the caller changed.

    # Arguments
        entry: the registry entry.
        model: name of the model function being built.
        arguments: that function's resolved arguments (defaults filled in).
        include_top: whether the classifier is built (else `num_classes` is free).
        derived: the names in `arguments` whose values the model chose itself.
    """
    if entry.model != model:
        raise ValueError(f"These weights are for {entry.model}, not {model}.")
    mismatches = []
    for key, expected in entry.kwargs.items():
        if key == "num_classes" and not include_top:
            continue
        if key not in arguments:
            raise ValueError(f"Registered weights name argument {key!r}, which {model} lacks.")
        if _normalize(arguments[key]) != _normalize(expected):
            mismatches.append((key in derived, key, expected, arguments[key]))
    if not mismatches:
        return
    mismatches.sort(key=lambda mismatch: mismatch[0])  # stable: the caller's own first
    fits = ", ".join(f"{key}={expected!r}" for _, key, expected, _ in mismatches)
    got = ", ".join(
        f"{key}={actual!r}" + (" (by default)" if by_default else "")
        for by_default, key, _, actual in mismatches
    )
    raise ValueError(f"The weights fit {model}({fits}), got {got}.")
