"""examples/quickstart.py: arguments checked before training, the .tflite only where asked."""

import importlib.util
import sys
import tempfile
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


@pytest.fixture(scope="module")
def quickstart():
    spec = importlib.util.spec_from_file_location("quickstart", QUICKSTART)
    module = importlib.util.module_from_spec(spec)
    sys.modules["quickstart"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["quickstart"]


@pytest.fixture
def no_training(quickstart, monkeypatch):
    def build_model():
        raise AssertionError("trained despite a bad argument")

    monkeypatch.setattr(quickstart, "build_model", build_model)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
        (["--train-images", "-5"], "argument --train-images: expected a positive integer"),
        (["--data-dir", "/nope"], "--data-dir: Fashion-MNIST directory not found: /nope"),
        (["--output", "/nope/model.tflite"], "--output /nope/model.tflite: directory /nope"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_training(
    quickstart, no_training, capsys, tmp_path, argv, expected
):
    try:
        status = quickstart.main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert expected in err.strip().splitlines()[-1], err
    assert "Traceback" not in err


@pytest.mark.slow  # trains one step and scores the test set in Keras and LCE
@pytest.mark.parametrize("output", [None, "model.tflite"])
def test_the_tflite_is_written_only_where_asked(
    quickstart, fashion_mnist, capsys, monkeypatch, tmp_path, output
):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(tmp_path)
    argv = ["--epochs", "1", "--train-images", "128"]
    if output:
        argv += ["--output", str(tmp_path / output)]
    assert quickstart.main(argv) == 0
    printed = capsys.readouterr().out
    # (TensorFlow leaves its own autograph files there.)
    assert list(temp.rglob("*.tflite")) == []
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "temp")
    if output:
        assert written == [output] and f"at {tmp_path / output}" in printed
        assert (tmp_path / output).read_bytes()[4:8] == b"TFL3"
    else:
        assert written == [] and "not written; pass --output FILE" in printed
