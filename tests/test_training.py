"""larq_irnet.training: schedules, weight decay, train(), resume, `larq-irnet train`."""

import csv
import dataclasses
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import larq_irnet  # noqa: F401
from larq_irnet.callbacks import InformationDiagnostics, ede_quantizers
from larq_irnet.cli import main
from larq_irnet.layers import binarized_weights
from larq_irnet.training import TrainOptions, run_directory, train
from larq_irnet.training import cli as training_cli
from larq_irnet.training import trainer as training
from larq_irnet.training.optimization import (
    LatentScaledSGD,
    WarmupStepDecay,
    l2_weight_decay,
    make_schedule,
)
from larq_irnet.training.recipes import RECIPES, get_recipe
from larq_irnet.training.run_directory import RunDirectoryInUse
from larq_irnet.zoo import registry
from larq_irnet.zoo.registry import sha256sum as registry_sha256

import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY, tiny_model

SMALL_RUN = dict(epochs=3, steps_per_epoch=4, batch_size=32, train_limit=1024, verbose=0)
# `larq-irnet train` options that keep a test short if the refusal it expects does not come.
TINY_CLI_RUN = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "32"]
TINY_CLI_RUN += ["--train-limit", "64"]


def read_history(run_dir):
    with open(Path(run_dir) / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def full_test_accuracy(model_path, fashion_mnist):
    _, (x_test, y_test) = fashion_mnist
    model = tf.keras.models.load_model(model_path)
    predictions = model.predict(x_test.astype(np.float32), batch_size=1000, verbose=0)
    return float(np.mean(predictions.argmax(-1) == y_test)), model


def test_warmup_step_decay_matches_the_authors_imagenet_schedule():
    # 62,500 iterations with decay at 18,750 / 37,500 / 56,250 (the authors' config) are
    # epochs 30 / 60 / 90 at 625 steps per epoch.
    schedule = make_schedule(get_recipe("imagenet-resnet18-1w1a"), steps_per_epoch=625)
    assert isinstance(schedule, WarmupStepDecay)
    steps = np.array([0, 1, 1250, 2499, 2500, 18749, 18750, 37500, 56249, 56250, 62499])
    expected = np.where(
        steps < 2500,
        0.2 + 0.6 * steps / 2500,
        0.8 * 0.1 ** np.searchsorted([18750, 37500, 56250], steps, side="right"),
    )
    actual = np.array([float(schedule(int(s))) for s in steps])
    np.testing.assert_allclose(actual, expected, rtol=1e-6)
    assert WarmupStepDecay.from_config(schedule.get_config()).boundaries == [18750, 37500, 56250]


def test_cosine_schedule_reaches_zero_at_the_last_step():
    recipe = dataclasses.replace(TINY, epochs=5)
    schedule = make_schedule(recipe, steps_per_epoch=10)
    steps = np.arange(0, 51, 7)
    expected = 0.5 * 0.1 * (1 + np.cos(np.pi * steps / 50))
    np.testing.assert_allclose([float(schedule(int(s))) for s in steps], expected, atol=1e-7)
    assert float(schedule(50)) == pytest.approx(0.0, abs=1e-9)


def test_weight_decay_gradient_is_pytorch_sgd_weight_decay():
    model = tiny_model(input_shape=(28, 28, 1), num_classes=10)
    l2_weight_decay(model, 1e-3)
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    gradients = tape.gradient(penalty, model.trainable_weights)
    # torch.optim.SGD(weight_decay=wd) adds wd * w to every parameter's gradient.
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        np.testing.assert_allclose(gradient.numpy(), 1e-3 * weight.numpy(), rtol=1e-5, atol=1e-9)
    names = {w.name for w in model.trainable_weights}
    assert any("gamma" in n for n in names) and any("beta" in n for n in names)
    expected = 0.5e-3 * sum(np.sum(w.numpy() ** 2) for w in model.trainable_weights)
    assert float(penalty) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow  # scores the saved model on the full test set
def test_train_writes_the_run_directory(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    summary = train(TINY, run_dir, TrainOptions(**SMALL_RUN))

    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert summary["recipe"] == "tiny" and summary["epochs"] == 3
    assert summary["test_examples"] == 10000 and summary["train_examples"] == 1024
    assert summary["binarization"] == "irnet" and summary["seed"] == 0
    assert summary["resumed_from_epoch"] == 0 and summary["wall_time_seconds"] > 0

    # The final-epoch accuracy is the saved model's accuracy on all 10,000 test images.
    accuracy, model = full_test_accuracy(run_dir / "model.h5", fashion_mnist)
    assert summary["final_test_accuracy"] == pytest.approx(accuracy, abs=1e-6)

    history = read_history(run_dir)
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "ede_t", "ede_k"):
        assert key in history[0], key
    val_accuracy = [float(row["val_accuracy"]) for row in history]
    assert summary["final_test_accuracy"] == pytest.approx(val_accuracy[-1])
    assert summary["best_epoch"] == int(np.argmax(val_accuracy))
    assert summary["best_epoch_test_accuracy"] == pytest.approx(max(val_accuracy))

    # EDE t per epoch (IR-Net Eq. 11, authors' trainer) and k = max(1/t, 1).
    t_min, t_max, n = TINY.ede_t_min, TINY.ede_t_max, 3
    expected_t = [t_min * 10 ** ((e / n) * math.log10(t_max / t_min)) for e in range(n)]
    np.testing.assert_allclose([float(r["ede_t"]) for r in history], expected_t, rtol=1e-6)
    np.testing.assert_allclose(
        [float(r["ede_k"]) for r in history], [max(1 / t, 1) for t in expected_t], rtol=1e-6
    )
    assert summary["ede_t"] == pytest.approx(expected_t[-1], rel=1e-6)
    # The saved model keeps t in its quantizers' configuration (training state, not weights).
    saved_t = [q.state()["t"] for q in ede_quantizers(model)]
    assert saved_t and all(t == pytest.approx(expected_t[-1]) for t in saved_t)
    assert not [v for v in model.weights if "ede_" in v.name]
    # lr at each epoch's first step of the cosine over 3 * 4 steps.
    np.testing.assert_allclose(
        [float(r["lr"]) for r in history],
        [0.05 * (1 + math.cos(math.pi * 4 * e / 12)) for e in range(3)],
        rtol=1e-6,
    )

    tags = set()
    for event_file in (run_dir / "tensorboard" / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_loss", "epoch_accuracy", "epoch_lr", "epoch_ede_t", "epoch_ede_k"} <= tags
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-3")

    # A finished run is not trained again, nor when only the recipe's description changed;
    # another configuration is refused.
    assert train(TINY, run_dir, TrainOptions(**SMALL_RUN)) == summary
    reworded = dataclasses.replace(TINY, source="reworded")
    assert train(reworded, run_dir, TrainOptions(**SMALL_RUN)) == summary
    with pytest.raises(ValueError, match=r"holds a run with another configuration.*epochs"):
        train(TINY, run_dir, TrainOptions(**{**SMALL_RUN, "epochs": 4}))


class _Killed(Exception):
    pass


class _KillAtEpochEnd(tf.keras.callbacks.Callback):
    """Dies in the middle of the end of `epoch`, once: its checkpoint is never written.

    The run records its extra callbacks, so the resume passes the same (spent) one.
    """

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.armed = True

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch and self.armed:
            self.armed = False
            raise _Killed


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(tmp_path, fashion_mnist):
    straight = train(TINY, tmp_path / "straight", TrainOptions(**SMALL_RUN))

    run_dir = tmp_path / "killed"
    kill = [_KillAtEpochEnd(1)]
    with pytest.raises(_Killed):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **SMALL_RUN))
    assert not (run_dir / "summary.json").exists()
    assert tf.train.latest_checkpoint(run_dir / "checkpoints").endswith("ckpt-1")
    # As if the process died after the history row of epoch 1 but before its checkpoint.
    with open(run_dir / "history.csv") as f:
        lines = f.read().splitlines()
    with open(run_dir / "history.csv", "a") as f:
        f.write("1" + lines[1][1:] + "\n")

    resumed = train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **SMALL_RUN))
    assert resumed["resumed_from_epoch"] == 1

    a = tf.keras.models.load_model(tmp_path / "straight" / "model.h5").get_weights()
    b = tf.keras.models.load_model(run_dir / "model.h5").get_weights()
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert resumed["final_test_accuracy"] == pytest.approx(straight["final_test_accuracy"])
    assert resumed["ede_t"] == straight["ede_t"]

    rows_a, rows_b = read_history(tmp_path / "straight"), read_history(run_dir)
    assert [r["epoch"] for r in rows_b] == ["0", "1", "2"]
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        for key in ("loss", "val_accuracy", "lr", "ede_t"):
            assert float(row_b[key]) == pytest.approx(float(row_a[key]), rel=1e-5), key


_HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
f.write(f"pid {os.getpid()}")
f.flush()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.slow  # a subprocess holds the lock
def test_a_run_directory_is_trained_by_one_process_at_a_time(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run_dir / ".lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        expected = rf"into {re.escape(str(run_dir))} \(.*\(pid {holder.pid}\)\)"
        with pytest.raises(RunDirectoryInUse, match=expected):
            train(TINY, run_dir, TrainOptions(**{**SMALL_RUN, "epochs": 1}))
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # The kernel dropped the lock with the process that held it.
    summary = train(TINY, run_dir, TrainOptions(**{**SMALL_RUN, "epochs": 1}))
    assert summary["epochs"] == 1 and (run_dir / "summary.json").exists()


def test_cli_lists_recipes(capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_cli_rejects_an_unknown_recipe(tmp_path, capsys):
    assert main(["train", "--recipe", "cifar10-resnet21", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "cifar10-resnet21" in err and "fashion_mnist-resnet20-1w1a" in err


def write_cifar_batches(directory, count, seed=0):
    """A CIFAR-10 python batch directory of `count` random images per file."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=count)],
        }
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.slow  # builds and trains the real ResNet-20
def test_cli_trains_a_paper_recipe_on_a_slice(tmp_path, capsys):
    # The real recipe and zoo model, on a CIFAR-10 batch directory the test writes.
    data_dir, run_dir = tmp_path / "cifar-10-batches-py", tmp_path / "cli"
    write_cifar_batches(data_dir, count=16)
    argv = ["train", "--recipe", "cifar10-resnet20-1w1a", "--epochs", "1"]
    argv += ["--steps-per-epoch", "2", "--batch-size", "16", "--train-limit", "48"]
    argv += ["--data-dir", str(data_dir), "--output-dir", str(run_dir), "--diagnostics"]
    assert main(argv) == 0
    assert "final test accuracy" in capsys.readouterr().out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "IRNetResNet20" and summary["binarization"] == "irnet"
    assert summary["steps_per_epoch"] == 2 and summary["train_examples"] == 48
    assert summary["test_examples"] == 16 and summary["ede_t"] == pytest.approx(1e-3)
    model = tf.keras.models.load_model(run_dir / "model.h5")
    assert model.input_shape == (None, 32, 32, 3)
    assert model.count_params() > 250_000  # ResNet-20, not a stand-in
    (row,) = read_history(run_dir)
    assert "entropy_mean" in row and 0.0 <= float(row["entropy_mean"]) <= 1.0


def test_latent_weight_decay_can_leave_the_binarized_kernels_out():
    model = tiny_model(input_shape=(28, 28, 1), binarization="irnet")
    model(tf.zeros((1, 28, 28, 1)))
    binary = next(w for w in model.trainable_weights if "quant_conv2d" in w.name)
    floats = [w for w in model.trainable_weights if w is not binary]
    for latent, decayed in ((True, [*floats, binary]), (False, floats)):
        copy = tf.keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        l2_weight_decay(copy, 0.1, latent_weights=latent)
        expected = 0.05 * sum(float(tf.reduce_sum(tf.square(w))) for w in decayed)
        assert float(tf.add_n(copy.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow  # scores the saved model on the full test set
def test_validation_split_and_recipe_overrides(tmp_path, fashion_mnist):
    summary = train(
        TINY,
        tmp_path / "run",
        TrainOptions(
            epochs=1,
            steps_per_epoch=3,
            validation_size=1000,
            overrides={"optimizer": "adam", "learning_rate": 2e-3, "decay_latent_weights": False},
            verbose=0,
        ),
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["validation_size"] == 1000
    assert config["recipe"]["optimizer"] == "adam"
    assert config["recipe"]["learning_rate"] == 2e-3
    assert config["recipe"]["decay_latent_weights"] is False
    assert summary["train_examples"] == 59_000 and summary["validation_size"] == 1000
    # history's val_accuracy is the validation split's; the test set scores the final model.
    history = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert float(history[-1]["val_accuracy"]) == pytest.approx(
        summary["final_validation_accuracy"], abs=1e-6
    )
    model = tf.keras.models.load_model(tmp_path / "run" / "model.h5")
    test_x, test_y = fashion_mnist[1]
    accuracy = np.mean(np.argmax(model.predict(test_x.astype("float32"), verbose=0), 1) == test_y)
    assert summary["final_test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert summary["best_epoch_test_accuracy"] is None


def test_unknown_recipe_override_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe fields \['lr'\]"):
        train(TINY, tmp_path / "run", TrainOptions(overrides={"lr": 0.1}, verbose=0))
    assert not (tmp_path / "run").exists()


SHORT_RUN = dict(epochs=2, steps_per_epoch=2, batch_size=32, train_limit=256, verbose=0)


@pytest.mark.slow  # trains several times
def test_a_resume_with_another_option_is_refused_naming_it(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    kill = [_KillAtEpochEnd(1)]
    with pytest.raises(_Killed):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **SHORT_RUN))
    history = (run_dir / "history.csv").read_bytes()
    # Adding --diagnostics to the same command would log per-layer columns under the
    # first session's header.
    diagnostics = [*kill, InformationDiagnostics()]
    with pytest.raises(ValueError, match=r"differs in: extra_callbacks \(.*InformationDiag"):
        train(TINY, run_dir, TrainOptions(extra_callbacks=diagnostics, **SHORT_RUN))
    with pytest.raises(ValueError, match=r"differs in: validation_size \(0 there, 100 now\)"):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, validation_size=100, **SHORT_RUN))
    with pytest.raises(ValueError, match=r"differs in: recipe.weight_decay"):
        overrides = {"weight_decay": 0.0}
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, overrides=overrides, **SHORT_RUN))
    assert (run_dir / "history.csv").read_bytes() == history
    assert not (run_dir / "summary.json").exists()


@pytest.mark.slow  # trains several times
def test_a_run_written_before_an_option_existed_stays_the_same_run(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    diagnostics = [InformationDiagnostics()]
    summary = train(TINY, run_dir, TrainOptions(extra_callbacks=diagnostics, **SHORT_RUN))
    config = json.loads((run_dir / "config.json").read_text())
    for key in ("validation_size", "strategy", "extra_callbacks", "distillation"):
        del config[key]
    del config["recipe"]["decay_latent_weights"]
    del config["recipe"]["latent_lr_scale"]
    (run_dir / "config.json").write_text(json.dumps(config))
    # Its history shows that InformationDiagnostics ran, as it did with --diagnostics.
    assert train(TINY, run_dir, TrainOptions(extra_callbacks=diagnostics, **SHORT_RUN)) == summary
    with pytest.raises(ValueError, match=r"differs in: extra_callbacks"):
        train(TINY, run_dir, TrainOptions(**SHORT_RUN))
    with pytest.raises(ValueError, match=r"differs in: recipe.decay_latent_weights \(True th"):
        overrides = {"decay_latent_weights": False}
        train(
            TINY,
            run_dir,
            TrainOptions(extra_callbacks=diagnostics, overrides=overrides, **SHORT_RUN),
        )


@pytest.mark.parametrize(
    "arguments, expected",
    [
        ({"binarization": "foo"}, r"`binarization` must be one of fp, .*, got binarization='foo'"),
        ({"overrides": {"optimizer": "rmsprop"}}, r"`optimizer` must be one of"),
        ({"overrides": {"model_kwargs": {"depth": 3}}}, r"model arguments \{'depth': 3\}"),
        ({"data_dir": "/nonexistent/fashion"}, r"/nonexistent/fashion"),
        ({"validation_size": -1}, r"`validation_size` must be an integer >= 0"),
        ({"seed": -1}, r"`seed` must be an integer from 0 to 4294967295, got seed=-1"),
        ({"seed": 99999999999}, r"`seed` must be an integer from 0 to 4294967295"),
    ],
)
def test_a_bad_argument_writes_nothing(tmp_path, arguments, expected):
    run_dir = tmp_path / "run"
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        train(TINY, run_dir, TrainOptions(**{**SHORT_RUN, **arguments}))
    assert not run_dir.exists()


def test_cli_bad_binarization_is_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(run_dir)]
    assert main([*argv, "--binarization", "foo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "binarization='foo'" in err
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--seed", "-1", "argument --seed: expected an integer from 0 to 4294967295, got '-1'"),
        ("--seed", "99999999999", "argument --seed: expected an integer from 0 to 4294967295"),
        ("--validation-size", "-1", "argument --validation-size: expected an integer >= 0"),
    ],
)
def test_cli_out_of_range_options_name_the_option_and_the_range(
    tmp_path, capsys, option, value, expected
):
    run_dir = tmp_path / "run"
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(run_dir)]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, option, value])
    assert exit_.value.code == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "epochs, best, validation_size, expected",
    [
        (1, 0, 0, "after 1 epoch (best epoch 1/1: 0.6000; "),
        (3, 1, 0, "after 3 epochs (best epoch 2/3: 0.6000; "),
        (1, 0, 100, "after 1 epoch (final validation accuracy 0.7000 on 100 held-out"),
    ],
)
def test_cli_summary_counts_epochs_from_1(
    tmp_path, capsys, monkeypatch, epochs, best, validation_size, expected
):
    summary = {
        "epochs": epochs,
        "best_epoch": best,
        "best_epoch_test_accuracy": None if validation_size else 0.6,
        "validation_size": validation_size,
        "final_validation_accuracy": 0.7 if validation_size else None,
        "final_test_accuracy": 0.5,
        "test_examples": 10000,
    }
    monkeypatch.setattr(training_cli, "train", lambda *args, **kwargs: summary)
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("final test accuracy 0.5000 on 10000 test images ") and expected in line


def test_unusable_output_directories_are_one_line_errors(tmp_path, read_only, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    for output, expected in (
        (a_file, f"--output-dir {a_file} is a file: expected a directory"),
        (a_file / "run", f"--output-dir {a_file / 'run'} lies under the file {a_file}"),
        (locked / "run", f"--output-dir {locked / 'run'} is not writable"),
    ):
        argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(output)]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert a_file.read_text() == "x" and os.listdir(locked) == []


@pytest.mark.slow  # trains several times
def test_read_only_run_directories(tmp_path, read_only, fashion_mnist):
    # A finished run is only read; an unfinished one is refused before anything changes.
    finished, killed = tmp_path / "finished", tmp_path / "killed"
    summary = train(TINY, finished, TrainOptions(**SHORT_RUN))
    kill = [_KillAtEpochEnd(1)]
    with pytest.raises(_Killed):
        train(TINY, killed, TrainOptions(extra_callbacks=kill, **SHORT_RUN))
    snapshot = {p: p.read_bytes() for p in killed.rglob("*") if p.is_file()}
    read_only(finished)
    read_only(killed)
    assert train(TINY, finished, TrainOptions(**SHORT_RUN)) == summary
    with pytest.raises(ValueError, match=rf"--output-dir {killed} is not writable: expected"):
        train(TINY, killed, TrainOptions(extra_callbacks=kill, **SHORT_RUN))
    assert {p: p.read_bytes() for p in killed.rglob("*") if p.is_file()} == snapshot


@pytest.mark.slow  # trains twice
def test_resume_removes_a_killed_saves_temporary_and_keeps_crlf(tmp_path, fashion_mnist, capsys):
    run_dir = tmp_path / "run"
    kill = [_KillAtEpochEnd(1)]
    with pytest.raises(_Killed):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **SHORT_RUN))
    # A kill during the final save leaves atomic_path's temporary model behind; and the
    # history row of the unfinished epoch 1 was written before the kill.
    (run_dir / ".model.0123456789ab.h5").write_bytes(b"\0" * 1000)
    (run_dir / "notes.txt").write_text("the user's")
    with open(run_dir / "history.csv", "rb") as f:
        lines = f.read().split(b"\r\n")
    with open(run_dir / "history.csv", "ab") as f:
        f.write(b"1" + lines[1][1:] + b"\r\n")
    train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **{**SHORT_RUN, "verbose": 2}))
    assert not (run_dir / ".model.0123456789ab.h5").exists()
    assert (run_dir / "notes.txt").read_text() == "the user's"
    history = (run_dir / "history.csv").read_bytes()
    assert history.count(b"\n") == history.count(b"\r\n") == 3  # header and two epochs
    assert [row["epoch"] for row in read_history(run_dir)] == ["0", "1"]
    out = capsys.readouterr().out
    assert "Resuming tiny" in out and "val_accuracy" in out


@pytest.mark.slow  # trains with every diagnostic
def test_progress_shows_the_means_not_every_layer(tmp_path, fashion_mnist, capsys):
    run_dir = tmp_path / "run"
    diagnostics = [InformationDiagnostics()]
    train(TINY, run_dir, TrainOptions(extra_callbacks=diagnostics, **{**SHORT_RUN, "verbose": 2}))
    out = capsys.readouterr().out
    assert "entropy_mean" in out and "entropy/" not in out
    assert max(len(line) for line in out.splitlines()) <= 200
    # The per-layer values are kept for history.csv and TensorBoard.
    assert "entropy/quant_conv2d" in read_history(run_dir)[0]


@pytest.mark.slow  # trains twice through the CLI
def test_ctrl_c_is_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(RECIPES, "tiny", TINY)
    saved_epoch_end = run_directory.EpochCheckpoint.on_epoch_end

    def checkpoint_then_ctrl_c(self, epoch, logs=None):
        saved_epoch_end(self, epoch, logs)
        if epoch == 0:
            # What Python's SIGINT handler raises; raised here, not signalled, because a
            # signal is only acted on at the main thread's next bytecode, which under load
            # can come after the epoch (and the run) has already ended.
            raise KeyboardInterrupt

    monkeypatch.setattr(run_directory.EpochCheckpoint, "on_epoch_end", checkpoint_then_ctrl_c)
    run_dir = tmp_path / "run"
    argv = ["train", "--recipe", "tiny", "--epochs", "2", "--steps-per-epoch", "2"]
    argv += ["--batch-size", "32", "--train-limit", "256", "--output-dir", str(run_dir)]
    assert main(argv) == training.INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the same command resumes the run" in err
    assert str(run_dir) in err
    monkeypatch.setattr(run_directory.EpochCheckpoint, "on_epoch_end", saved_epoch_end)
    assert main(argv) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1 and summary["epochs"] == 2


@pytest.fixture(scope="module")
def fp_teacher_run(tmp_path_factory, fashion_mnist):
    """The tiny model's full-precision twin, trained briefly by `train` into a run directory."""
    run_dir = tmp_path_factory.mktemp("teacher") / "fp"
    fp = dict(SHORT_RUN, epochs=1, steps_per_epoch=6, train_limit=1024, seed=3)
    train(TINY, run_dir, TrainOptions(binarization="fp", **fp))
    return run_dir


def test_distillation_resumes_exactly_and_saves_the_student_alone(
    tmp_path, fp_teacher_run, fashion_mnist
):
    distill = dict(distill_from=fp_teacher_run, alignment_weight=2.0, logits_weight=0.5)
    straight = train(
        TINY,
        tmp_path / "straight",
        TrainOptions(extra_callbacks=[InformationDiagnostics()], **distill, **SHORT_RUN),
    )
    run_dir = tmp_path / "killed"
    kill = [_KillAtEpochEnd(1), InformationDiagnostics()]
    with pytest.raises(_Killed):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **distill, **SHORT_RUN))
    # Another teacher, or none, is another run.
    other = {**distill, "alignment_weight": 1.0}
    with pytest.raises(ValueError, match=r"differs in: distillation.alignment_weight \(2.0 th"):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **other, **SHORT_RUN))
    with pytest.raises(
        ValueError, match=r"differs in: distillation \(\{'teacher'.*\} there, None now\)"
    ):
        train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **SHORT_RUN))
    resumed = train(TINY, run_dir, TrainOptions(extra_callbacks=kill, **distill, **SHORT_RUN))
    assert resumed["resumed_from_epoch"] == 1

    config = json.loads((run_dir / "config.json").read_text())
    teacher_file = fp_teacher_run / "model.h5"
    assert config["distillation"] == {
        "teacher": str(fp_teacher_run.resolve()),
        "teacher_sha256": registry_sha256(teacher_file),
        "alignment_weight": 2.0,
        "logits_weight": 0.5,
        "temperature": 4.0,
    }
    # model.h5 is the student alone: it loads without the Distiller, has no teacher layer.
    a = tf.keras.models.load_model(tmp_path / "straight" / "model.h5")
    b = tf.keras.models.load_model(run_dir / "model.h5")
    assert len(b.layers) == len(tiny_model(input_shape=(28, 28, 1)).layers)
    assert len(binarized_weights(b)) == 1
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    for key in ("final_test_accuracy", "final_test_loss", "final_test_alignment_loss"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5), key
    assert resumed["distill_from"] == str(fp_teacher_run.resolve())
    assert 0 < resumed["final_test_alignment_loss"] <= 2  # one point: a distance in [0, 2]
    # final_test_loss is the student's task loss: the saved student's cross-entropy.
    _, (x_test, y_test) = fashion_mnist
    b.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = b.evaluate(x_test.astype(np.float32), y_test, batch_size=1000, verbose=0)
    assert resumed["final_test_loss"] == pytest.approx(loss, rel=1e-4)
    assert resumed["final_test_accuracy"] == pytest.approx(accuracy, abs=1e-6)

    rows_a, rows_b = read_history(tmp_path / "straight"), read_history(run_dir)
    assert [r["epoch"] for r in rows_b] == ["0", "1"]
    for row_a, row_b in zip(rows_a, rows_b, strict=True):
        for key in ("loss", "task_loss", "alignment_loss", "kl_loss", "val_alignment_loss"):
            assert float(row_b[key]) == pytest.approx(float(row_a[key]), rel=1e-5), key
        assert float(row_b["ede_t"]) == float(row_a["ede_t"])
        assert 0.0 <= float(row_b["entropy_mean"]) <= 1.0
    tags = set()
    for event_file in (run_dir / "tensorboard" / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_alignment_loss", "epoch_task_loss", "epoch_ede_t"} <= tags


def test_a_missing_teacher_is_a_one_line_error_writing_nothing(tmp_path, capsys):
    run_dir, missing = tmp_path / "run", tmp_path / "no-teacher"
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(run_dir)]
    assert main([*argv, "--distill-from", str(missing)]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"no such run directory, model file or zoo weights: {missing}" in err
    )
    (tmp_path / "empty").mkdir()
    assert main([*argv, "--distill-from", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without model.h5" in err
    with pytest.raises(SystemExit):
        main([*argv, "--distill-from", str(missing), "--distill-temperature", "0"])
    assert "expected a number > 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"`alignment_weight` must be a finite number >= 0"):
        train(TINY, run_dir, TrainOptions(distill_from=missing, alignment_weight=-1.0))
    assert not run_dir.exists()


def tiny_zoo_model(*, input_shape, num_classes=10, binarization="irnet", weights=None):
    """`tiny_model` taking `weights=` as the zoo does: a name's variant for `binarization`."""
    model = tiny_model(input_shape=input_shape, num_classes=num_classes, binarization=binarization)
    if weights is not None:
        path, _ = registry.resolve_weights(weights, binarization)
        model.load_weights(path)
    return model


@pytest.fixture
def tiny_variants(tmp_path, monkeypatch):
    """Zoo weights "tiny_pair" of `tiny_zoo_model`: an irnet variant (first) and an fp one."""
    entries = {}
    for seed, binarization in enumerate(("irnet", "fp")):
        tf.keras.utils.set_random_seed(seed)
        path = tmp_path / f"tiny_{binarization}.h5"
        tiny_model(input_shape=(28, 28, 1), binarization=binarization).save_weights(path)
        entries[binarization] = registry.WeightsEntry(
            model="tiny_zoo_model",
            filename=path.name,
            sha256=registry_sha256(path),
            kwargs={"input_shape": (28, 28, 1), "num_classes": 10, "binarization": binarization},
        )
    assert entries["irnet"].sha256 != entries["fp"].sha256
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(registry.WEIGHTS, "tiny_pair", (entries["irnet"], entries["fp"]))
    return entries


def test_distilling_from_zoo_weights_takes_their_fp_variant(tmp_path, tiny_variants, fashion_mnist):
    recipe = dataclasses.replace(TINY, model=tiny_zoo_model)
    run_dir = tmp_path / "run"
    run = dict(epochs=1, steps_per_epoch=1, batch_size=32, train_limit=64, verbose=0)
    summary = train(recipe, run_dir, TrainOptions(distill_from="tiny_pair", **run))
    assert summary["distill_from"] == "tiny_pair"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["distillation"]["teacher"] == "tiny_pair"
    assert config["distillation"]["teacher_sha256"] == tiny_variants["fp"].sha256


def test_zoo_weights_without_an_fp_variant_are_refused_writing_nothing(
    tmp_path, tiny_variants, monkeypatch, capsys
):
    monkeypatch.setitem(registry.WEIGHTS, "tiny_solo", (tiny_variants["irnet"],))
    run_dir = tmp_path / "run"
    expected = (
        "`distill_from`: the teacher is the student's full-precision twin "
        "(binarization='fp'). Weights 'tiny_solo' have no variant for binarization='fp'; "
        "registered binarizations: 'irnet'."
    )
    with pytest.raises(ValueError) as error:
        train(TINY, run_dir, TrainOptions(distill_from="tiny_solo"))
    assert str(error.value) == expected
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(run_dir)]
    assert main([*argv, "--distill-from", "tiny_solo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert not run_dir.exists()


def test_a_teacher_for_other_inputs_is_refused_leaving_nothing_to_block_a_retry(
    tmp_path, fashion_mnist
):
    # It loads, but the Distiller refuses it once the student exists: after config.json
    # was written. The failed call removes what it wrote, so the corrected command runs.
    other = tmp_path / "other.h5"
    tiny_model(input_shape=(32, 32, 3), binarization="fp").save(other)
    tiny_run = dict(epochs=1, steps_per_epoch=1, batch_size=32, train_limit=64, verbose=0)
    for existed in (False, True):
        run_dir = tmp_path / f"run-{existed}"
        if existed:
            run_dir.mkdir()
        with pytest.raises(ValueError, match=r"must take the same inputs, got input shapes"):
            train(TINY, run_dir, TrainOptions(distill_from=other, **tiny_run))
        assert run_dir.exists() == existed
        assert not (run_dir / "config.json").exists()
    summary = train(TINY, run_dir, TrainOptions(**tiny_run))
    assert summary["epochs"] == 1


def test_registered_binary_weights_are_refused_as_a_teacher_writing_nothing(
    tmp_path, tiny_variants, capsys
):
    # The irnet variant's file, wherever it lies, would load into the fp twin silently.
    run_dir = tmp_path / "run"
    tiny_run = dict(epochs=1, steps_per_epoch=1, batch_size=32, train_limit=64, verbose=0)
    copy = tmp_path / "elsewhere" / "teacher.h5"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "tiny_irnet.h5").read_bytes())
    for teacher in (tmp_path / "tiny_irnet.h5", copy):
        expected = (
            f"`distill_from`: {teacher} holds the zoo weights 'tiny_pair' "
            "(binarization='irnet'); the teacher must be full precision (binarization='fp')."
        )
        with pytest.raises(ValueError) as error:
            train(TINY, run_dir, TrainOptions(distill_from=teacher, **tiny_run))
        assert str(error.value) == expected
        argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", *TINY_CLI_RUN]
        assert main([*argv, "--output-dir", str(run_dir), "--distill-from", str(teacher)]) == 1
        err = capsys.readouterr().err
        assert err == f"larq-irnet train: error: {expected}\n"
    assert not run_dir.exists()
    # The fp variant's file is a teacher (loaded into the fp twin as any weights file).
    fp = training._resolve_teacher(tmp_path / "tiny_fp.h5", 1.0, 0.0, 4.0)
    assert fp.sha256 == tiny_variants["fp"].sha256 and not fp.zoo_weights


def test_the_shipped_irnet_weights_are_refused_as_a_teacher(tmp_path, capsys):
    # The reviewer's command: IR-Net's Fashion-MNIST weights as the fp teacher (8.7%).
    shipped = registry.WEIGHTS_DIR / registry.get_entry("fashion_mnist").filename
    run_dir = tmp_path / "run"
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", *TINY_CLI_RUN]
    assert main([*argv, "--output-dir", str(run_dir), "--distill-from", str(shipped)]) == 1
    assert capsys.readouterr().err == (
        f"larq-irnet train: error: `distill_from`: {shipped} holds the zoo weights "
        "'fashion_mnist' (binarization='irnet'); the teacher must be full precision "
        "(binarization='fp').\n"
    )
    assert not run_dir.exists()


def test_distillation_weights_without_a_teacher_are_refused_not_ignored(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--recipe", "fashion_mnist-resnet20-1w1a", "--output-dir", str(run_dir)]
    assert main([*argv, "--alignment-weight", "2", "--distill-temperature", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--alignment-weight, --distill-temperature only apply with --distill-from" in err
    with pytest.raises(ValueError, match=r"logits_weight=0.5 only applies with `distill_from`"):
        train(TINY, run_dir, TrainOptions(logits_weight=0.5))
    assert not run_dir.exists()


def test_latent_lr_scale_is_sgd_with_a_scaled_learning_rate_on_the_latent_weights():
    scale, lr = 7.5, 0.05
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype(np.float32)
    y = np.arange(16) % 10

    def model():
        tf.keras.utils.set_random_seed(0)
        m = tiny_model(input_shape=(28, 28, 1), binarization="bnn")
        l2_weight_decay(m, 1e-3)
        return m

    scaled, reference = model(), model()
    latent = [w.variable for w in binarized_weights(scaled)]
    optimizer = LatentScaledSGD(
        lr, latent_variables=latent, latent_lr_scale=scale, momentum=0.9, nesterov=True
    )
    # The reference: plain Keras SGD, lr * c on the latent kernel, lr on everything else.
    reference_latent = {id(w.variable) for w in binarized_weights(reference)}
    fast = tf.keras.optimizers.SGD(lr * scale, momentum=0.9, nesterov=True)
    slow = tf.keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    for _ in range(4):
        for net, step in ((scaled, None), (reference, True)):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, net(x, training=True)) + tf.add_n(net.losses)
            grads = tape.gradient(loss, net.trainable_variables)
            pairs = list(zip(grads, net.trainable_variables, strict=True))
            if step is None:
                optimizer.apply_gradients(pairs)
            else:
                fast.apply_gradients([p for p in pairs if id(p[1]) in reference_latent])
                slow.apply_gradients([p for p in pairs if id(p[1]) not in reference_latent])
    moved = False
    for a, b in zip(scaled.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    initial = model()
    for w_scaled, w_initial in zip(
        binarized_weights(scaled), binarized_weights(initial), strict=True
    ):
        moved = moved or not np.allclose(w_scaled.variable.numpy(), w_initial.variable.numpy())
    assert moved and optimizer.get_config()["latent_lr_scale"] == scale


def test_latent_lr_scale_is_refused_for_adam_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    overrides = {"optimizer": "adam", "learning_rate": 1e-3, "latent_lr_scale": 4.0}
    with pytest.raises(ValueError, match=r"`latent_lr_scale` needs optimizer='sgd'.*'adam'"):
        train(TINY, run_dir, TrainOptions(overrides=overrides, **SHORT_RUN))
    with pytest.raises(ValueError, match=r"`latent_lr_scale` must be a number > 0"):
        train(TINY, run_dir, TrainOptions(overrides={"latent_lr_scale": 0.0}, **SHORT_RUN))
    assert not run_dir.exists()


def test_training_drives_dte_quantizers_with_dtecallback(tmp_path, fashion_mnist):
    # The DIR-Net rows get DTECallback (the recipe's t range) instead of EDECallback.
    recipe = dataclasses.replace(TINY, model_kwargs={"binarization": "dirnet"})
    summary = train(recipe, tmp_path / "run", TrainOptions(**{**SMALL_RUN, "epochs": 2}))
    history = read_history(tmp_path / "run")
    assert "ede_t" not in history[0] and summary["binarization"] == "dirnet"
    t_min, t_max = TINY.ede_t_min, TINY.ede_t_max
    assert [float(row["dte_t"]) for row in history] == pytest.approx([t_min, 1.0])
    assert [float(row["dte_band"]) for row in history] == [0.0, 1.0]
    assert 0.0 < float(history[-1]["dte_in_band"]) < 1.0
    assert t_max > 1.0


def test_dte_fields_for_a_model_without_dte_are_refused_writing_nothing(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    recipe = dataclasses.replace(TINY, model_kwargs={"binarization": "irnet"})
    with pytest.raises(ValueError) as error:
        train(recipe, run_dir, TrainOptions(overrides={"dte_band_fraction": 0.5}, **SHORT_RUN))
    assert str(error.value).startswith(
        "`dte_band_fraction`: the model (binarization 'irnet') has no DTE quantizer for them "
        "to act on; they apply to binarization 'dte', 'dirnet' or 'dirnet_act'"
    )
    assert not run_dir.exists()


def test_the_recipes_dte_fields_reach_dtecallback(tmp_path, fashion_mnist):
    # dte_stage_split, dte_epsilon and dte_band_fraction: stage 2 from the start here,
    # with the band's epsilon and half-width the recipe's, not DTE's defaults.
    from larq_irnet.estimators import dte_band_width

    recipe = dataclasses.replace(TINY, model_kwargs={"binarization": "dirnet"})
    overrides = {"dte_stage_split": 0.0, "dte_epsilon": 0.3, "dte_band_fraction": 0.5}
    train(recipe, tmp_path / "run", TrainOptions(overrides=overrides, **SMALL_RUN))
    row = read_history(tmp_path / "run")[0]
    assert float(row["dte_band"]) == 1.0 and float(row["dte_t"]) == pytest.approx(1.0)
    assert float(row["dte_epsilon"]) == pytest.approx(0.3)
    assert float(row["dte_width"]) == pytest.approx(dte_band_width(0.5))
    assert dte_band_width(0.5) != pytest.approx(dte_band_width(recipe.dte_band_fraction))


def test_the_train_command_shows_a_warning_on_one_line(capsys):
    # e.g. load_teacher's warning about a binary teacher: the message, not Python's
    # second line with the source that raised it.
    import warnings

    with training_cli.one_line_warnings("larq-irnet train"):
        message = "load_teacher: runs/x has 18 binarized layers;\n  is it full precision?"
        warnings.warn(message, stacklevel=1)
    assert capsys.readouterr().err == (
        "larq-irnet train: warning: load_teacher: runs/x has 18 binarized layers; is it "
        "full precision?\n"
    )
