"""Test setup shared by the library's tests (tests/) and the lab's (benchmarks/tests/):
Keras 2 before TensorFlow, quiet logs, a fresh Keras session per test, real data."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from larq_irnet.training.data import FASHION_MNIST_DIR, load_fashion_mnist  # noqa: E402

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


@pytest.fixture
def read_only(monkeypatch):
    """`read_only(path)` makes a directory read-only, also for root.

    Root ignores permission bits, so when the tests run as root `os.access` is made to
    answer from the bits, as it does for any other user; the code under test asks it.
    """
    directories = []

    def make(path):
        path.chmod(0o555)
        directories.append(Path(path).resolve())

    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).resolve() in directories:
            return False
        return real_access(path, mode, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "access", access)
    yield make
    for path in directories:
        path.chmod(0o755)
