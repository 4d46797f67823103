"""benchmarks/irnetify_zoo.py on a tiny budget: both methods train, results resume."""

import json
from pathlib import Path

from larq_irnet.training.run_directory import HISTORY, read_history

import pytest
from tiny import tiny_model


@pytest.fixture
def script(load_benchmark, monkeypatch):
    module = load_benchmark("irnetify_zoo")
    # A larq-style network with ste_sign and weight_clip, in QuickNetSmall's place.
    monkeypatch.setitem(
        module.NETWORKS,
        "tiny",
        lambda input_shape, num_classes: tiny_model(
            input_shape=(module.PADDED, module.PADDED, input_shape[-1]),
            num_classes=num_classes,
            binarization="bnn",
        ),
    )
    return module


def search_file(path, scores):
    """A search results file: {(row, optimizer, lr): validation accuracy}."""
    runs = {}
    for (row, optimizer, lr), score in scores.items():
        overrides = {"optimizer": optimizer, "learning_rate": lr, "decay_latent_weights": True}
        runs[f"{row}-{optimizer}{lr:g}"] = {
            "binarization": row,
            "overrides": overrides,
            "final_validation_accuracy": score,
        }
    path.write_text(json.dumps({"runs": runs}))
    return path


def test_both_methods_train_on_their_searched_recipes_and_a_rerun_skips_finished_runs(
    script, tmp_path, fashion_mnist
):
    results = tmp_path / "results.json"
    search = search_file(
        tmp_path / "search.json",
        {
            ("bnn", "sgd", 0.1): 0.7,
            ("bnn", "adam", 0.001): 0.75,
            ("bnn", "adam", 0.004): 0.8,  # plain binary's best: the zoo network's recipe
            ("bnn", "adam", 0.01): 0.78,
            ("irnet", "sgd", 0.03): 0.6,
            ("irnet", "sgd", 0.1): 0.9,
            ("irnet", "sgd", 0.3): 0.88,
            ("irnet", "adam", 0.004): 0.85,
        },
    )
    argv = [
        "--network", "tiny", "--epochs", "1", "--steps-per-epoch", "2", "--train-limit", "256",
        "--output-dir", str(tmp_path / "runs"), "--results", str(results),
        "--search-results", str(search), "--only", "zoo-seed0", "irnet-seed0",
    ]  # fmt: skip
    assert script.main(argv) == 0
    content = json.loads(results.read_text())
    runs = content["runs"]
    assert sorted(runs) == ["irnet-seed0", "zoo-seed0"]
    for run in runs.values():
        assert run["network"] == "tiny" and 0.0 <= run["final_test_accuracy"] <= 1.0
        assert len(run["history"]["val_accuracy"]) == 1
    assert content["protocol"] == "tuned"
    for name, optimizer, lr in (("zoo-seed0", "adam", 0.004), ("irnet-seed0", "sgd", 0.1)):
        config = json.loads((tmp_path / "runs" / name / "config.json").read_text())
        assert (config["recipe"]["optimizer"], config["recipe"]["learning_rate"]) == (
            optimizer,
            lr,
        )
        assert runs[name]["recipe"]["optimizer"] == optimizer
    # irnetify gave the model EDE quantizers, so train() added EDECallback (it logs ede_t).
    assert "ede_t" in read_history(tmp_path / "runs" / "irnet-seed0" / HISTORY)
    assert "ede_t" not in read_history(tmp_path / "runs" / "zoo-seed0" / HISTORY)
    before = results.read_text()
    assert script.main(argv) == 0
    assert results.read_text() == before


def test_the_wrapper_pads_28_to_32_and_irnetify_opens_the_network(script):
    zoo = script.padded_network(input_shape=(28, 28, 1), num_classes=10, network="tiny")
    irnet = script.padded_network(
        input_shape=(28, 28, 1), num_classes=10, network="tiny", method="irnet"
    )
    assert zoo.input_shape == irnet.input_shape == (None, 28, 28, 1)
    assert zoo.layers[1].output_shape == (None, 32, 32, 1)
    inner = irnet.layers[-1]
    quantizers = {
        type(layer.kernel_quantizer).__name__
        for layer in inner.layers
        if hasattr(layer, "kernel_quantizer") and layer.kernel_quantizer
    }
    assert quantizers == {"LibraPB"}


def test_tuned_protocol_without_a_search_result_is_refused_by_name(script, tmp_path):
    search = search_file(tmp_path / "search.json", {("bnn", "sgd", 0.1): 0.7})
    argv = ["--network", "tiny", "--search-results", str(search)]
    argv += ["--output-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "r.json")]
    with pytest.raises(SystemExit, match="has no search result for irnet"):
        script.main(argv)
    assert not (tmp_path / "runs").exists()


def test_tuned_protocol_refuses_a_best_on_the_grids_edge(script, tmp_path):
    scores = {("bnn", "adam", 0.001): 0.7, ("bnn", "adam", 0.01): 0.8}
    scores |= {("irnet", "adam", 0.001): 0.8, ("irnet", "adam", 0.004): 0.9}
    scores[("irnet", "adam", 0.01)] = 0.85
    search = search_file(tmp_path / "search.json", scores)
    argv = ["--network", "tiny", "--search-results", str(search)]
    argv += ["--output-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "r.json")]
    with pytest.raises(
        SystemExit, match=r"search row bnn is on the grid's edge \(bnn: adam 0.01 is the highest"
    ):
        script.main(argv)
    assert not (tmp_path / "runs").exists()
    assert script.tuned_overrides(search, allow_grid_edge=True)["zoo"]["learning_rate"] == 0.01
    # Only the methods that will train are checked: irnet's row is inside the grid.
    assert script.tuned_overrides(search, methods=["irnet"])["irnet"]["learning_rate"] == 0.004


def _results(*runs):
    """An irnetify_zoo results file's content: (method, seed, accuracy) per run."""
    return {
        "recipes": {
            "zoo": {"optimizer": "adam", "learning_rate": 0.01, "decay_latent_weights": True},
            "irnet": {"optimizer": "sgd", "learning_rate": 0.1, "decay_latent_weights": False},
        },
        "runs": {
            f"{m}-seed{s}": {
                "network": "QuickNetSmall", "method": m, "seed": s,
                "final_test_accuracy": a, "epochs": 10,
            }
            for m, s, a in runs
        },
    }  # fmt: skip


def test_comparison_states_the_difference_of_means_against_the_seed_spread(script):
    results = _results(("zoo", 0, 0.80), ("zoo", 1, 0.82), ("irnet", 0, 0.85), ("irnet", 1, 0.86))
    assert script.comparison(results) == [
        "irnet - zoo: +4.50 points (means of 2+ seeds); seed spread (max - min): "
        "zoo 2.00, irnet 1.00",
        "the difference is larger than the larger seed spread (2.00)",
    ]
    close = _results(("zoo", 0, 0.80), ("zoo", 1, 0.82), ("irnet", 0, 0.81), ("irnet", 1, 0.815))
    assert script.comparison(close)[1] == "the difference is within the larger seed spread (2.00)"
    assert "not both methods" in script.comparison(_results(("zoo", 0, 0.8)))[0]
    block = script.docs_block(results)
    assert "- `zoo` trains bnn's searched recipe: adam 0.01, latent weight decay on" in block
    assert "- budget: 10 epochs per run" in block
    assert "| QuickNetSmall | irnet | 85.00 / 86.00 | 85.50 |" in block


def test_results_page_shows_what_the_results_file_holds(script):
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "results.md").read_text()
    block = page.split("<!-- irnetify_zoo -->\n")[1].split("\n<!-- /irnetify_zoo -->")[0]
    assert block == script.docs_block(script.load_results(script.RESULTS))
    # IR-Net on plain binary's recipe, beside the plain runs of the main file.
    same = page.split("<!-- irnetify_zoo:same_recipe -->\n")[1]
    same = same.split("\n<!-- /irnetify_zoo:same_recipe -->")[0]
    results = script.load_results(script.SAME_RECIPE_RESULTS)
    main = script.load_results(script.RESULTS)
    assert same == script.docs_block(script.with_reference_runs(results, main, script.RESULTS))
    assert "| QuickNetSmall | zoo |" in same and "| QuickNetSmall | irnet |" in same


def test_reference_runs_of_another_recipe_are_refused(script, tmp_path):
    same = _results(("irnet", 0, 0.88))
    same["recipes"]["irnet"] = same["recipes"]["zoo"]
    merged = script.with_reference_runs(same, _results(("zoo", 0, 0.9)), tmp_path / "r.json")
    assert sorted(merged["runs"]) == ["irnet-seed0", "zoo-seed0"]
    other = _results(("zoo", 0, 0.9))
    other["recipes"]["zoo"] = {"optimizer": "sgd", "learning_rate": 0.1}
    with pytest.raises(SystemExit, match=r"r\.json: zoo trained .*'sgd'.*, not this file's"):
        script.with_reference_runs(same, other, tmp_path / "r.json")


def test_recipe_row_trains_a_method_on_another_rows_recipe(script, tmp_path, capsys):
    scores = {("bnn", "adam", 0.001): 0.7, ("bnn", "adam", 0.004): 0.8}
    scores |= {("bnn", "adam", 0.01): 0.75, ("irnet", "adam", 0.001): 0.7}
    scores |= {("irnet", "adam", 0.01): 0.9, ("irnet", "adam", 0.025): 0.8}
    search = search_file(tmp_path / "search.json", scores)
    same = script.tuned_overrides(search, rows={"zoo": "bnn", "irnet": "bnn"})
    assert same["irnet"] == same["zoo"] and same["irnet"]["learning_rate"] == 0.004
    assert script.tuned_overrides(search)["irnet"]["learning_rate"] == 0.01
    with pytest.raises(SystemExit) as refused:
        script.main(["--recipe-row", "irnet:bnn", "--search-results", str(search)])
    assert refused.value.code == 2
    assert "--recipe-row: expected METHOD=ROW" in capsys.readouterr().err


def test_update_docs_rewrites_the_named_block_only(script, tmp_path, capsys):
    results = tmp_path / "same.json"
    results.write_text(json.dumps(_results(("irnet", 0, 0.875))))
    page = tmp_path / "results.md"
    page.write_text(
        "<!-- irnetify_zoo -->\nmain\n<!-- /irnetify_zoo -->\n"
        "<!-- irnetify_zoo:same_recipe -->\nold\n<!-- /irnetify_zoo:same_recipe -->\n"
    )
    argv = ["--results", str(results), "--update-docs", str(page)]
    assert script.main([*argv, "--block", "irnetify_zoo:same_recipe"]) == 0
    assert "rewrote the irnetify_zoo:same_recipe block" in capsys.readouterr().out
    text = page.read_text()
    assert "<!-- irnetify_zoo -->\nmain\n<!-- /irnetify_zoo -->" in text
    assert "| QuickNetSmall | irnet | 87.50 | 87.50 |" in text and "old" not in text
