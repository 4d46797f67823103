import csv
import json
import os
import re

from larq_irnet import cli
from larq_irnet.callbacks import EDECallback, InformationDiagnostics
from larq_irnet.report import read_history, write_report

import larq as lq
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

ALL_PLOTS = ("curves", "ede", "entropy", "quantization", "histograms")


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    """A run directory of a tiny IR-Net model trained 3 epochs, as `train` would write it."""
    run = tmp_path_factory.mktemp("binary_run")
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    binary = dict(
        input_quantizer="ede_sign", kernel_quantizer="libra_pb", padding="same", use_bias=False
    )
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    for i in range(3):
        x = lq.layers.QuantConv2D(8, 3, name=f"binary_{i}", **binary)(x)
        x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(48, 8, 8, 1)), rng.integers(0, 3, 48)
    model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=3,
        batch_size=12,
        verbose=0,
        callbacks=[
            EDECallback(t_min=0.1, t_max=10.0),
            InformationDiagnostics(),
            tf.keras.callbacks.CSVLogger(str(run / "history.csv")),
        ],
    )
    model.save(run / "model.h5")
    summary = {
        "recipe": "toy-1w1a",
        "binarization": "irnet",
        "seed": 0,
        "epochs": 3,
        "final_test_accuracy": 0.3125,
        "best_epoch": {"epoch": 1, "val_accuracy": 0.375},
        "ede_t": 2.154,
        "wall_time_s": 12.5,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _write_history(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow  # trains a run first
def test_report_of_a_binary_run_writes_every_plot_and_the_summary(binary_run, capsys):
    assert cli.main(["report", str(binary_run)]) == 0
    out = binary_run / "report"
    for name in ALL_PLOTS:
        image = matplotlib.image.imread(out / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        # Not a blank canvas.
        assert image[..., :3].std() > 0.01
    # Atomic writes leave no temporaries behind.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.png" for n in ALL_PLOTS] + ["report.md"]
    )
    text = (out / "report.md").read_text()
    for name in ALL_PLOTS:
        assert f"({name}.png)" in text
    assert "Skipped" not in text
    assert "| final_test_accuracy | 0.3125 |" in text
    assert "| best_epoch.val_accuracy | 0.375 |" in text
    history = read_history(binary_run / "history.csv")
    assert len(history["epoch"]) == 3
    # Epochs counted from 1, as the training log prints them (history.csv counts from 0).
    best = int(np.nanargmax(history["val_accuracy"]))
    assert f"at epoch {best + 1} of 3." in text
    assert "| epoch | loss |" in text and "\n| 3 | " in text
    for layer in ("binary_0", "binary_1", "binary_2"):
        entropy = history[f"entropy/{layer}"][-1]
        qerror = history[f"qerror/{layer}"][-1]
        assert f"| {layer} | {entropy:.4g} |" in text
        assert f"{qerror:.4g}" in text
    assert "stem" not in text
    assert f"{history['ede_t'][-1]:.4g}" in text
    assert "wrote" in capsys.readouterr().out


def test_report_of_a_full_precision_run_skips_what_it_has_no_data_for(tmp_path):
    rows = [
        {"epoch": e, "loss": 2.0 / (e + 1), "accuracy": 0.5 + 0.1 * e, "val_loss": 2.1 / (e + 1)}
        for e in range(4)
    ]
    _write_history(tmp_path / "history.csv", rows)
    inputs = tf.keras.Input((4,))
    tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs)).save(tmp_path / "model.h5")
    report = write_report(tmp_path, output_dir=tmp_path / "out")
    assert [p.name for p in report.figures] == ["curves.png"]
    assert set(report.skipped) == {"ede", "entropy", "quantization", "histograms"}
    assert "ede_t" in report.skipped["ede"]
    assert "no binarized layers" in report.skipped["histograms"]
    text = report.markdown.read_text()
    assert "Skipped: history.csv has no ede_t column" in text
    assert "Not available:" in text and "summary.json does not exist" in text
    # No val_accuracy column: no best-epoch line.
    assert "Best epoch" not in text
    assert "| 4 | 0.5 | 0.8 | 0.525 |" in text  # the 4th epoch (history.csv: epoch 3)


def test_missing_model_is_skipped_with_its_path(tmp_path, binary_run):
    (tmp_path / "history.csv").write_bytes((binary_run / "history.csv").read_bytes())
    report = write_report(tmp_path)
    assert set(report.skipped) == {"histograms"}
    assert str(tmp_path / "model.h5") in report.skipped["histograms"]


def test_missing_run_dir_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert cli.main(["report", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "history.csv" in err
    with pytest.raises(FileNotFoundError, match="no_such_run"):
        write_report(missing)


def test_missing_or_empty_history_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"history\.csv does not exist.*epoch,loss"):
        write_report(tmp_path)
    (tmp_path / "history.csv").write_text("epoch,loss,accuracy\n")
    with pytest.raises(ValueError, match=r"history\.csv has no epochs"):
        write_report(tmp_path)
    (tmp_path / "history.csv").write_text("a,b\nx,y\n")
    with pytest.raises(ValueError, match="no numeric column"):
        write_report(tmp_path)
    assert not (tmp_path / "report" / "report.md").exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            b"garbage\x00,,\n1,2\n",
            r"history\.csv has no `epoch` column \(header 'garbage\\x00,,'\)",
        ),
        (b"loss,accuracy\n0.5,0.9\n", "has no `epoch` column"),
        (b"epoch,loss\n0,1.0\nx,0.9\n", r"history\.csv, line 3: epoch 'x' is not an integer >= 0"),
        (b"epoch,loss\n0.5,1.0\n", "line 2: epoch '0.5' is not an integer"),
        (b"epoch,loss\n\xff\xfe,1\n", "cannot read as CSV text"),
    ],
)
def test_a_history_that_is_not_a_csvlogger_file_is_a_one_line_error(
    tmp_path, capsys, content, expected
):
    (tmp_path / "history.csv").write_bytes(content)
    assert cli.main(["report", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert re.search(expected, line), line
    assert str(tmp_path / "history.csv") in line and "epoch,loss" in line
    assert captured.out == "" and not (tmp_path / "report").exists()


def test_histogram_layers_must_be_positive(tmp_path, binary_run):
    with pytest.raises(ValueError, match="histogram_layers"):
        write_report(binary_run, output_dir=tmp_path, histogram_layers=0)


def test_cli_layers_must_be_positive_and_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["report", str(tmp_path), "--layers", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("argument --layers: expected a positive integer, got '0'")
    assert not (tmp_path / "report").exists()


def test_unusable_output_directories_are_one_line_errors(tmp_path, binary_run, read_only, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    for output, expected in (
        (a_file, f"report directory {a_file} is a file: expected a directory"),
        (a_file / "out", f"{a_file / 'out'} lies under the file {a_file}"),
        (locked / "out", f"{locked / 'out'} is not writable"),
    ):
        assert cli.main(["report", str(binary_run), "--output-dir", str(output)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert a_file.read_text() == "x" and os.listdir(locked) == []
    assert cli.main(["report", str(a_file)]) == 1
    assert f"run directory {a_file} is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "files, name",
    [
        ({"config.json": {"validation_size": 0}}, "test"),
        ({"config.json": {"validation_size": 5000}}, "validation"),
        ({"summary.json": {"validation_size": 0}}, "test"),
        ({}, "held-out"),
    ],
)
def test_the_val_columns_are_named_by_the_set_they_scored(tmp_path, files, name):
    # `train` scores the full test set after every epoch unless a validation split is
    # carved: the report says which, instead of calling the test set "validation".
    rows = [
        {"epoch": e, "loss": 1.0, "val_loss": 1.5, "val_accuracy": 0.5 + 0.1 * e} for e in (0, 1)
    ]
    _write_history(tmp_path / "history.csv", rows)
    for file, content in files.items():
        (tmp_path / file).write_text(json.dumps(content))
    text = write_report(tmp_path).markdown.read_text()
    assert f"| epoch | loss | {name}_loss | {name}_accuracy |" in text
    assert f"`{name}_*`: history.csv's `val_*` columns" in text
    assert f"{name} accuracy 0.6 at epoch 2 of 2." in text
    final_epoch = text.split("## Final epoch")[1].split("## Loss and accuracy")[0]
    if name == "test":
        assert "validation" not in final_epoch and "val_accuracy" not in final_epoch
