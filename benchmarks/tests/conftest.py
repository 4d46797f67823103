"""The lab's tests: benchmark scripts loaded by file path, and the library tests' helpers
(`tiny`, `data_helpers`) importable."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
# The library tests' helpers (`from tiny import tiny_model`).
sys.path.insert(0, str(ROOT / "tests"))


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
