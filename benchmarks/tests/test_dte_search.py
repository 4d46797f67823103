"""benchmarks/dte_search.py: DTE's constants reach training, the rule, the page's block."""

import json
from pathlib import Path

from larq_irnet.estimators import dte_band_width
from larq_irnet.training.run_directory import HISTORY, read_history

import pytest


@pytest.fixture
def script(load_benchmark):
    return load_benchmark("dte_search")


def search_file(path, validation_size=128):
    """A search results file whose dirnet row's best is Adam 1e-2 (inside its grid)."""
    runs = {}
    for lr, score in ((0.004, 0.80), (0.01, 0.82), (0.025, 0.81)):
        overrides = {"optimizer": "adam", "learning_rate": lr, "decay_latent_weights": True}
        runs[f"dirnet-adam{lr:g}-wd"] = {
            "binarization": "dirnet",
            "overrides": overrides,
            "validation_size": validation_size,
            "final_validation_accuracy": score,
        }
    path.write_text(json.dumps({"runs": runs}))
    return path


def tiny_run(tmp_path, run, epochs):
    """`main`'s arguments for RUN at a tiny budget, results in tmp_path/results.json;
    `--only RUN` last."""
    return [
        "--epochs", str(epochs), "--steps-per-epoch", "2", "--train-limit", "512",
        "--output-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results.json"),
        "--search-results", str(search_file(tmp_path / "search.json")),
        "--only", run,
    ]  # fmt: skip


def results_of(scores, ede=None):
    """A results file's content: {(epsilon, band fraction, seed): validation accuracy} of
    DTE runs, and the EDE point's seed-0 accuracy `ede`."""
    runs = {
        f"eps{e:g}-band{b:g}-seed{s}": {
            "estimator": "dte", "epsilon": e, "band_fraction": b, "seed": s,
            "final_validation_accuracy": a,
        }
        for (e, b, s), a in scores.items()
    }  # fmt: skip
    if ede is not None:
        runs["ede-seed0"] = {
            "estimator": "ede", "epsilon": None, "band_fraction": None, "seed": 0,
            "final_validation_accuracy": ede,
        }  # fmt: skip
    return {"runs": runs}


def test_the_grid_goes_from_a_floor_that_never_binds_to_one_that_binds_all_stage_2(script):
    names = [name for name, *_ in script.all_runs()]
    assert len(names) == len(set(names)) == 12
    assert names[:4] == [*(f"eps0.1-band0.25-seed{s}" for s in range(3)), "ede-seed0"]
    assert [p.binarization for p in script.POINTS] == ["dirnet", "imb", *["dirnet"] * 4]
    dte = [p for p in script.POINTS if p.estimator == "dte"]
    cells = [script.floor_epochs(p.epsilon, p.band_fraction, 10, p.stage_split) for p in dte]
    assert cells == ["none", "9-10 of 10", "8-10 of 10", "6-10 of 10", "none"]
    # The timing arm moves the split only: its runs set `dte_stage_split`, the others not.
    split = dte[-1]
    assert split.name == "eps0.1-band0.25-split0.75" and not split.is_default
    assert split.overrides == {
        "dte_epsilon": 0.1,
        "dte_band_fraction": 0.25,
        "dte_stage_split": 0.75,
    }
    assert "dte_stage_split" not in dte[0].overrides
    assert script.floor_epochs(1.0, 0.25) == "6, 10 of 10"


@pytest.mark.slow  # a DIR-Net ResNet-20 for a few steps, then the full test set once
def test_a_run_trains_dirnet_with_its_points_constants_on_the_searched_recipe(
    script, tmp_path, fashion_mnist
):
    results = tmp_path / "results.json"
    argv = tiny_run(tmp_path, "eps0.3-band0.25-seed0", epochs=2)
    with pytest.raises(SystemExit) as unknown:  # not a point of the grid
        script.main(argv)
    assert unknown.value.code == 2
    argv[-1] = "eps0.5-band0.5-seed0"
    assert script.main(argv) == 0
    config = json.loads((tmp_path / "runs" / argv[-1] / "config.json").read_text())
    recipe = config["recipe"]
    assert (recipe["optimizer"], recipe["learning_rate"]) == ("adam", 0.01)
    assert (recipe["dte_epsilon"], recipe["dte_band_fraction"]) == (0.5, 0.5)
    assert config["validation_size"] == 128
    history = read_history(tmp_path / "runs" / argv[-1] / HISTORY)
    assert [float(value) for value in history["dte_epsilon"]] == [0.5, 0.5]
    assert history["dte_width"][-1] == pytest.approx(dte_band_width(0.5))
    content = json.loads(results.read_text())
    run = content["runs"][argv[-1]]
    assert (run["epsilon"], run["band_fraction"], run["seed"]) == (0.5, 0.5, 0)
    assert 0 <= run["final_validation_accuracy"] <= 1
    assert not any("test" in key for key in run)  # validation scores only
    budget = {"epochs": 2, "steps_per_epoch": 2, "train_limit": 512}
    assert (content["budget"], content["validation_size"]) == (budget, 128)
    before = results.read_text()
    assert script.main(argv) == 0  # finished: skipped
    assert results.read_text() == before
    with pytest.raises(SystemExit, match=r"holds runs of another budget \(\{'epochs': 2, "):
        script.main([*argv[2:], "--epochs", "3"])
    block = script.docs_block(content)
    assert block.startswith(
        "- recipe: adam 0.01, latent wd on (DIR-Net's searched recipe), 2 epochs (at most 2 "
        "steps per epoch, 512 images), validation on the last 128 training images"
    )
    # At 2 epochs only the highest floor binds, in the one epoch of stage 2.
    assert "| DTE | 0.5 | 0.5 | " in block
    assert "| DTE | 1 | 0.5 | 0.5 | not run yet | - | - | 2 of 2 |" in block
    assert (
        "| EDE (the `imb` preset) | - | - | - | not run yet | not run yet | not run yet | no band |"
        in block
    )


@pytest.mark.slow  # an IMB + EDE ResNet-20 for a few steps, then the full test set once
def test_the_ede_point_trains_the_imb_preset_without_dte_fields(script, tmp_path, fashion_mnist):
    results = tmp_path / "results.json"
    argv = tiny_run(tmp_path, "ede-seed0", epochs=1)
    assert script.main(argv) == 0
    config = json.loads((tmp_path / "runs" / "ede-seed0" / "config.json").read_text())
    assert config["recipe"]["model_kwargs"]["binarization"] == "imb"
    assert (config["recipe"]["dte_epsilon"], config["recipe"]["dte_band_fraction"]) == (0.1, 0.25)
    assert (config["recipe"]["optimizer"], config["recipe"]["learning_rate"]) == ("adam", 0.01)
    run = json.loads(results.read_text())["runs"]["ede-seed0"]
    assert (run["estimator"], run["epsilon"], run["band_fraction"]) == ("ede", None, None)


def test_a_search_without_dirnet_results_is_refused_before_training(script, tmp_path):
    search = tmp_path / "search.json"
    argv = ["--search-results", str(search), "--output-dir", str(tmp_path / "runs")]
    argv += ["--results", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit, match=r"^--search-results: .*search.json does not exist; "):
        script.main(argv)
    search.write_text(json.dumps({"runs": {}}))
    with pytest.raises(SystemExit, match=r"^--search-results: .* no search result for dirnet"):
        script.main(argv)
    assert not (tmp_path / "runs").exists()


def test_the_rule_keeps_the_defaults_unless_a_point_beats_their_spread(script):
    scores = {(0.1, 0.25, 0): 0.850, (0.1, 0.25, 1): 0.846}
    others = {(0.5, 0.5, 0): 0.853, (1.0, 0.5, 0): 0.84}
    assert script.verdict(results_of({(0.1, 0.25, 0): 0.85, **others}, ede=0.9)) == [
        "the defaults' two seeds have not both finished: no comparison yet"
    ]
    assert script.verdict(results_of(scores)) == [
        "defaults: 85.00 / 84.60 (seed spread 0.40); against the defaults' better seed: none yet",
        "waiting for ede, eps0.1-band0.5, eps0.5-band0.5, eps1-band0.5: no verdict yet",
    ]
    assert script.verdict(results_of({**scores, **others}, ede=0.856)) == [
        "defaults: 85.00 / 84.60 (seed spread 0.40); against the defaults' better seed: "
        "ede +0.60, eps0.5-band0.5 +0.30, eps1-band0.5 -1.00",
        "waiting for eps0.1-band0.5: no verdict yet",
    ]
    close = results_of({**scores, **others, (0.1, 0.5, 0): 0.8539}, ede=0.852)
    assert script.verdict(close) == [
        "defaults: 85.00 / 84.60 (seed spread 0.40); against the defaults' better seed: "
        "ede +0.20, eps0.1-band0.5 +0.39, eps0.5-band0.5 +0.30, eps1-band0.5 -1.00",
        "no point beats the defaults by more than their seed spread: the defaults stay",
    ]
    better = results_of({**scores, **others, (0.1, 0.5, 0): 0.8545}, ede=0.852)
    assert script.verdict(better)[1].startswith("eps0.1-band0.5 beats the defaults by more")
    ede = results_of({**scores, **others, (0.1, 0.5, 0): 0.8545}, ede=0.856)
    assert script.verdict(ede)[1] == (
        "EDE beats the defaults by more than their seed spread: DIR-Net's estimator "
        "should be EDE, not DTE (and the DIR-Net rows be retrained)"
    )
    row = "| DTE | 0.5 | 0.5 | 0.5 | 85.30 | - | - | 8-10 of 10 |"
    assert row in script.table(results_of({**scores, **others}))
    table = script.table(results_of(scores, ede=0.8512))
    assert "| DTE (defaults) | 0.1 | 0.25 | 0.5 | 85.00 | 84.60 | not run yet | none |" in table
    assert "| DTE | 0.1 | 0.5 | 0.5 | not run yet | - | - | 9-10 of 10 |" in table
    assert (
        "| EDE (the `imb` preset) | - | - | - | 85.12 | not run yet | not run yet | no band |"
        in table
    )


def test_the_timing_rule_adopts_an_arm_only_beyond_two_standard_errors(script):
    def results(defaults, split, ede):
        runs = {}
        for name, values, fields in (
            ("eps0.1-band0.25", defaults, ("dte", 0.1, 0.25, None)),
            ("eps0.1-band0.25-split0.75", split, ("dte", 0.1, 0.25, 0.75)),
            ("ede", ede, ("ede", None, None, None)),
        ):
            for seed, accuracy in enumerate(values):
                keys = ("estimator", "epsilon", "band_fraction", "stage_split")
                entry = dict(zip(keys, fields, strict=True))
                entry.update(seed=seed, final_validation_accuracy=accuracy)
                runs[f"{name}-seed{seed}"] = entry
        return {"runs": runs}

    waiting = script.timing_verdict(results((0.9, 0.91, 0.9), (0.9, 0.9), (0.9,)))
    assert waiting == [
        "timing: waiting for three seeds of eps0.1-band0.25-split0.75, ede: no verdict yet"
    ]
    # Groups with std 0.5 points each: s = 0.5, 2 SE = 2 * 0.5 * sqrt(2/3) = 0.82.
    defaults, split = (0.895, 0.900, 0.905), (0.903, 0.908, 0.913)
    ede = (0.905, 0.910, 0.915)
    lines = script.timing_verdict(results(defaults, split, ede))
    assert lines == [
        "timing: pooled std 0.50 points (6 degrees of freedom)",
        "eps0.1-band0.25-split0.75 - defaults: +0.80 points (2 SE = 0.82): not resolved",
        "ede - defaults: +1.00 points (2 SE = 0.82): resolved",
        "timing: ede beats the defaults beyond two standard errors",
    ]
    kept = script.timing_verdict(results(defaults, split, (0.880, 0.885, 0.890)))
    assert (
        kept[-1] == "timing: no arm beats the defaults by more than two standard errors: they stay"
    )


def test_the_dirnet_page_shows_what_the_results_file_holds(script):
    page = (Path(__file__).resolve().parents[2] / "docs" / "dirnet.md").read_text()
    block = page.split("<!-- dte_search -->\n")[1].split("\n<!-- /dte_search -->")[0]
    assert block == script.docs_block(script.load_results(script.RESULTS))


@pytest.mark.slow  # a subprocess that imports TensorFlow
def test_the_command_reports_a_broken_results_file_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    broken = tmp_path / "results.json"
    broken.write_text("not json{")
    command = [sys.executable, str(root / "benchmarks" / "dte_search.py"), "--results"]
    command += [str(broken), "--search-results", str(search_file(tmp_path / "search.json"))]
    command += ["--output-dir", str(tmp_path / "runs")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "benchmarks/dte_search.py: error: Expecting value: line 1 column 1 (char 0)"
    )
    assert not (tmp_path / "runs").exists()
