"""benchmarks/ship_weights.py: a run directory becomes a zoo weights file, scored as shipped."""

import json

from larq_irnet.legacy_h5 import estimator_state_entries
from larq_irnet.training.recipes import get_recipe
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import sha256sum, verified_path

import h5py
import numpy as np
import pytest

RECIPE = "fashion_mnist-resnet20-1w1a"


def _run_dir(path, *, dataset="fashion_mnist", model=None, **model_kwargs):
    """A finished-run directory as `larq-irnet train` leaves one (config, summary, model).

    As `train` writes it, the recipe's `model_kwargs` hold no binarization unless one was
    passed; the summary always names it.
    """
    path.mkdir()
    recipe = get_recipe(RECIPE).to_dict()
    recipe["model_kwargs"].update(model_kwargs)
    (path / "config.json").write_text(json.dumps({"recipe": recipe}))
    summary = {
        "dataset": dataset,
        "binarization": "irnet",
        "epochs": 10,
        "seed": 0,
        "final_test_accuracy": 0.9002,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    if model is not None:
        model.save(path / "model.h5", save_format="h5", include_optimizer=False)
    return path


def _weights(path):
    with h5py.File(path, "r") as file:
        out = {}
        file.visititems(
            lambda name, item: (
                out.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
            )
        )
    return out


@pytest.mark.slow  # the full test set, in Keras and through LCE
def test_shipping_the_shipped_run_reproduces_its_weights_and_accuracy(
    tmp_path, fashion_mnist, load_benchmark
):
    # The shipped IR-Net model saved as its run would have saved it: shipping it again
    # gives the same weights and the accuracy its registry entry states.
    ship_weights = load_benchmark("ship_weights")
    model = IRNetResNet20(
        input_shape=(28, 28, 1), num_classes=10, binarization="irnet", weights="fashion_mnist"
    )
    run = _run_dir(tmp_path / "run", model=model)
    output = tmp_path / "shipped.h5"
    report = ship_weights.ship(run, output)
    assert report["sha256"] == sha256sum(output)
    assert report["binarization"] == "irnet"
    assert estimator_state_entries(output) == []
    shipped, again = _weights(verified_path("fashion_mnist", "irnet")), _weights(output)
    assert sorted(shipped) == sorted(again)
    for name, value in shipped.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    assert report["keras_accuracy"] == pytest.approx(0.9002, abs=5e-4)
    assert abs(report["lce_accuracy"] - report["keras_accuracy"]) <= 0.003
    assert report["agreement"] >= 0.995
    assert report["examples"] == 10000
    assert report["lce_bconv2d"] == 18
    assert abs(report["first_500_correct"] - 454) <= 1


def test_a_missing_or_foreign_run_is_a_one_line_error(tmp_path, load_benchmark):
    ship_weights = load_benchmark("ship_weights")
    output = tmp_path / "out.h5"
    with pytest.raises(ValueError, match="nowhere: not a directory"):
        ship_weights.ship(tmp_path / "nowhere", output)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"config\.json: missing; expected the config\.json"):
        ship_weights.ship(tmp_path / "empty", output)
    run = _run_dir(tmp_path / "cifar", dataset="cifar10")
    with pytest.raises(ValueError, match="trained on 'cifar10'; expected a Fashion-MNIST run"):
        ship_weights.ship(run, output)
    run = _run_dir(tmp_path / "unfinished")
    with pytest.raises(ValueError, match=r"model\.h5: missing"):
        ship_weights.ship(run, output)
    assert not output.exists()


def test_another_architecture_in_the_recipe_is_refused_and_the_output_kept(
    tmp_path, fashion_mnist, load_benchmark
):
    # The run trained 1w1a; a recipe saying 1w32a builds a model whose weights load but
    # whose outputs differ (float activations): refused before the output is replaced.
    ship_weights = load_benchmark("ship_weights")
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, binarization="irnet")
    run = _run_dir(tmp_path / "run", model=model, bits="1w32a")
    output = tmp_path / "shipped.h5"
    output.write_bytes(b"the registered file")
    with pytest.raises(ValueError, match="computes other outputs than the trained model"):
        ship_weights.ship(run, output)
    assert output.read_bytes() == b"the registered file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "shipped.h5"]  # no temporary


def test_bad_data_and_bad_paths_are_usage_errors(tmp_path, load_benchmark, capsys):
    ship_weights = load_benchmark("ship_weights")
    with pytest.raises(SystemExit) as exit:
        ship_weights.main([str(tmp_path), "--output", str(tmp_path / "w.keras")])
    assert exit.value.code == 2
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship_weights.main([str(tmp_path), "--output", str(tmp_path / "no" / "w.h5")])
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments = [str(tmp_path), "--output", str(tmp_path / "w.h5")]
        ship_weights.main([*arguments, "--report", str(tmp_path / "no" / "r.json")])
    assert "--report" in capsys.readouterr().err
    run = _run_dir(tmp_path / "run")
    (run / "model.h5").write_bytes(b"not hdf5")
    with pytest.raises(SystemExit):
        arguments = [str(run), "--output", str(tmp_path / "w.h5")]
        ship_weights.main([*arguments, "--data-dir", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert "ship_weights.py: error: Fashion-MNIST:" in err and "Traceback" not in err
    assert not (tmp_path / "w.h5").exists()
