"""The main job end to end on a slice: train, strict LCE conversion, evaluation, report."""

import json
import os

from larq_irnet.cli import main
from larq_irnet.demo import DEMO_RECIPE, native_log_captured, run_demo
from larq_irnet.training.recipes import get_recipe

import pytest

#: C++ log lines the conversion and the interpreters write past Python (issue 27).
NATIVE_LINES = (
    "absl::InitializeLog",
    "devices.cc",
    "single_machine.cc",
    "mlir_graph_optimization_pass.cc",
    "XNNPACK delegate",
)


@pytest.mark.slow  # the full test set, in Keras and in LCE
@pytest.mark.usefixtures("fashion_mnist")
def test_demo_trains_converts_evaluates_and_reports(tmp_path, capfd):
    out = tmp_path / "demo"
    args = ["demo", "--output-dir", str(out), "--epochs", "1", "--train-limit", "256"]
    assert main([*args, "--repeats", "3"]) == 0
    demo = json.loads((out / "demo.json").read_text())
    assert demo["test_examples"] == 10000  # the full test set, in Keras and in LCE
    assert demo["lce_binary_convolutions"] == 18  # strict conversion of ResNet-20
    # Two training steps leave near-uniform outputs, so top-1 agreement is not meaningful
    # here; Keras-vs-LCE equivalence is tested on outputs in test_converters.py.
    assert 0 < demo["tflite_test_accuracy"] <= 1 and 0 <= demo["keras_tflite_top1_agreement"] <= 1
    assert demo["size_fp32_over_irnet"] > 10
    assert (out / "model.tflite").stat().st_size == demo["size_bytes"]["irnet_lce"]
    # The recommended recipe, validated on a held-out split: the test set scores the end.
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["name"] == DEMO_RECIPE == demo["recipe"]
    assert (config["recipe"]["optimizer"], config["recipe"]["learning_rate"]) == ("adam", 0.025)
    assert config["validation_size"] == demo["validation_examples"] == 5000
    report = (out / "report" / "report.md").read_text()
    assert "| epoch | loss | accuracy | validation_loss | validation_accuracy |" in report
    captured = capfd.readouterr()
    printed = captured.out
    assert str(out) in printed and "LceBconv2d" in printed
    # A short story: the steps as they start, one line per epoch, then the headline.
    assert [line[:5] for line in printed.splitlines() if line.startswith("[")] == [
        f"[{i}/5]" for i in range(1, 6)
    ]
    assert "epoch 1/1 (" in printed and "entropy/" not in printed
    assert f"1 epoch of {DEMO_RECIPE} (Adam 2.5e-2" in printed
    assert "Fashion-MNIST, 1 epoch on 256 images" in printed
    assert "test accuracy (full 10000 images)" in printed
    longest = max(printed.splitlines(), key=len)
    assert len(longest) <= 200, longest
    # Only its own lines: nothing from C++ on either stream.
    for line in NATIVE_LINES:
        assert line not in captured.err and line not in printed, line


def test_the_demo_recipe_is_the_shipped_irnet_weights_recipe():
    recipe = get_recipe(DEMO_RECIPE)
    assert (recipe.optimizer, recipe.learning_rate, recipe.schedule) == ("adam", 0.025, "cosine")
    assert recipe.model_kwargs.get("binarization", "irnet") == "irnet"


def test_native_output_is_discarded_when_the_block_succeeds(capfd):
    with native_log_captured():
        os.write(2, b"I0000 devices.cc:76] from C++\n")
        value = 42
    os.write(2, b"after\n")
    assert value == 42 and capfd.readouterr().err == "after\n"


def test_native_output_is_replayed_when_the_block_fails(capfd):
    with pytest.raises(RuntimeError, match="conversion failed"):
        with native_log_captured():
            os.write(2, b"error: the real reason, from C++\n")
            raise RuntimeError("conversion failed")
    assert capfd.readouterr().err == "error: the real reason, from C++\n"
    os.write(2, b"fd 2 is back\n")
    assert capfd.readouterr().err == "fd 2 is back\n"


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--epochs", "-1", "argument --epochs: expected a positive integer, got '-1'"),
        ("--train-limit", "-5", "argument --train-limit: expected an integer >= 0, got '-5'"),
        ("--repeats", "0", "argument --repeats: expected a positive integer, got '0'"),
    ],
)
def test_bad_options_fail_before_the_first_step(tmp_path, capsys, option, value, expected):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--output-dir", str(out), option, value])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines()[-1].endswith(expected)
    assert not out.exists()


def test_run_demo_checks_its_arguments_and_data_before_the_first_step(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(ValueError, match=r"`epochs` must be a positive integer, got epochs=-1"):
        run_demo(out, epochs=-1)
    with pytest.raises(ValueError, match=r"`train_limit` must be a positive integer"):
        run_demo(out, train_limit=-5)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run_demo(out, data_dir=tmp_path / "nowhere")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["demo", "--output-dir", str(a_file)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"--output-dir {a_file} is a file" in captured.err
    assert not out.exists()
