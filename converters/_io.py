"""Loading the Keras models to convert from files."""

from __future__ import annotations

import inspect
import os
import re
import zipfile
from pathlib import Path

from larq_irnet.io import loadable_h5_model
from larq_irnet.layers import without_starved_weights_warning

import tensorflow as tf

__all__ = ["load_keras_model"]


def load_keras_model(path: str | os.PathLike, *, safe_mode: bool = True) -> tf.keras.Model:
    """Load a Keras model from a `.keras` or `.h5` file or a SavedModel directory.

    The project's custom objects are registered first (the quantizers by
    `import larq_irnet`, the zoo's layers by `larq_irnet.zoo`), and Larq registers its
    own layers. `.keras` files load in Keras' safe mode (no deserialized
    Python code, e.g. lambdas) unless `safe_mode=False`. `.h5` files and SavedModels
    can carry code that runs when loaded: load them only from a trusted source. `.h5`
    files saved by larq-irnet 0.1.0 and earlier hold EDE's t and k as weights; they are
    dropped on loading, as only training reads them, and a plain function saved as an
    initializer (larq-zoo's QuickNet) is read by name (`larq_irnet.io.loadable_h5_model`).
    Larq's "starved weights" warning, which is about training binary kernels without
    `weight_clip`, is dropped while a trained model is loaded to be converted, evaluated
    or reported on.

    # Arguments
        path: the model file or SavedModel directory.
        safe_mode: refuse code in `.keras` files.
    """
    # `import larq_irnet` registers the quantizers; the zoo registers its own layers
    # (Hardtanh, SubsampleChannelPad) when it is imported.
    import larq_irnet.zoo  # noqa: F401

    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
        kwargs = {}
    elif not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    elif path.suffix == ".keras":
        _check_keras_file(path)
        kwargs = {"safe_mode": safe_mode}
    elif path.suffix in (".h5", ".hdf5"):
        _check_h5_model(path)
        kwargs = {}
    else:
        raise ValueError(
            f"{path}: expected a .keras or .h5 file or a SavedModel directory, got "
            f"{path.suffix or 'no suffix'}"
        )
    try:
        with loadable_h5_model(path) as model_file, without_starved_weights_warning():
            model = tf.keras.models.load_model(model_file, compile=False, **kwargs)
    except Exception as e:
        # Keras names the file by an object's repr (`<... GFile object at 0x...>`).
        message = _OBJECT_REPR.sub("the file", str(e).strip()).splitlines()
        raise ValueError(
            f"{path}: cannot load as a Keras model: {message[0] if message else type(e).__name__}"
        ) from e
    if not isinstance(model, tf.keras.Model):
        raise ValueError(
            f"{path}: loaded a {type(model).__name__}, not a Keras model; save the model "
            "with model.save()"
        )
    return model


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>")


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


def _check_h5_model(path: Path) -> None:
    """A `.h5` file holds a whole model (with its config), not only weights."""
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
    if has_config:
        return
    if weights_only:
        raise ValueError(f"{path}: {_weights_only_advice(path)}")
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
    from larq_irnet.zoo.registry import WEIGHTS, sha256sum

    text = "a weights-only .h5 (written by save_weights: no model config), not a model"
    digest = sha256sum(path)
    for name, variants in sorted(WEIGHTS.items()):
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
                f"{choice}weights={name!r}).save('model.h5')`, then convert model.h5"
            )
    return (
        f"{text}. Build the model it fits with the arguments it was trained with, load the "
        f"weights and save it, e.g. `larq_irnet.zoo.IRNetResNet20(..., weights='{path}')"
        ".save('model.h5')`, then convert model.h5"
    )
