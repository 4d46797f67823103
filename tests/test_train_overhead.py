import json

import pytest
from tiny import tiny_model


@pytest.fixture(scope="module")
def benchmark(load_benchmark):
    return load_benchmark("train_overhead")


def test_benchmark_runs_end_to_end_and_writes_json(benchmark, tmp_path, capsys, monkeypatch):
    # Building and tracing one ResNet-20 costs ~25 s of CPU here (TensorFlow graph
    # construction with protobuf's pure-Python backend), so the harness is run on a
    # two-conv model with the zoo's quantizer presets; the README's numbers are ResNet-20.
    monkeypatch.setattr(benchmark, "IRNetResNet20", tiny_model)
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
