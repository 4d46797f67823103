"""benchmarks/estimator_cost.py on a tiny tensor: every estimator timed, results written."""

import json

import pytest


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("estimator_cost")


def test_times_each_estimator_and_writes_json(script, tmp_path, capsys):
    out = tmp_path / "cost.json"
    argv = ["--shape", "2,4,4,3", "--rounds", "2", "--calls", "1", "--output", str(out)]
    assert script.main(argv) == 0
    results = json.loads(out.read_text())
    assert set(results["median_ms"]) == {"ste_sign", "ede_sign", "dte_sign"}
    assert all(len(times) == 2 and min(times) > 0 for times in results["round_ms"].values())
    assert results["ratio_to_ste_sign"]["ste_sign"] == 1.0
    assert "dte_sign:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--quantizers", "ste_sign,nope"], "unknown quantizer 'nope'"),
        (["--shape", "128"], "expected positive sizes"),
        (["--rounds", "0"], "--rounds and --calls must be >= 1"),
    ],
)
def test_bad_arguments_are_named(script, argv, message, capsys):
    with pytest.raises(SystemExit):
        script.main(argv)
    assert message in capsys.readouterr().err
