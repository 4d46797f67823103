import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_overhead.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("train_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_end_to_end_and_writes_json(benchmark, tmp_path, capsys):
    # Tiny and in-process: building and tracing each ResNet-20 dominates the time.
    output = tmp_path / "results" / "overhead.json"
    argv = ["--batch-size", "2", "--input-shape", "8,8,3", "--steps", "2", "--rounds", "2"]
    argv += ["--warmup", "1", "--binarizations", "irnet,bnn", "--output", str(output)]
    assert benchmark.main(argv) == 0
    result = json.loads(output.read_text())
    assert result["config"]["batch_size"] == 2
    assert result["config"]["input_shape"] == [8, 8, 3]
    assert result["config"]["binarizations"] == ["irnet", "bnn"]
    medians = result["median_step_ms"]
    assert set(medians) == {"irnet", "bnn"} and all(ms > 0 for ms in medians.values())
    # Two rounds of two timed steps each: the median is within the rounds' range.
    for name, rounds in result["round_median_step_ms"].items():
        assert len(rounds) == 2 and min(rounds) <= medians[name] <= max(rounds)
    assert result["ratios"]["irnet/bnn"] == pytest.approx(medians["irnet"] / medians["bnn"])
    assert isinstance(result["target"]["met"], bool)
    # IR-Net adds EDE's t and k (2 per quantizer) to the parameters.
    assert result["parameters"]["irnet"] > result["parameters"]["bnn"]
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
