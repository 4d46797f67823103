"""benchmarks/deploy.py --chart on a tiny network: one interleaved run, JSON, PNG."""

import json
from pathlib import Path

from larq_irnet.converters.benchmark import MODELS

ROOT = Path(__file__).resolve().parents[2]


def test_chart_measures_writes_beside_other_results_and_plots(
    load_benchmark, tmp_path, monkeypatch
):
    deploy = load_benchmark("deploy")
    monkeypatch.setattr(deploy, "SIZE", 32)
    monkeypatch.setattr(
        deploy,
        "CHART",
        {
            "tiny_irnet": (lambda: MODELS["tiny"][1]("irnet"), 50.0, "test value"),
            "tiny_fp": (lambda: MODELS["tiny"][1]("fp"), None, "none"),
        },
    )
    output, plot = tmp_path / "deploy.json", tmp_path / "chart.png"
    output.write_text(json.dumps({"models": {"kept": 1}}))
    argv = ["--chart", "--repeats", "3", "--instances", "1", "--output", str(output)]
    assert deploy.main(argv + ["--plot", str(plot)]) == 0
    results = json.loads(output.read_text())
    assert results["models"] == {"kept": 1}
    networks = results["chart"]["networks"]
    irnet, fp = networks["tiny_irnet"], networks["tiny_fp"]
    assert irnet["binary_layers"] == irnet["fully_binary_layers"] == 3
    assert 0.5 < irnet["binary_mac_share"] < 1.0 and fp["binary_mac_share"] == 0.0
    for entry in (irnet, fp):
        assert entry["latency_ms_1_threads"] > 0 and entry["latency_ms_2_threads"] > 0
        assert "num_threads=2" in entry["interpreter_2_threads"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --plot-only redraws from the results file without measuring.
    plot.unlink()
    assert deploy.main(argv + ["--plot", str(plot), "--plot-only", "--networks", "nope"]) == 0
    assert plot.exists()


def test_the_deployment_guide_shows_the_committed_chart(load_benchmark):
    deploy = load_benchmark("deploy")
    chart = json.loads((ROOT / "benchmarks" / "deploy.json").read_text())["chart"]
    assert deploy.chart_table(chart) in (ROOT / "docs" / "deploy.md").read_text()
