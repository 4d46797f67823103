"""benchmarks/ablation.py: rows, resumable results file, table and figures, on a tiny model."""

import dataclasses
import json
import shutil
from pathlib import Path

from larq_irnet import recipes
from larq_irnet.io import file_lock

import pytest
from tiny import tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation(load_benchmark):
    return load_benchmark("ablation")


@pytest.fixture
def tiny_recipe(ablation, monkeypatch):
    """The ablation's recipe, same name and schedule, with the tiny model."""
    recipe = recipes.get_recipe(ablation.RECIPE)
    tiny = dataclasses.replace(recipe, model=tiny_model, model_kwargs={})
    monkeypatch.setitem(recipes.RECIPES, ablation.RECIPE, tiny)
    return tiny


OTHER_ROW = {
    "binarization": "libra_pb",
    "seed": 0,
    "final_test_accuracy": 0.5,
    "history": {"val_accuracy": [0.25, 0.5]},
}


@pytest.mark.slow  # trains two rows and scores them on the full test set
def test_rows_results_table_and_plots(
    ablation, tiny_recipe, tmp_path, capsys, monkeypatch, fashion_mnist
):
    results_path = tmp_path / "results" / "ablation.json"
    argv = ["--output-dir", str(tmp_path / "runs"), "--results", str(results_path)]
    argv += ["--epochs", "2", "--steps-per-epoch", "2", "--train-limit", "256"]

    # Another ablation process finishing a row while this one trains must not be overwritten.
    real_train = ablation.train

    def train_while_another_process_writes(*args, **kwargs):
        summary = real_train(*args, **kwargs)
        other = ablation.load_results(results_path)
        other["runs"]["libra_pb-seed0"] = OTHER_ROW
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(other))
        return summary

    monkeypatch.setattr(ablation, "train", train_while_another_process_writes)
    assert ablation.main(argv + ["--only", "bnn-seed0", "irnet-seed0"]) == 0
    results = json.loads(results_path.read_text())
    assert results["recipe"] == "fashion_mnist-resnet20-1w1a"
    assert set(results["runs"]) == {"bnn-seed0", "irnet-seed0", "libra_pb-seed0"}
    assert results["runs"]["libra_pb-seed0"] == OTHER_ROW
    for name, binarization in (("bnn-seed0", "bnn"), ("irnet-seed0", "irnet")):
        run = results["runs"][name]
        assert run["binarization"] == binarization and run["seed"] == 0 and run["epochs"] == 2
        history = run["history"]
        assert len(history["val_accuracy"]) == 2
        assert run["final_test_accuracy"] == pytest.approx(history["val_accuracy"][-1])
        assert run["test_examples"] == 10_000
        # InformationDiagnostics ran: one entropy column per binarized layer, in [0, 1] bits.
        assert [k for k in history if k.startswith("entropy/")] == ["entropy/quant_conv2d"]
        assert all(0.0 <= e <= 1.0 for e in history["entropy/quant_conv2d"])
    # Only the EDE rows log t; the recipe's schedule starts at 1e-3 and grows.
    assert "ede_t" not in results["runs"]["bnn-seed0"]["history"]
    t = results["runs"]["irnet-seed0"]["history"]["ede_t"]
    assert t[0] == pytest.approx(1e-3) and t[1] > t[0]

    table = ablation.table(results)
    bnn = results["runs"]["bnn-seed0"]["final_test_accuracy"]
    assert f"| Plain binary (sign + STE) | {100 * bnn:.2f} (s0) | {100 * bnn:.2f} | 83.8 |" in table
    assert "| Libra-PB | 50.00 (s0) | 50.00 | 84.9 |" in table
    assert "| Full precision | not run yet | | 90.8 |" in table

    # A finished row is read back, not retrained.
    monkeypatch.setattr(ablation, "train", real_train)
    capsys.readouterr()
    assert ablation.main(argv + ["--only", "bnn-seed0"]) == 0
    assert "finished run of this configuration; not training" in capsys.readouterr().out

    # A row that another process is training is left to it, and the next row is taken.
    (tmp_path / "runs" / "ede-seed0").mkdir()
    with file_lock(tmp_path / "runs" / "ede-seed0" / ".lock"):
        assert ablation.main(argv + ["--only", "ede-seed0", "bnn-seed0"]) == 0
    out = capsys.readouterr().out
    assert "== ede-seed0: skipped, another process is training into" in out
    assert "finished run of this configuration; not training" in out
    assert json.loads(results_path.read_text()) == results

    # Run directories may be lost (another machine); the results file says the row is done.
    shutil.rmtree(tmp_path / "runs" / "bnn-seed0")
    assert ablation.main(argv + ["--only", "bnn-seed0"]) == 0
    out = capsys.readouterr().out
    assert "bnn-seed0: finished in" in out and "not retraining" in out
    assert not (tmp_path / "runs" / "bnn-seed0").exists()
    assert json.loads(results_path.read_text()) == results

    plots = tmp_path / "plots"
    assert ablation.main(["--results", str(results_path), "--plots", str(plots)]) == 0
    assert sorted(p.name for p in plots.iterdir()) == [
        "accuracy.png",
        "ede_schedule.png",
        "entropy.png",
    ]


def test_unknown_rows_and_an_empty_results_file_are_named(ablation, tmp_path):
    with pytest.raises(SystemExit, match=r"--only: unknown rows \['xnor-seed0'\]"):
        ablation.main(["--only", "xnor-seed0", "--output-dir", str(tmp_path)])
    missing = tmp_path / "none.json"
    with pytest.raises(SystemExit, match="none.json: no finished rows to plot"):
        ablation.main(["--results", str(missing), "--plots", str(tmp_path / "plots")])


def _row(binarization, seed, accuracy):
    return {"binarization": binarization, "seed": seed, "final_test_accuracy": accuracy}


def test_comparisons_state_each_target_against_the_seed_spread(ablation):
    runs = {
        "irnet-seed0": _row("irnet", 0, 0.88),
        "bnn-seed0": _row("bnn", 0, 0.85),
        "ede-seed0": _row("ede", 0, 0.849),
    }
    lines = ablation.comparisons({"runs": runs})
    assert lines == [
        "IR-Net - plain binary: +3.00 points (means of 1 and 1 seeds); "
        "seed spread unknown until both rows have two seeds",
        "EDE - plain binary: -0.10 points (worse)",
    ]
    # Seed spreads of 1 and 4 points: 4.5 points between the means is more than either.
    runs |= {
        "irnet-seed1": _row("irnet", 1, 0.87),
        "bnn-seed1": _row("bnn", 1, 0.81),
        "fp-seed0": _row("fp", 0, 0.91),
        "libra_pb-seed0": _row("libra_pb", 0, 0.83),
    }
    lines = ablation.comparisons({"runs": runs})
    assert lines[0] == (
        "IR-Net - plain binary: +4.50 points (means of 2 and 2 seeds); "
        "seed spread 4.00 points: more than the spread"
    )
    assert lines[1:] == [
        "Libra-PB - plain binary: +0.00 points (not worse)",
        "EDE - plain binary: +1.90 points (not worse)",
        "Full precision - IR-Net: +3.50 points",
    ]
    # Below plain binary by less than a seed spread (4 points) is said to be only that.
    runs["ede-seed0"] = _row("ede", 0, 0.815)
    runs["libra_pb-seed0"] = _row("libra_pb", 0, 0.78)
    assert ablation.comparisons({"runs": runs})[1:3] == [
        "Libra-PB - plain binary: -5.00 points (worse)",
        "EDE - plain binary: -1.50 points (worse, by no more than the largest seed spread, "
        "4.00 points)",
    ]


def test_docs_results_shows_the_results_file(ablation):
    """docs/results.md carries the table and comparisons of the committed results."""
    results = ablation.load_results(ROOT / "benchmarks" / "results" / "ablation.json")
    text = (ROOT / "docs" / "results.md").read_text()
    assert ablation.table(results) in text
    for line in ablation.comparisons(results):
        assert f"- {line}" in text


def test_search_grid_covers_each_row_and_optimizer(ablation):
    grid = ablation.search_grid()
    names = [name for name, _, _ in grid]
    assert len(names) == len(set(names))
    per_row = {row: [o for _, b, o in grid if b == row] for row in ablation.SEARCH_ROWS}
    points = len(ablation.SEARCH_OPTIMIZERS)
    # Full precision has no latent binary weights: only the optimizers are searched.
    assert len(per_row["fp"]) == points
    assert len(per_row["bnn"]) == len(per_row["irnet"]) == 2 * points
    assert {o["optimizer"] for o in per_row["bnn"]} == {"sgd", "adam"}


def test_best_recipes_pick_the_best_validation_score(ablation):
    def run(row, lr, score):
        overrides = {"optimizer": "sgd", "learning_rate": lr, "decay_latent_weights": True}
        return {"binarization": row, "overrides": overrides, "final_validation_accuracy": score}

    search = {"runs": {"a": run("bnn", 0.1, 0.8), "b": run("bnn", 0.03, 0.85)}}
    search["runs"]["c"] = run("irnet", 0.1, 0.9)
    best = ablation.best_recipes(search)
    assert best["bnn"]["learning_rate"] == 0.03 and best["irnet"]["learning_rate"] == 0.1


@pytest.mark.slow  # trains search runs
def test_search_scores_on_the_validation_split_only(
    ablation, tiny_recipe, tmp_path, monkeypatch, capsys, fashion_mnist
):
    monkeypatch.setattr(ablation, "SEARCH_ROWS", ("bnn",))
    monkeypatch.setattr(ablation, "SEARCH_OPTIMIZERS", (("sgd", 0.1), ("adam", 1e-3)))
    monkeypatch.setattr(ablation, "SEARCH_LATENT_DECAY", (True,))
    results_path = tmp_path / "search.json"
    argv = ["--search", "--output-dir", str(tmp_path / "runs"), "--results", str(results_path)]
    argv += ["--epochs", "1", "--steps-per-epoch", "2", "--train-limit", "256"]
    assert ablation.main(argv) == 0
    runs = json.loads(results_path.read_text())["runs"]
    assert set(runs) == {"bnn-sgd0.1-wd", "bnn-adam0.001-wd"}
    for run in runs.values():
        assert run["validation_size"] == ablation.VALIDATION_SIZE
        assert 0 <= run["final_validation_accuracy"] <= 1
        assert not any("test" in key for key in run)
        config = json.loads(
            (
                tmp_path / "runs" / ablation.search_name("bnn", run["overrides"]) / "config.json"
            ).read_text()
        )
        assert config["recipe"]["optimizer"] == run["overrides"]["optimizer"]
    best = max(runs.values(), key=lambda r: r["final_validation_accuracy"])
    assert ablation.best_recipes({"runs": runs}) == {"bnn": best["overrides"]}
    out = capsys.readouterr().out
    assert f"**{100 * best['final_validation_accuracy']:.2f}**" in out
