"""Loading the Keras models to convert from files."""

from __future__ import annotations

import os
from pathlib import Path

from larq_irnet.io import h5_without_estimator_state
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
    dropped on loading (`larq_irnet.io.h5_without_estimator_state`), as only training
    reads them. Larq's "starved weights" warning, which is about training binary
    kernels without `weight_clip`, is dropped while a trained model is loaded to be
    converted, evaluated or reported on.

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
        kwargs = {"safe_mode": safe_mode}
    elif path.suffix in (".h5", ".hdf5"):
        kwargs = {}
    else:
        raise ValueError(
            f"{path}: expected a .keras or .h5 file or a SavedModel directory, got "
            f"{path.suffix or 'no suffix'}"
        )
    try:
        with h5_without_estimator_state(path) as model_file, without_starved_weights_warning():
            model = tf.keras.models.load_model(model_file, compile=False, **kwargs)
    except Exception as e:
        raise ValueError(f"{path}: cannot load as a Keras model: {e}") from e
    if not isinstance(model, tf.keras.Model):
        raise ValueError(
            f"{path}: loaded a {type(model).__name__}, not a Keras model; save the model "
            "with model.save()"
        )
    return model
