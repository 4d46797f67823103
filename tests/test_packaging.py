"""What the distribution carries (LICENSE, sdist) and how larq_irnet imports beside TensorFlow."""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_the_apache_2_text_setup_declares():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert 'license="Apache-2.0"' in (ROOT / "setup.py").read_text(encoding="utf-8")


def tracked(*patterns: str) -> set[str]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", *patterns], capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return set(listed.stdout.split())


@pytest.mark.slow
def test_sdist_carries_the_test_suite_with_its_helpers(tmp_path):
    # Offline: setup.py sdist builds from this checkout, no isolated build environment.
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = tracked("tests/*.py", "benchmarks/*.py", "larq_irnet/*.py", "converters/*.py")
    expected |= tracked("benchmarks/tests/*.py", "larq_irnet/training/*.py")
    expected |= tracked("zoo/*.py", "zoo/weights/*")
    expected |= {"LICENSE", "README.md", "setup.py", "pyproject.toml", "constraints.txt"}
    assert expected <= names, sorted(expected - names)
    assert {"conftest.py", "benchmarks/tests/conftest.py", "tests/tiny.py"} <= names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


IMPORTS_FIRST = [
    "import tensorflow as tf",
    "import keras",
    "import tensorflow_datasets",
]


@pytest.mark.slow
@pytest.mark.parametrize("first", IMPORTS_FIRST)
def test_larq_irnet_imports_after_tensorflow_keras_or_tfds(first, tmp_path):
    script = (
        f"{first}\n"
        "import larq_irnet\n"
        "import tensorflow as tf\n"
        "from tensorflow.keras.optimizers.legacy import Optimizer\n"
        "from larq_irnet.zoo import IRNetResNet20\n"
        "model = IRNetResNet20(input_shape=(8, 8, 3))\n"
        "model.compile(tf.keras.optimizers.SGD(0.1), 'sparse_categorical_crossentropy')\n"
        "model.fit(tf.zeros((2, 8, 8, 3)), tf.zeros(2), verbose=0)\n"
        "print(tf.keras.Model.__module__, Optimizer.__module__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split()[-2:] == [
        "tf_keras.src.engine.training",
        "tf_keras.src.optimizers.legacy.optimizer_v2",
    ]


@pytest.mark.slow
def test_keras_3_already_in_use_gives_the_projects_import_error(tmp_path):
    script = "import tensorflow as tf\ntf.keras.Model\nimport larq_irnet\n"
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert ran.returncode == 1
    last = ran.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("ImportError: larq-irnet needs Keras 2") and "TF_USE_LEGACY_KERAS=1" in last
    )
