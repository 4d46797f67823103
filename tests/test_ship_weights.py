"""benchmarks/ship_weights.py: a run directory becomes a zoo weights file, scored as shipped."""

import json

from larq_irnet.io import estimator_state_entries
from larq_irnet.recipes import get_recipe
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import get_entry, sha256sum, verified_path

import h5py
import numpy as np
import pytest

RECIPE = "fashion_mnist-resnet20-1w1a"


def _run_dir(path, *, dataset="fashion_mnist", model=None):
    """A finished-run directory as `larq-irnet train` leaves one (config, summary, model)."""
    path.mkdir()
    recipe = get_recipe(RECIPE).to_dict()
    recipe["model_kwargs"]["binarization"] = "irnet"
    (path / "config.json").write_text(json.dumps({"recipe": recipe}))
    summary = {"dataset": dataset, "epochs": 10, "seed": 0, "final_test_accuracy": 0.8784}
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
    assert estimator_state_entries(output) == []
    shipped, again = _weights(verified_path("fashion_mnist", "irnet")), _weights(output)
    assert sorted(shipped) == sorted(again)
    for name, value in shipped.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    assert "87.84%" in get_entry("fashion_mnist", "irnet").description
    assert report["keras_accuracy"] == pytest.approx(0.8784, abs=5e-4)
    assert abs(report["lce_accuracy"] - report["keras_accuracy"]) <= 0.003
    assert report["agreement"] >= 0.995
    assert report["examples"] == 10000
    assert report["lce_bconv2d"] == 18
    assert abs(report["first_500_correct"] - 449) <= 1


def test_a_missing_or_foreign_run_is_a_one_line_error(tmp_path, load_benchmark):
    ship_weights = load_benchmark("ship_weights")
    with pytest.raises(SystemExit, match=r"config\.json: no config\.json"):
        ship_weights.ship(tmp_path / "nowhere", tmp_path / "out.h5")
    run = _run_dir(tmp_path / "cifar", dataset="cifar10")
    with pytest.raises(SystemExit, match="trained on 'cifar10'; expected a Fashion-MNIST run"):
        ship_weights.ship(run, tmp_path / "out.h5")
    run = _run_dir(tmp_path / "unfinished")
    with pytest.raises(SystemExit, match=r"model\.h5: missing"):
        ship_weights.ship(run, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_the_output_must_be_an_h5_file_in_an_existing_directory(tmp_path, load_benchmark, capsys):
    ship_weights = load_benchmark("ship_weights")
    with pytest.raises(SystemExit):
        ship_weights.main([str(tmp_path), "--output", str(tmp_path / "w.keras")])
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship_weights.main([str(tmp_path), "--output", str(tmp_path / "no" / "w.h5")])
    assert "its directory does not exist" in capsys.readouterr().err
