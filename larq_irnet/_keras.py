"""Select Keras 2 (tf-keras) for TensorFlow, whether or not TensorFlow is already imported.

Larq 0.14 is written against Keras 2. TensorFlow >= 2.16 ships Keras 3 as `tf.keras`
unless TF_USE_LEGACY_KERAS=1 is set, and with Keras 3 `import larq` fails. TensorFlow
reads the variable in two places: once at `import tensorflow`, to decide where dotted
imports such as `from tensorflow.keras.optimizers.legacy import Optimizer` (Larq's) are
found (it puts the chosen Keras' API directory first on `tensorflow.__path__`), and again
when the `tf.keras` attribute is first used. So when a script imports TensorFlow (or
keras, or tensorflow_datasets) before larq_irnet, setting the variable is not enough:
this module also puts tf-keras' API directory first on `tensorflow.__path__`, the entry
TensorFlow itself writes when the variable is set in time. That is possible only while
`tf.keras` has not been used yet; otherwise the ImportError says what to do. This module
is imported first by `larq_irnet/__init__.py`.
"""

import importlib.util
import os
import sys
from pathlib import Path

_HELP = (
    "larq-irnet needs Keras 2 (the tf-keras package), but TensorFlow already resolved "
    "`tf.keras` to Keras {version}. Set the environment variable TF_USE_LEGACY_KERAS=1 "
    "before TensorFlow is imported, e.g. `TF_USE_LEGACY_KERAS=1 python train.py`, or "
    "import larq_irnet before using tf.keras, and make sure tf-keras is installed "
    "(`pip install tf-keras`)."
)


def _tf_keras_api_dir() -> str | None:
    """The directory TensorFlow puts on its `__path__` for Keras 2 (`tf_keras/api/_v2`)."""
    spec = importlib.util.find_spec("tf_keras.api._v2.keras")
    return str(Path(spec.origin).parent.parent) if spec and spec.origin else None


def _route_dotted_imports_to_tf_keras(tf) -> None:
    """Make `tensorflow.keras.*` imports find tf-keras, as TensorFlow does when the
    variable is set before its import (see the module docstring)."""
    api_dir = _tf_keras_api_dir()
    if api_dir is None or getattr(tf, "_tf_uses_legacy_keras", True):
        return  # no tf-keras (reported below), or TensorFlow already chose Keras 2
    if api_dir not in tf.__path__:
        tf.__path__.insert(0, api_dir)


def select_legacy_keras() -> None:
    """Make `tf.keras` resolve to Keras 2, or raise an ImportError saying how."""
    if not os.environ.get("TF_USE_LEGACY_KERAS"):
        # Read by TensorFlow when tf.keras is first used; checked right below.
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    already_imported = "tensorflow" in sys.modules
    import tensorflow as tf

    if already_imported:
        _route_dotted_imports_to_tf_keras(tf)
    # tf.keras is a lazy loader; the package its Model comes from is the real Keras.
    keras_package = tf.keras.Model.__module__.split(".")[0]
    version = getattr(sys.modules.get(keras_package), "__version__", "unknown")
    if not version.startswith("2."):
        value = os.environ.get("TF_USE_LEGACY_KERAS")
        hint = "" if already_imported else f" (TF_USE_LEGACY_KERAS is {value!r})"
        raise ImportError(_HELP.format(version=version) + hint)
