import json

import pytest
from tiny import tiny_model


@pytest.fixture(scope="module")
def benchmark(load_benchmark):
    return load_benchmark("train_overhead")


@pytest.mark.slow  # trains and times real ResNets
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
    assert list(result["targets"]) == ["irnet/bnn"]
    assert result["targets"]["irnet/bnn"]["max"] == 1.10
    assert isinstance(result["targets"]["irnet/bnn"]["met"], bool)
    # EDE's t and k are training state, not parameters: IR-Net counts as plain binary.
    assert result["parameters"]["irnet"] == result["parameters"]["bnn"]
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


TINY_ARGS = ["--batch-size", "4", "--input-shape", "28,28,1", "--steps", "2", "--rounds", "2"]


def test_rbd_rows_time_the_distiller_around_the_same_student(
    benchmark, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(benchmark, "IRNetResNet20", tiny_model)
    output = tmp_path / "overhead.json"
    argv = [*TINY_ARGS, "--warmup", "1", "--binarizations", "irnet,irnet+rbd"]
    assert benchmark.main([*argv, "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["config"]["binarizations"] == ["irnet", "irnet+rbd"]
    # The student alone is counted: the frozen teacher is not what is trained.
    assert result["parameters"]["irnet+rbd"] == result["parameters"]["irnet"]
    assert set(result["median_step_ms"]) == {"irnet", "irnet+rbd"}
    medians = result["median_step_ms"]
    assert list(result["ratios"]) == ["irnet+rbd/irnet"]
    assert result["ratios"]["irnet+rbd/irnet"] == pytest.approx(
        medians["irnet+rbd"] / medians["irnet"]
    )
    assert "irnet+rbd" in capsys.readouterr().out


def test_dirnet_set_times_dte_and_rbd_against_irnet(benchmark, tmp_path, monkeypatch):
    """Needs the `dirnet` binarization (issue 11): passes once that branch is merged."""
    monkeypatch.setattr(benchmark, "IRNetResNet20", tiny_model)
    output = tmp_path / "overhead.json"
    assert (
        benchmark.main([*TINY_ARGS, "--warmup", "1", "--set", "dirnet", "--output", str(output)])
        == 0
    )
    result = json.loads(output.read_text())
    assert result["config"]["binarizations"] == ["irnet", "dirnet", "dirnet+rbd"]
    assert set(result["targets"]) == {"dirnet/irnet", "dirnet+rbd/dirnet"}
    assert result["targets"]["dirnet/irnet"]["max"] == 1.05
    assert result["targets"]["dirnet+rbd/dirnet"]["max"] == 1.6
    medians = result["median_step_ms"]
    assert result["ratios"]["dirnet+rbd/dirnet"] == pytest.approx(
        medians["dirnet+rbd"] / medians["dirnet"]
    )
