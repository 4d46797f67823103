"""Shared test setup: Keras 2 before TensorFlow, quiet logs, real data fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from larq_irnet.data import FASHION_MNIST_DIR, load_fashion_mnist  # noqa: E402

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    tf.keras.backend.clear_session()
    yield


@pytest.fixture(scope="session")
def fashion_mnist():
    """Fashion-MNIST from the Debian package; CI must have it (`make install`)."""
    if not FASHION_MNIST_DIR.is_dir() and not os.environ.get("CI"):
        pytest.skip(f"{FASHION_MNIST_DIR} missing: run `make install`")
    return load_fashion_mnist()
