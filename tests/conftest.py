"""Shared test setup: Keras 2 before TensorFlow, quiet logs, real data, benchmark scripts."""

import importlib.util
import os
import sys
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


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of `benchmarks/` as a module: `load_benchmark("ablation")`."""

    # The scripts import their shared helpers (`noise`) as `python benchmarks/x.py` does.
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))

    def load(name):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        # Registered first, as importlib's recipe does: dataclasses look their module up.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


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
