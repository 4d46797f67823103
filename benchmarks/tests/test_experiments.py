"""benchmarks/experiments.py, the lab's shared helpers (not installed): which runs train,
what the results file records, best recipes, generated docs blocks.

`train` is replaced by a recorder here: what it trains is tested in test_training.py and,
through the benchmarks that use this module, in test_ablation.py and test_irnetify_zoo.py.
"""

import dataclasses
import json

from larq_irnet.training.run_directory import RunDirectoryInUse

import pytest


@pytest.fixture(scope="module")
def experiments(load_benchmark):
    return load_benchmark("experiments")


@pytest.fixture
def trained(experiments, monkeypatch):
    """Replace `train`: record its calls, make the run directory, return a summary."""
    calls = []

    def fake_train(recipe, output_dir, options):
        # The options the experiment set: those that differ from TrainOptions' defaults.
        kwargs = {
            field.name: getattr(options, field.name)
            for field in dataclasses.fields(options)
            if getattr(options, field.name) != field.default
        }
        if (output_dir / "busy").exists():
            raise RunDirectoryInUse(f"{output_dir} is locked by another process")
        output_dir.mkdir(parents=True, exist_ok=True)
        calls.append((recipe, output_dir.name, kwargs))
        return {"final_test_accuracy": 0.5 + kwargs.get("seed", 0) / 10}

    monkeypatch.setattr(experiments, "train", fake_train)
    return calls


def entry(summary, run_dir, run):
    return {"top1": summary["final_test_accuracy"], **run.info}


def test_runs_train_in_order_with_shared_and_own_keywords(experiments, trained, tmp_path):
    runs = [
        experiments.Run("a", {"seed": 1}, {"row": "x"}),
        experiments.Run("b", {"seed": 2, "epochs": 5}),
    ]
    lines = []
    results = experiments.train_runs(
        runs,
        recipe="r",
        output_dir=tmp_path / "runs",
        results=tmp_path / "out" / "results.json",
        entry=entry,
        header={"protocol": "p"},
        callbacks=lambda: ["callback"],
        score="final_test_accuracy",
        log=lines.append,
        epochs=3,
    )
    assert [(recipe, name) for recipe, name, _ in trained] == [("r", "a"), ("r", "b")]
    assert trained[0][2] == {"seed": 1, "epochs": 3, "extra_callbacks": ["callback"]}
    assert trained[1][2]["epochs"] == 5  # a run's own keywords win
    assert results == json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["protocol"] == "p"
    assert results["runs"] == {"a": {"top1": 0.6, "row": "x"}, "b": {"top1": 0.7}}
    assert "== a: final_test_accuracy 0.6000" in lines


def test_finished_runs_without_a_directory_locked_runs_and_missing_teachers_are_skipped(
    experiments, trained, tmp_path
):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"runs": {"gone": {"top1": 0.9}}}))
    (tmp_path / "runs" / "busy-run").mkdir(parents=True)
    (tmp_path / "runs" / "busy-run" / "busy").touch()
    runs = [
        experiments.Run("gone"),
        experiments.Run("busy-run"),
        experiments.Run("student", {"distill_from": tmp_path / "runs" / "teacher"}),
        experiments.Run("teacher"),
    ]
    lines = []
    experiments.train_runs(
        runs, recipe="r", output_dir=tmp_path / "runs", results=path, entry=entry, log=lines.append
    )
    assert [name for _, name, _ in trained] == ["teacher"]
    assert any("gone" in line and "not retraining" in line for line in lines)
    assert any("busy-run: skipped" in line and "locked" in line for line in lines)
    assert any("student: skipped, its teacher" in line for line in lines)
    assert set(experiments.load_results(path)["runs"]) == {"gone", "teacher"}


def test_a_teacher_model_file_or_zoo_name_is_ready_at_once(experiments, trained, tmp_path):
    model = tmp_path / "teacher.h5"
    model.write_bytes(b"")
    runs = [
        experiments.Run("from-file", {"distill_from": model}),
        experiments.Run("from-zoo", {"distill_from": "fashion_mnist"}),
        experiments.Run("from-dir", {"distill_from": str(tmp_path / "runs" / "not-yet")}),
    ]
    lines = []
    experiments.train_runs(
        runs, recipe="r", output_dir=tmp_path / "runs", results=tmp_path / "r.json",
        entry=entry, log=lines.append,
    )  # fmt: skip
    assert [name for _, name, _ in trained] == ["from-file", "from-zoo"]
    assert any("from-dir: skipped, its teacher" in line for line in lines)


def test_load_results_of_a_missing_file_has_the_defaults(experiments, tmp_path):
    assert experiments.load_results(tmp_path / "none.json", recipe="r") == {
        "recipe": "r",
        "runs": {},
    }


def test_best_recipes_take_each_binarizations_best_validation_score(experiments):
    def run(binarization, lr, score):
        return {
            "binarization": binarization,
            "overrides": {"learning_rate": lr},
            "final_validation_accuracy": score,
        }

    search = {"runs": {"1": run("bnn", 0.1, 0.8), "2": run("bnn", 0.03, 0.85)}}
    search["runs"] |= {"3": run("irnet", 0.1, 0.9), "4": run("irnet", 0.03, 0.9)}
    search["runs"]["5"] = run("bnn", 0.01, None)  # no score: not a candidate
    assert experiments.best_recipes(search) == {
        "bnn": {"learning_rate": 0.03},
        "irnet": {"learning_rate": 0.1},  # a tie keeps the run listed first
    }


def test_grid_edges_name_the_rows_whose_best_rate_is_the_highest_or_lowest_searched(experiments):
    def run(binarization, optimizer, lr, score):
        return {
            "binarization": binarization,
            "overrides": {"optimizer": optimizer, "learning_rate": lr},
            "final_validation_accuracy": score,
        }

    runs = [
        run("fp", "adam", 0.001, 0.80),
        run("fp", "adam", 0.01, 0.85),  # fp: best at the highest adam rate
        run("fp", "sgd", 0.1, 0.84),
        run("bnn", "adam", 0.001, 0.70),
        run("bnn", "adam", 0.004, 0.75),  # bnn: inside its adam rates
        run("bnn", "adam", 0.01, 0.74),
        run("bnn", "adam", 0.025, None),  # unscored: not a rate searched
        run("irnet", "sgd", 0.1, 0.80),
        run("irnet", "sgd", 0.03, 0.81),  # irnet: the lowest sgd rate
        run("irnet", "adam", 0.01, 0.70),
        run("dirnet", "sgd", 0.1, 0.5),  # one rate only: both edges
    ]
    assert experiments.grid_edges({"runs": {str(i): r for i, r in enumerate(runs)}}) == {
        "fp": "adam 0.01 is the highest adam rate searched",
        "irnet": "sgd 0.03 is the lowest sgd rate searched",
        "dirnet": "sgd 0.1 is the highest and lowest sgd rate searched",
    }


def test_a_row_whose_finished_runs_trained_another_recipe_is_refused(experiments):
    adam = {"optimizer": "adam", "learning_rate": 0.01, "decay_latent_weights": True}
    results = {"runs": {"irnet-seed0": {"row": "irnet", "overrides": {**adam, "seed": 0}}}}
    experiments.check_unchanged(
        results, {"irnet": adam}, row_key="row", recipe_key="overrides", where="r"
    )
    experiments.check_unchanged(results, {"bnn": {**adam, "learning_rate": 0.1}}, row_key="row",
                    recipe_key="overrides", where="r")  # fmt: skip
    moved = {**adam, "learning_rate": 0.025}
    with pytest.raises(SystemExit, match=(
        r"^r\.json: irnet-seed0 trained adam 0\.01, latent wd on, but the search now picks "
        r"adam 0\.025, latent wd on for irnet; move that entry"
    )):  # fmt: skip
        experiments.check_unchanged(
            results, {"irnet": moved}, row_key="row", recipe_key="overrides", where="r.json"
        )


def test_budget_options_are_checked_as_they_are_parsed(experiments, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="script")
    experiments.add_budget_arguments(parser, epochs="4")
    args = parser.parse_args(["--epochs", "2", "--train-limit", "512", "--data-dir", "d"])
    expected = {"epochs": 2, "steps_per_epoch": None, "train_limit": 512, "data_dir": "d"}
    assert experiments.budget(args) == expected
    assert "default: 4" in parser.format_help()
    with pytest.raises(SystemExit) as error:
        parser.parse_args(["--steps-per-epoch", "0"])
    assert error.value.code == 2
    assert (
        "argument --steps-per-epoch: expected a positive integer, got '0'"
        in capsys.readouterr().err
    )


def test_a_scripts_bad_input_is_one_line_with_status_1(experiments, tmp_path, capsys):
    broken = tmp_path / "results.json"
    broken.write_text("not json{")

    def main(argv):
        experiments.load_results(argv[0])
        return 0

    assert experiments.main_with_one_line_errors(main, "script.py", [str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("script.py: error: Expecting value") and err.count("\n") == 1

    def missing(argv):
        open(tmp_path / "nope.md")

    assert experiments.main_with_one_line_errors(missing, "script.py") == 1
    assert "No such file or directory" in capsys.readouterr().err
    assert experiments.main_with_one_line_errors(lambda argv: 0, "script.py") == 0


def test_rewrite_marked_blocks_replaces_only_between_markers(experiments, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("a\n<!-- one -->\nold\n<!-- /one -->\nb\n<!-- two -->\n<!-- /two -->\nc\n")
    blocks = {"one": "new 1", "two": "new 2"}
    assert experiments.rewrite_marked_blocks(page, blocks) == ["one", "two"]
    assert page.read_text() == (
        "a\n<!-- one -->\nnew 1\n<!-- /one -->\nb\n<!-- two -->\nnew 2\n<!-- /two -->\nc\n"
    )
    before = page.read_text()
    with pytest.raises(SystemExit, match=r"page.md: no <!-- three --> \.\.\. <!-- /three -->"):
        experiments.rewrite_marked_blocks(page, {"one": "x", "three": "y"})
    assert page.read_text() == before  # nothing written
