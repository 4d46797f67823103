"""Loading models to convert and writing outputs atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tensorflow as tf

__all__ = ["load_keras_model", "write_atomic"]


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` to `path` through a temporary file in the same directory.

    Readers see the old file or the new one, never a partial one; if writing fails
    the temporary file is removed and an existing `path` is left untouched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    payload = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_keras_model(path: str | os.PathLike, *, safe_mode: bool = True) -> tf.keras.Model:
    """Load a Keras model from a `.keras` or `.h5` file or a SavedModel directory.

    Import `larq_irnet` first: it registers this project's quantizers, and Larq
    registers its layers. `.keras` files load in Keras' safe mode (no deserialized
    Python code, e.g. lambdas) unless `safe_mode=False`. `.h5` files and SavedModels
    can carry code that runs when loaded: load them only from a trusted source.

    # Arguments
        path: the model file or SavedModel directory.
        safe_mode: refuse code in `.keras` files.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
        kwargs = {}
    elif not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    elif path.suffix == ".keras":
        kwargs = {"safe_mode": safe_mode}
    elif path.suffix in (".h5", ".hdf5"):
        kwargs = {}
    else:
        raise ValueError(
            f"{path}: expected a .keras or .h5 file or a SavedModel directory, got "
            f"{path.suffix or 'no suffix'}"
        )
    try:
        model = tf.keras.models.load_model(path, compile=False, **kwargs)
    except Exception as e:
        raise ValueError(f"{path}: cannot load as a Keras model: {e}") from e
    if not isinstance(model, tf.keras.Model):
        raise ValueError(
            f"{path}: loaded a {type(model).__name__}, not a Keras model; save the model "
            "with model.save()"
        )
    return model
