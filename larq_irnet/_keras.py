"""Select Keras 2 (tf-keras) before TensorFlow is imported.

Larq 0.14 is written against Keras 2. TensorFlow >= 2.16 ships Keras 3 as `tf.keras`
unless TF_USE_LEGACY_KERAS=1 is set before `tf.keras` is first resolved, and with Keras 3
`import larq` fails. This module is imported first by `larq_irnet/__init__.py`.
"""

import os
import sys

_HELP = (
    "larq-irnet needs Keras 2 (the tf-keras package), but TensorFlow already resolved "
    "`tf.keras` to Keras {version}. Set the environment variable TF_USE_LEGACY_KERAS=1 "
    "before TensorFlow is imported, e.g. `TF_USE_LEGACY_KERAS=1 python train.py`, or "
    "import larq_irnet before tensorflow, and make sure tf-keras is installed "
    "(`pip install tf-keras`)."
)


def select_legacy_keras() -> None:
    """Make `tf.keras` resolve to Keras 2, or raise an ImportError saying how."""
    if not os.environ.get("TF_USE_LEGACY_KERAS"):
        # Only effective while tf.keras is not resolved yet; checked right below.
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    already_imported = "tensorflow" in sys.modules
    import tensorflow as tf

    # tf.keras is a lazy loader; the package its Model comes from is the real Keras.
    keras_package = tf.keras.Model.__module__.split(".")[0]
    version = getattr(sys.modules.get(keras_package), "__version__", "unknown")
    if not version.startswith("2."):
        value = os.environ.get("TF_USE_LEGACY_KERAS")
        hint = "" if already_imported else f" (TF_USE_LEGACY_KERAS is {value!r})"
        raise ImportError(_HELP.format(version=version) + hint)
