"""benchmarks/ablation.py: rows, resumable results file, table and figures, on a tiny model."""

import dataclasses
import json
import shutil
from pathlib import Path

from larq_irnet.io import file_lock
from larq_irnet.training import recipes

import numpy as np
import pytest
from tiny import tiny_model

ROOT = Path(__file__).resolve().parents[2]


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
    real_train = ablation.experiments.train

    def train_while_another_process_writes(*args, **kwargs):
        summary = real_train(*args, **kwargs)
        other = ablation.load_results(results_path)
        other["runs"]["libra_pb-seed0"] = OTHER_ROW
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(other))
        return summary

    monkeypatch.setattr(ablation.experiments, "train", train_while_another_process_writes)
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
    monkeypatch.setattr(ablation.experiments, "train", real_train)
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
        "flip_ratio.png",
    ]


def test_unknown_rows_and_an_empty_results_file_are_named(ablation, tmp_path):
    with pytest.raises(SystemExit, match=r"--only: unknown rows \['xnor-seed0'\]"):
        ablation.main(["--only", "xnor-seed0", "--output-dir", str(tmp_path)])
    missing = tmp_path / "none.json"
    with pytest.raises(SystemExit, match="none.json: no finished rows to plot"):
        ablation.main(["--results", str(missing), "--plots", str(tmp_path / "plots")])


def _row(binarization, seed, accuracy):
    return {"binarization": binarization, "seed": seed, "final_test_accuracy": accuracy}


def test_comparisons_read_each_difference_against_the_noise(ablation):
    runs = {
        "irnet-seed0": _row("irnet", 0, 0.88),
        "irnet-seed1": _row("irnet", 1, 0.87),
        "bnn-seed0": _row("bnn", 0, 0.85),
        "ede-seed0": _row("ede", 0, 0.849),
        "fp-seed0": _row("fp", 0, 0.91),
    }
    # Without a noise figure, only the differences.
    assert ablation.comparisons({"runs": runs})[:2] == [
        "IR-Net - plain binary: +2.50 points (runs: 2 and 1)",
        "EDE - plain binary: -0.10 points (runs: 1 and 1)",
    ]
    # s = 1 point: 2 SE = 2 sqrt(1/2 + 1) = 2.45 for IR-Net (2 runs) against plain binary
    # (1 run), 2 sqrt(2) = 2.83 for two single runs.
    assert ablation.comparisons({"runs": runs}, std=1.0) == [
        "IR-Net - plain binary: +2.50 points (2 SE = 2.45): resolved (runs: 2 and 1)",
        "EDE - plain binary: -0.10 points (2 SE = 2.83): not resolved (runs: 1 and 1)",
        "Full precision - IR-Net: +3.50 points (runs: 1 and 2)",
    ]
    # A loss beyond two standard errors is resolved too: the rule has no sign.
    runs["ede-seed0"] = _row("ede", 0, 0.82)
    assert ablation.comparisons({"runs": runs}, std=1.0)[1] == (
        "EDE - plain binary: -3.00 points (2 SE = 2.83): resolved (runs: 1 and 1)"
    )


def test_the_noise_pools_every_group_of_one_configuration(ablation):
    paper = {"runs": {"bnn-seed0": _row("bnn", 0, 0.80), "bnn-seed1": _row("bnn", 1, 0.81)}}
    tuned = {
        "runs": {
            "irnet-seed0": _row("irnet", 0, 0.90),
            "irnet-seed1": _row("irnet", 1, 0.904),
            "fp-seed0": _row("fp", 0, 0.92),
            # The same function as `dirnet` (IMB's scale is divided out by BatchNorm).
            "dte-seed0": _row("dte", 0, 0.905),
            "dirnet-seed0": _row("dirnet", 0, 0.898),
            "dirnet-seed1": _row("dirnet", 1, 0.899),
        }
    }
    groups = [[80.0, 81.0], [90.0, 90.4], [90.5, 89.8, 89.9]]
    squares = sum(((np.array(g) - np.mean(g)) ** 2).sum() for g in groups)
    expected = np.sqrt(squares / sum(len(g) - 1 for g in groups))
    std, dof = ablation.test_noise(paper, tuned, others={})
    assert dof == 4
    assert std == pytest.approx(expected, abs=1e-4)
    one = {"runs": {"fp-seed0": _row("fp", 0, 0.9)}}
    assert ablation.test_noise({"runs": {}}, one, others={}) is None
    # Other test-set results files pool in too: a QuickNet group of two runs.
    quicknet = {"zoo-seed0": _row("zoo", 0, 0.89), "zoo-seed1": _row("zoo", 1, 0.90)}
    assert ablation.test_noise({"runs": {}}, one, others={"q.json": quicknet}) == (
        pytest.approx(np.std([89.0, 90.0], ddof=1), abs=1e-4),
        1,
    )


def test_docs_results_shows_the_results_files(ablation):
    """docs/results.md's generated blocks are what the committed results files give
    (`ablation.py --update-docs docs/results.md` rewrites them)."""
    results = ROOT / "benchmarks" / "results"
    search, paper, tuned = (
        ablation.load_results(results / name)
        for name in ("search.json", "ablation.json", "ablation_tuned.json")
    )
    text = (ROOT / "docs" / "results.md").read_text()
    assert ablation.table(paper) in text
    for name in ablation.DOCS_BLOCKS:
        after = text.split(f"<!-- ablation:{name} -->\n")[1]
        block = after.split(f"\n<!-- /ablation:{name} -->")[0]
        assert block == ablation.docs_block(name, search, paper, tuned), name


def test_update_docs_rewrites_only_the_blocks_and_names_missing_markers(ablation, tmp_path):
    page = tmp_path / "results.md"
    page.write_text(
        "intro\n<!-- ablation:noise -->\n<!-- /ablation:noise -->\n"
        "<!-- ablation:paper -->\nold\n<!-- /ablation:paper -->\nmiddle\n"
        "<!-- ablation:search -->\n<!-- /ablation:search -->\n"
        "<!-- ablation:tuned -->\nstale\n<!-- /ablation:tuned -->\nend\n"
    )
    search = ROOT / "benchmarks" / "results" / "search.json"
    assert ablation.main(["--update-docs", str(page), "--search-results", str(search)]) == 0
    text = page.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert "old" not in text and "stale" not in text
    assert "| Full precision |" in text
    # --results names the paper protocol's file (a snapshot of it, as a commit stages it).
    paper = tmp_path / "paper.json"
    paper.write_text(json.dumps({"runs": {}}))
    argv = ["--update-docs", str(page), "--search-results", str(search), "--results", str(paper)]
    assert ablation.main(argv) == 0
    assert page.read_text() != text
    page.write_text("no markers\n")
    with pytest.raises(SystemExit, match=r"no <!-- ablation:noise --> \.\.\. .* block"):
        ablation.main(["--update-docs", str(page)])


def test_search_grid_covers_each_row_and_optimizer(ablation):
    grid = ablation.search_grid()
    names = [name for name, _, _ in grid]
    assert len(names) == len(set(names))
    per_row = {row: [o for _, b, o in grid if b == row] for row in ablation.SEARCH_ROWS}
    points = len(ablation.SEARCH_OPTIMIZERS)
    # Full precision has no latent binary weights: only the optimizers are searched,
    # less the points left out (named in the table).
    assert len(per_row["fp"]) == points - len(ablation.SEARCH_SKIPPED) == points - 1
    assert "fp-adam0.05-wd" not in names
    assert "| skipped |" in ablation.search_table({"runs": {}})
    assert len(per_row["bnn"]) == len(per_row["irnet"]) == 2 * points
    assert {o["optimizer"] for o in per_row["bnn"]} == {"sgd", "adam"}
    # DIR-Net is searched like IR-Net, and every searched row has a label in the table.
    assert len(per_row["dirnet"]) == 2 * points
    assert "| DIR-Net (IMB + DTE) |" in ablation.search_table({"runs": {}})


def test_search_only_selects_named_runs_in_grid_order_and_refuses_unknown(ablation):
    names = [name for name, _, _ in ablation.search_grid()]
    picked = [names[5], names[1]]
    assert [n for n, _, _ in ablation._selected_search(picked)] == [names[1], names[5]]
    assert [n for n, _, _ in ablation._selected_search(None)] == names
    with pytest.raises(SystemExit, match=r"--only: unknown search runs \['bnn-sgd9-wd'\]"):
        ablation._selected_search(["bnn-sgd9-wd", names[0]])


def test_search_plot_draws_every_finished_run(ablation, tmp_path):
    search = {"runs": {}}
    for name, binarization, overrides in ablation.search_grid()[:5]:
        search["runs"][name] = {
            "binarization": binarization,
            "overrides": overrides,
            "final_validation_accuracy": 0.5 + len(search["runs"]) / 100,
        }
    results = tmp_path / "search.json"
    results.write_text(json.dumps(search))
    argv = ["--search", "--results", str(results), "--plots", str(tmp_path / "plots")]
    assert ablation.main(argv) == 0
    assert (tmp_path / "plots" / "search.png").stat().st_size > 10_000
    results.write_text(json.dumps({"runs": {}}))
    with pytest.raises(SystemExit, match="no finished search runs to plot"):
        ablation.main(argv)


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


def _search(*rows):
    """A search results file with one run per (row, learning rate, score)."""
    runs = {}
    for row, lr, score in rows:
        overrides = {"optimizer": "sgd", "learning_rate": lr, "decay_latent_weights": False}
        runs[f"{row}-{lr}"] = {
            "binarization": row,
            "overrides": overrides,
            "final_validation_accuracy": score,
        }
    return {"runs": runs}


def test_tuned_rows_take_their_family_recipe_and_missing_searches_are_named(
    ablation, tmp_path, capsys
):
    search = _search(("fp", 0.1, 0.9), ("bnn", 0.03, 0.8), ("irnet", 0.1, 0.85))
    recipes, missing = ablation.tuned_recipes(search)
    # IR-Net on DIR-Net's recipe has no fallback: it exists to train that recipe.
    assert missing == {"irnet_dirnet_recipe": ("dirnet",)}
    assert set(recipes) == set(ablation.TUNED_ROWS) - {"irnet_dirnet_recipe"}
    assert recipes["bnn"] == ("bnn", search["runs"]["bnn-0.03"]["overrides"])
    for row in ("libra_pb", "ede", "irnet+rbd", "imb", "dte", "dirnet", "dirnet+rbd"):
        assert recipes[row][0] == "irnet", row  # dirnet not searched yet: irnet's
    search["runs"] |= _search(("dirnet", 0.03, 0.86))["runs"]
    recipes, _ = ablation.tuned_recipes(search)
    assert {row for row, (source, _) in recipes.items() if source == "dirnet"} == {
        "imb",
        "dte",
        "dirnet",
        "dirnet+rbd",
        "dirnet_act",
        "irnet_dirnet_recipe",
    }
    table = ablation.recipe_table(recipes)
    edged = ablation.recipe_table(recipes, {"dirnet": "sgd 0.03 is the lowest sgd rate searched"})
    assert "| DIR-Net + RBD | dirnet | sgd 0.03, off (on the grid's edge: trained only" in edged
    assert "| Libra-PB | irnet | sgd 0.1, off |" in edged
    assert "| DIR-Net + RBD | dirnet | sgd 0.03, off |" in table
    assert "| Libra-PB | irnet | sgd 0.1, off |" in table

    # A row whose search rows have no result is refused before anything trains.
    path = tmp_path / "search.json"
    path.write_text(json.dumps(_search(("bnn", 0.1, 0.8))))
    argv = ["--protocol", "tuned", "--search-results", str(path)]
    argv += ["--output-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "t.json")]
    with pytest.raises(SystemExit, match=r"no search result for dirnet, irnet \(needed by"):
        ablation.main([*argv, "--only", "bnn-seed0", "dirnet-seed0"])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t.json").exists()
    _, missing = ablation.tuned_recipes(json.loads(path.read_text()))
    assert missing["irnet"] == ("irnet",) and missing["dirnet+rbd"] == ("dirnet", "irnet")

    # So is a row whose best is at the highest or lowest rate searched, unless allowed.
    path.write_text(json.dumps(_search(("bnn", 0.1, 0.8), ("bnn", 0.03, 0.7))))
    with pytest.raises(
        SystemExit, match=r"row bnn is on the grid's edge \(bnn: sgd 0.1 is the high"
    ):
        ablation.main([*argv, "--only", "bnn-seed0"])
    assert not (tmp_path / "runs").exists() and not (tmp_path / "t.json").exists()

    # And a row whose finished seed trained another recipe than the search picks now.
    path.write_text(json.dumps(_search(("bnn", 0.3, 0.7), ("bnn", 0.1, 0.8), ("bnn", 0.03, 0.7))))
    trained = {"optimizer": "sgd", "learning_rate": 0.3, "decay_latent_weights": False}
    (tmp_path / "t.json").write_text(
        json.dumps({"runs": {"bnn-seed0": {"row": "bnn", "overrides": trained}}})
    )
    with pytest.raises(SystemExit, match=r"bnn-seed0 trained sgd 0.3, .* now picks sgd 0.1"):
        ablation.main([*argv, "--only", "bnn-seed1"])
    assert not (tmp_path / "runs").exists()


def test_tuned_comparisons_state_the_noise_and_the_gap_closed(ablation):
    runs = {
        "fp-seed0": {**_row("fp", 0, 0.92), "row": "fp"},
        "bnn-seed0": {**_row("bnn", 0, 0.86), "row": "bnn"},
        "bnn-seed1": {**_row("bnn", 1, 0.87), "row": "bnn"},
        "irnet-seed0": {**_row("irnet", 0, 0.875), "row": "irnet"},
        "irnet-seed1": {**_row("irnet", 1, 0.885), "row": "irnet"},
        "irnet+rbd-seed0": {**_row("irnet", 0, 0.89), "row": "irnet+rbd"},
    }
    tuned = ablation.PROTOCOLS["tuned"]
    lines = ablation.comparisons({"runs": runs}, tuned, std=0.5)
    assert lines == [
        "IR-Net - plain binary: +1.50 points (2 SE = 1.00): resolved (runs: 2 and 2)",
        "IR-Net + RBD - IR-Net: +1.00 points (2 SE = 1.22): not resolved (runs: 1 and 2)",
        "Full precision - IR-Net: +4.00 points (runs: 1 and 2)",
        "IR-Net closes 27% of the gap from plain binary to full precision (+1.50 of 5.50 points)",
    ]
    table = ablation.table({"runs": runs}, tuned)
    # Rows of the tuned protocol are told apart by name, not by binarization.
    assert "| IR-Net + RBD | 89.00 (s0) | 89.00 |  |" in table
    assert "| IR-Net (Libra-PB + EDE) | 87.50 (s0), 88.50 (s1) | 88.00 | 86.5 |" in table
    # Every row is listed, run or not, so that the table shows what is still to come.
    assert "| DIR-Net (IMB + DTE) | not run yet | |  |" in table
    assert "| Libra-PB | not run yet | | 84.9 |" in table


def test_the_latent_lr_row_comes_after_the_finished_paper_rows(ablation):
    assert ablation.RUNS[-1] == ("bnn_lr_scaled", 0)
    assert [r for r, _ in ablation.RUNS[:-1]] == [
        "irnet", "bnn", "irnet", "bnn", "libra_pb", "ede", "fp", "libra_pb_no_std",
        "libra_pb_no_scale",
    ]  # fmt: skip
    row = ablation.ROWS["bnn_lr_scaled"]
    assert row.binarization == "bnn" and row.paper is None
    assert row.overrides == {"latent_lr_scale": ablation.LATENT_LR_SCALE}
    # The paper protocol's recipe is SGD, where a latent learning-rate scale exists.
    assert recipes.get_recipe(ablation.RECIPE).optimizer == "sgd"


def test_median_inverse_std_is_per_output_channel_unbiased(ablation):
    model = tiny_model(input_shape=(28, 28, 1), binarization="bnn")
    kernel = model.layers[4].kernel  # the QuantConv2D's latent kernel (3, 3, 8, 8)
    rng = np.random.default_rng(0)
    values = rng.normal(size=kernel.shape) * np.arange(1, 9) / 10
    kernel.latent_variable.assign(values.astype(np.float32))
    expected = [1 / np.std(values[..., o].astype(np.float32), ddof=1) for o in range(8)]
    assert ablation.median_inverse_std(model) == pytest.approx(np.median(expected), rel=1e-5)


@pytest.mark.slow  # builds two ResNet-20s
def test_latent_lr_scale_is_the_median_inverse_std_of_the_paper_protocol_weights(ablation):
    measured = ablation.measure_latent_scale()
    assert ablation.LATENT_LR_SCALE == pytest.approx(measured["trained"], abs=0.005)
    assert measured["initial"] == pytest.approx(12.7436, abs=1e-3)


@pytest.mark.slow  # trains two rows, one distilled from the other
def test_tuned_protocol_trains_searched_recipes_and_distils_from_the_fp_row(
    ablation, tiny_recipe, tmp_path, capsys, fashion_mnist
):
    search = tmp_path / "search.json"
    search.write_text(
        json.dumps(_search(("fp", 0.03, 0.9), ("bnn", 0.1, 0.8), ("irnet", 0.03, 0.85)))
    )
    results_path = tmp_path / "tuned.json"
    argv = ["--protocol", "tuned", "--search-results", str(search)]
    argv += ["--output-dir", str(tmp_path / "runs"), "--results", str(results_path)]
    argv += ["--epochs", "1", "--steps-per-epoch", "2", "--train-limit", "256"]
    argv += ["--allow-grid-edge"]  # one rate per row: every best is on the grid's edge
    # Its teacher is not trained yet: the distilled row waits for it.
    assert ablation.main([*argv, "--only", "irnet+rbd-seed0"]) == 0
    assert "irnet+rbd-seed0: skipped, its teacher" in capsys.readouterr().out
    assert ablation.main([*argv, "--only", "fp-seed0", "irnet+rbd-seed0"]) == 0
    out = capsys.readouterr().out
    results = json.loads(results_path.read_text())
    assert results["protocol"] == "tuned" and results["epochs"] == 1
    assert results["recipes"]["irnet+rbd"]["search_row"] == "irnet"
    distilled = results["runs"]["irnet+rbd-seed0"]
    teacher = tmp_path / "runs" / "fp-seed0"
    assert distilled["row"] == "irnet+rbd" and distilled["binarization"] == "irnet"
    assert distilled["distill_from"] == str(teacher.resolve())
    assert distilled["overrides"]["learning_rate"] == 0.03
    assert 0 < distilled["final_test_alignment_loss"] <= 2
    config = json.loads((tmp_path / "runs" / "irnet+rbd-seed0" / "config.json").read_text())
    assert config["recipe"]["learning_rate"] == 0.03
    assert config["recipe"]["decay_latent_weights"] is False
    assert config["distillation"]["teacher"] == str(teacher.resolve())
    assert "| IR-Net + RBD | recipe of search row" not in out
    plots = tmp_path / "plots"
    assert (
        ablation.main(
            ["--protocol", "tuned", "--results", str(results_path), "--plots", str(plots)]
        )
        == 0
    )
    assert {p.name for p in plots.iterdir()} >= {"tuned_accuracy.png"}
    assert not [p.name for p in plots.iterdir() if not p.name.startswith("tuned_")]
    # The mapping, printed; every best here is on the grid's edge, trained as allowed.
    assert "| IR-Net + RBD | irnet | sgd 0.03, off (on the grid's edge: trained only with" in out
    assert ablation.table(results, ablation.PROTOCOLS["tuned"]) in out
    # Another budget into the same results file is refused.
    argv[argv.index("--epochs") + 1] = "2"
    with pytest.raises(SystemExit, match=r"--epochs 2: .* holds a budget of 1 epochs"):
        ablation.main([*argv, "--only", "fp-seed0"])
