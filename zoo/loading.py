"""Loading a model from a path or a name: the one loader every caller uses.

A model is named by a run directory of `larq-irnet train` (its `model.h5`), a `.keras`
or `.h5` model file, a SavedModel directory, a weights-only `.h5` (with the architecture
to load it into), or the name of shipped zoo weights (`registry.WEIGHTS`).
`locate_model` finds what a name points at without loading anything (no TensorFlow
work); `load_model` loads it. The converter CLI, `distillation.load_teacher`, the
trainer's `--distill-from` and the lab all go through these two.

```python
from larq_irnet.zoo.loading import load_model

model = load_model("runs/fmnist")  # the run directory's model.h5
teacher = load_model("fashion_mnist", binarization="fp")  # shipped weights
```
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from larq_irnet.layers import without_starved_weights_warning
from larq_irnet.legacy_h5 import h5_without_estimator_state, loadable_h5_model
from larq_irnet.zoo import registry

import tensorflow as tf

__all__ = ["RUN_MODEL", "ModelSource", "load_model", "locate_model"]

#: The model file of a finished run directory (`larq_irnet.training.run_directory`).
RUN_MODEL = "model.h5"
_SAVED_MODEL = "saved_model.pb"
_H5_SUFFIXES = (".h5", ".hdf5")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>")


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a model named by a path or a zoo weights name is (`locate_model`).

    # Arguments
        path: the path as given (user directory expanded); None for zoo weights.
        model_path: what Keras loads: the file, a run directory's `model.h5`, or the
            SavedModel directory; None for zoo weights.
        zoo_weights: the name of shipped zoo weights, or None for a path.
    """

    path: Path | None
    model_path: Path | None
    zoo_weights: str | None = None

    @property
    def identity_file(self) -> Path | None:
        """The file whose sha256 identifies the model: a SavedModel's `saved_model.pb`,
        else `model_path` (None for zoo weights, which the registry identifies)."""
        if self.model_path is not None and self.model_path.is_dir():
            return self.model_path / _SAVED_MODEL
        return self.model_path


def locate_model(source: str | os.PathLike) -> ModelSource:
    """What `source` names, without loading it.

    A string that names registered zoo weights and no existing path is those weights; a
    directory is a SavedModel (with `saved_model.pb`) or a finished run directory (with
    `model.h5`); any other existing path is a model file.

    # Raises
        FileNotFoundError: nothing is at the path and it names no zoo weights, or a
            directory is neither a SavedModel nor a finished run directory (one line
            naming the path and what was expected).
    """
    path = Path(source).expanduser()
    if isinstance(source, str) and source in registry.WEIGHTS and not path.exists():
        return ModelSource(path=None, model_path=None, zoo_weights=source)
    if not path.exists():
        raise FileNotFoundError(f"no such run directory, model file or zoo weights: {path}")
    if path.is_dir():
        if (path / _SAVED_MODEL).is_file():
            return ModelSource(path=path, model_path=path)
        if not (path / RUN_MODEL).is_file():
            raise FileNotFoundError(
                f"{path} is a directory without {RUN_MODEL} (not a finished run "
                "directory, nor a SavedModel)"
            )
        return ModelSource(path=path, model_path=path / RUN_MODEL)
    return ModelSource(path=path, model_path=path)


def load_model(
    source: str | os.PathLike,
    *,
    model: tf.keras.Model | Callable[[], tf.keras.Model] | None = None,
    binarization: str | None = None,
    safe_mode: bool = True,
) -> tf.keras.Model:
    """Load a Keras model from a path or a zoo weights name (`locate_model`).

    The project's custom objects are registered (the quantizers and the zoo's layers;
    Larq registers its own). `.keras` files load in Keras' safe mode (no deserialized
    Python code, e.g. lambdas) unless `safe_mode=False`; `.h5` files and SavedModels can
    carry code that runs when loaded: load them only from a trusted source. `.h5` files
    with estimator state of larq-irnet 0.1.0 and earlier, or a plain function saved as
    an initializer (larq-zoo's QuickNet), are read by `larq_irnet.legacy_h5.loadable_h5_model`.
    Larq's "starved weights" warning (about training binary kernels without
    `weight_clip`) is dropped while a trained model loads.

    # Arguments
        source: a run directory, a `.keras`/`.h5` file, a SavedModel directory, a
            weights-only `.h5` (with `model=`), or a name of `registry.WEIGHTS`.
        model: the architecture a weights-only `.h5` loads into, or a function without
            arguments that builds it (called only for such a file); ignored otherwise.
        binarization: the variant of zoo weights (None: the name's default variant).
        safe_mode: refuse code in `.keras` files.

    # Raises
        FileNotFoundError: nothing to load at the path (`locate_model`).
        ValueError: one line naming the path and what was expected: an unknown suffix,
            a file that is not what its suffix says, a weights-only `.h5` without
            `model=` (saying how to load it), a file Keras cannot load, or zoo weights
            without the `binarization` variant.
    """
    located = locate_model(source)
    if located.zoo_weights is not None:
        return _zoo_model(located.zoo_weights, binarization)
    path = located.model_path
    if path.suffix in _H5_SUFFIXES and path.is_file() and _is_weights_only(path):
        return _load_weights(path, model)
    kwargs = _load_options(path, safe_mode)
    try:
        with loadable_h5_model(path) as model_file, without_starved_weights_warning():
            loaded = tf.keras.models.load_model(model_file, compile=False, **kwargs)
    except Exception as e:
        raise ValueError(f"{path}: cannot load as a Keras model: {_first_line(e)}") from e
    if not isinstance(loaded, tf.keras.Model):
        raise ValueError(
            f"{path}: loaded a {type(loaded).__name__}, not a Keras model; save the model "
            "with model.save()"
        )
    return loaded


def _load_options(path: Path, safe_mode: bool) -> dict:
    """`tf.keras.models.load_model`'s options for `path`; a ValueError for an unknown kind."""
    if path.is_dir() or path.suffix in _H5_SUFFIXES:  # a SavedModel, a whole-model .h5
        return {}
    if path.suffix == ".keras":
        _check_keras_file(path)
        return {"safe_mode": safe_mode}
    raise ValueError(
        f"{path}: expected a .keras or .h5 file, a SavedModel or run directory, or a "
        f"zoo weights name, got {path.suffix or 'no suffix'}"
    )


def _first_line(error: Exception) -> str:
    # Keras names the file by an object's repr (`<... GFile object at 0x...>`).
    message = _OBJECT_REPR.sub("the file", str(error).strip()).splitlines()
    return message[0] if message else type(error).__name__


def _zoo_model(name: str, binarization: str | None) -> tf.keras.Model:
    """The model of shipped zoo weights, built with the arguments they were trained with."""
    import larq_irnet.zoo

    entry = registry.get_entry(name, binarization)
    return getattr(larq_irnet.zoo, entry.model)(**entry.kwargs, weights=name)


def _load_weights(
    path: Path, model: tf.keras.Model | Callable[[], tf.keras.Model] | None
) -> tf.keras.Model:
    """A weights-only `.h5` loaded into `model`; refused, saying how, without one."""
    if model is None:
        raise ValueError(f"{path}: {_weights_only_advice(path)}")
    built = model if isinstance(model, tf.keras.Model) else model()
    try:
        # Older .h5 files also hold EDE's t and k, which are no longer weights.
        with h5_without_estimator_state(path) as weights_file:
            built.load_weights(weights_file)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path}: cannot load the weights into {built.name!r}: {_first_line(e)}"
        ) from e
    return built


def _starts_with(path: Path, signature: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(signature)) == signature


def _check_keras_file(path: Path) -> None:
    """A `.keras` file is a zip archive (Keras 3 format); say so when it is not."""
    if zipfile.is_zipfile(path):
        return
    if _starts_with(path, _HDF5_SIGNATURE):
        raise ValueError(
            f"{path}: an HDF5 file named .keras; expected a .keras zip archive (written by "
            "model.save('model.keras')). Rename it to .h5 to load it as an HDF5 model."
        )
    raise ValueError(
        f"{path}: not a zip archive; expected a .keras model file written by "
        "model.save('model.keras')"
    )


def _is_weights_only(path: Path) -> bool:
    """Whether a `.h5` file holds weights only (`save_weights`), not a whole model.

    # Raises
        ValueError: not HDF5, or HDF5 with neither a model config nor weights.
    """
    if not _starts_with(path, _HDF5_SIGNATURE):
        raise ValueError(
            f"{path}: not an HDF5 file; expected a .h5 model written by model.save('model.h5')"
        )
    import h5py

    try:
        with h5py.File(path, "r") as f:
            has_config = "model_config" in f.attrs
            weights_only = "layer_names" in f.attrs
    except OSError as e:
        raise ValueError(f"{path}: cannot read as HDF5 ({e}); expected a .h5 model") from e
    if has_config or weights_only:
        return not has_config
    raise ValueError(
        f"{path}: an HDF5 file without a model config; expected a .h5 model written by "
        "model.save('model.h5')"
    )


def _default_binarization(model: str) -> str | None:
    """The default `binarization=` of the zoo model function `model` (None: it has none)."""
    import larq_irnet.zoo

    function = getattr(larq_irnet.zoo, model, None)
    if function is None:
        return None
    parameter = inspect.signature(function).parameters.get("binarization")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def _weights_only_advice(path: Path) -> str:
    """What to do with a weights-only `.h5` (from `save_weights`): build, load, save.

    A file registered in the zoo (any variant of any name) gets the exact call that loads
    it, with `binarization=` when the variant is not the model's default one.
    """
    text = "a weights-only .h5 (written by save_weights: no model config), not a model"
    digest = registry.sha256sum(path)
    for name, variants in sorted(registry.WEIGHTS.items()):
        for entry in variants:
            if entry.sha256 != digest:
                continue
            shape, classes = entry.kwargs.get("input_shape"), entry.kwargs.get("num_classes")
            binarization = entry.binarization
            choice = ""
            if binarization is not None and binarization != _default_binarization(entry.model):
                choice = f"binarization={binarization!r}, "
            return (
                f"{text}: the zoo weights {name!r}. Save the model they fit first, in Python "
                f"`larq_irnet.zoo.{entry.model}(input_shape={shape}, num_classes={classes}, "
                f"{choice}weights={name!r}).save('model.h5')`, then use model.h5"
            )
    return (
        f"{text}. Build the model it fits with the arguments it was trained with, load the "
        f"weights and save it, e.g. `larq_irnet.zoo.IRNetResNet20(..., weights='{path}')"
        ".save('model.h5')`, then use model.h5 (in Python, pass the model as `model=`)"
    )
