import importlib.util
import json
from pathlib import Path

from larq_irnet.zoo.presets import conv_settings

import larq as lq
import pytest
import tensorflow as tf

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_overhead.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("train_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_zoo_model(*, input_shape, binarization):
    """IRNetResNet20's interface and quantizers (the zoo presets) on two convolutions."""
    settings = conv_settings(binarization=binarization, bits="1w1a", pad_values=1.0)
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        use_bias=False,
        kernel_quantizer=settings.kernel_quantizer,
        input_quantizer=settings.input_quantizer,
        kernel_constraint=settings.kernel_constraint,
        pad_values=settings.pad_values,
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))


def test_benchmark_runs_end_to_end_and_writes_json(benchmark, tmp_path, capsys, monkeypatch):
    # Building and tracing one ResNet-20 costs ~25 s of CPU here (TensorFlow graph
    # construction with protobuf's pure-Python backend), so the harness is run on a
    # two-conv model with the zoo's quantizer presets; the README's numbers are ResNet-20.
    monkeypatch.setattr(benchmark, "IRNetResNet20", _tiny_zoo_model)
    output = tmp_path / "results" / "overhead.json"
    argv = ["--batch-size", "4", "--input-shape", "8,8,3", "--steps", "3", "--rounds", "2"]
    argv += ["--warmup", "1", "--output", str(output)]
    assert benchmark.main(argv) == 0
    result = json.loads(output.read_text())
    assert result["config"]["batch_size"] == 4
    assert result["config"]["input_shape"] == [8, 8, 3]
    assert result["config"]["binarizations"] == ["irnet", "bnn", "fp"]
    medians = result["median_step_ms"]
    assert set(medians) == {"irnet", "bnn", "fp"} and all(ms > 0 for ms in medians.values())
    # Two rounds of three timed steps each: the median is within the rounds' range.
    for name, rounds in result["round_median_step_ms"].items():
        assert len(rounds) == 2 and min(rounds) <= medians[name] <= max(rounds)
    for a, b in (("irnet", "bnn"), ("irnet", "fp"), ("bnn", "fp")):
        assert result["ratios"][f"{a}/{b}"] == pytest.approx(medians[a] / medians[b])
        assert result["paired_ratios"][f"{a}/{b}"] > 0
    assert isinstance(result["target"]["met"], bool)
    # IR-Net adds EDE's t and k for its weight and input quantizers: 4 parameters.
    assert result["parameters"]["irnet"] == result["parameters"]["bnn"] + 4
    assert [p.name for p in output.parent.iterdir()] == ["overhead.json"]
    assert "irnet/bnn" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--input-shape", "32,32"], "--input-shape"),
        (["--binarizations", "irnet,xnor"], "--binarizations"),
        (["--steps", "0"], "positive integer"),
    ],
)
def test_benchmark_rejects_bad_arguments(benchmark, argv, message, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(argv)
    assert message in capsys.readouterr().err
