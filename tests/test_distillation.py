"""larq_irnet.distillation: RBD (our design), its formulas, the Distiller in fit and saving."""

import csv
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import larq_irnet  # noqa: F401
from larq_irnet.callbacks import EDECallback, InformationDiagnostics, ede_quantizers
from larq_irnet.converters import convert
from larq_irnet.distillation import (
    Distiller,
    attention_alignment,
    attention_map,
    distillation_kl,
    load_teacher,
)
from larq_irnet.information import binarized_kernels
from larq_irnet.layers import ends_in_softmax, matching_points
from larq_irnet.zoo import IRNetResNet20

import h5py
import numpy as np
import pytest
import tensorflow as tf
from test_distributed import WORKER_TIMEOUT, free_ports
from tiny import tiny_model

TESTS = Path(__file__).resolve().parent
SHAPE = (28, 28, 1)
SLICE = 512
BATCH = 64


def np_attention_alignment(student, teacher):
    """Independent NumPy: per sample, sum over points of ||a_s - a_t||_2."""
    total = 0.0
    for s, t in zip(student, teacher, strict=True):
        maps = []
        for f in (s, t):
            a = (f.astype(np.float64) ** 2).sum(axis=-1).reshape(len(f), -1)  # sum == mean * C
            maps.append(a / np.linalg.norm(a, axis=1, keepdims=True))
        total = total + np.linalg.norm(maps[0] - maps[1], axis=1)
    return total


def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def fmnist_slice(fashion_mnist):
    (x, y), _ = fashion_mnist
    return x[:SLICE].astype(np.float32), y[:SLICE]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory, fashion_mnist):
    """A full-precision tiny model briefly trained on 2,048 images, saved as a run directory."""
    (x, y), _ = fashion_mnist
    tf.keras.utils.set_random_seed(1)
    teacher = tiny_model(input_shape=SHAPE, binarization="fp")
    teacher.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    history = teacher.fit(
        x[:2048].astype(np.float32), y[:2048], batch_size=BATCH, epochs=6, shuffle=False, verbose=0
    )
    assert history.history["accuracy"][-1] > 0.35  # well above chance: features worth distilling
    run_dir = tmp_path_factory.mktemp("teacher_run")
    teacher.save(run_dir / "model.h5")
    return run_dir


def make_distiller(teacher_file, seed=0, **kwargs):
    tf.keras.utils.set_random_seed(seed)
    student = tiny_model(input_shape=SHAPE, binarization="irnet")
    distiller = Distiller(student, load_teacher(teacher_file), **kwargs)
    distiller.compile(
        tf.keras.optimizers.Adam(1e-2),
        tf.keras.losses.SparseCategoricalCrossentropy(),
        ["accuracy"],
    )
    return distiller


def test_attention_alignment_and_kl_match_numpy():
    rng = np.random.default_rng(0)
    student = [rng.normal(size=(5, 6, 6, 3)), rng.normal(size=(5, 3, 3, 8))]
    # The teacher has other channel counts: attention maps do not depend on them.
    teacher = [rng.normal(size=(5, 6, 6, 4)), rng.normal(size=(5, 3, 3, 2))]
    expected = np_attention_alignment(student, teacher)
    actual = attention_alignment(
        [tf.constant(f, tf.float32) for f in student], [tf.constant(f, tf.float32) for f in teacher]
    )
    assert actual.shape == (5,)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-5)
    maps = attention_map(tf.constant(student[0], tf.float32)).numpy()
    assert maps.shape == (5, 36)
    np.testing.assert_allclose(np.linalg.norm(maps, axis=1), 1.0, rtol=1e-6)
    # Identical features: distance 0 with a finite (zero) gradient, not NaN.
    same = tf.constant(student[0], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(same)
        distance = attention_alignment([same], [tf.identity(same)])
    np.testing.assert_allclose(distance.numpy(), 0.0, atol=1e-5)
    assert np.all(np.isfinite(tape.gradient(distance, same).numpy()))

    # Hinton's KL: T^2 KL(softmax(z_t/T) || softmax(z_s/T)), from logits or probabilities.
    z_s, z_t, temperature = rng.normal(size=(5, 10)), 3 * rng.normal(size=(5, 10)), 4.0
    p_s, p_t = np_softmax(z_s / temperature), np_softmax(z_t / temperature)
    expected_kl = temperature**2 * np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)
    for from_logits, (a, b) in ((True, (z_s, z_t)), (False, (np_softmax(z_s), np_softmax(z_t)))):
        kl = distillation_kl(
            tf.constant(a, tf.float32),
            tf.constant(b, tf.float32),
            temperature=temperature,
            from_logits=from_logits,
        )
        np.testing.assert_allclose(kl.numpy(), expected_kl, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # builds ResNet-20s
def test_default_points_are_the_resnet20_stages():
    student = IRNetResNet20(input_shape=SHAPE, num_classes=10, binarization="irnet", weights=None)
    teacher = IRNetResNet20(input_shape=SHAPE, num_classes=10, binarization="fp", weights=None)
    shapes = [tuple(student.get_layer(n).output.shape[1:]) for n in matching_points(student)]
    assert shapes == [(28, 28, 16), (14, 14, 32), (7, 7, 64)]
    distiller = Distiller(student, teacher)
    assert len(distiller.feature_layers) == 3
    for s_name, t_name in distiller.feature_layers:
        s_shape = student.get_layer(s_name).output.shape
        assert s_shape == teacher.get_layer(t_name).output.shape
        # A stage output: every layer reading it is already at a lower resolution (the
        # next stage's strided conv and shortcut, or the pooling).
        consumers = [node.outbound_layer for node in student.get_layer(s_name).outbound_nodes]
        assert consumers
        for consumer in consumers:
            shape = consumer.output.shape
            assert shape.rank == 2 or shape[1] * shape[2] < s_shape[1] * s_shape[2], consumer
    # The tiny model: the input's 28x28 is not a point (it depends on no weight).
    tiny = tiny_model(input_shape=SHAPE, binarization="fp")
    (point,) = matching_points(tiny)
    assert tiny.get_layer(point).output.shape[1:] == (13, 13, 8)


def test_bad_arguments_and_mismatched_points_are_refused():
    student = tiny_model(input_shape=SHAPE, binarization="irnet")
    teacher = tiny_model(input_shape=SHAPE, binarization="fp")
    s_conv = next(layer.name for layer in student.layers if "quant_conv2d" in layer.name)
    t_rescale = next(layer.name for layer in teacher.layers if "rescaling" in layer.name)
    pattern = (
        rf"student layer '{s_conv}' \(None, 13, 13, 8\) vs teacher layer '{t_rescale}' "
        r"\(None, 28, 28, 1\)"
    )
    with pytest.raises(ValueError, match=pattern):
        Distiller(student, teacher, feature_layers=[(s_conv, t_rescale)])
    with pytest.raises(ValueError, match=r"has no layer 'nope'"):
        Distiller(student, teacher, feature_layers=["nope"])
    with pytest.raises(ValueError, match=r"alignment_weight=-1"):
        Distiller(student, teacher, alignment_weight=-1)
    with pytest.raises(ValueError, match=r"temperature=0"):
        Distiller(student, teacher, temperature=0)
    other = tiny_model(input_shape=SHAPE, num_classes=5, binarization="fp")
    with pytest.raises(ValueError, match=r"same output shape.*\(None, 10\).*\(None, 5\)"):
        Distiller(student, other)
    wider = tiny_model(input_shape=(32, 32, 3), binarization="fp")
    with pytest.raises(
        ValueError, match=r"same inputs, got input shapes \[\(28, 28, 1\)\] and \[\(32, "
    ):
        Distiller(student, wider)
    # The student as its own teacher would be frozen by the Distiller, training nothing.
    with pytest.raises(ValueError, match=r"`teacher` is the `student` model itself"):
        Distiller(student, student)
    assert student.trainable
    frozen = tiny_model(input_shape=SHAPE, binarization="irnet")
    frozen.trainable = False
    with pytest.raises(ValueError, match=r"has no trainable weights"):
        Distiller(frozen, teacher)


@pytest.mark.slow  # trains on real data
def test_distiller_lowers_the_alignment_loss_on_fashion_mnist(tmp_path, teacher_file, fmnist_slice):
    x, y = fmnist_slice
    teacher = load_teacher(teacher_file)
    teacher_before = [w.copy() for w in teacher.get_weights()]

    def run(weight, callbacks=()):
        distiller = make_distiller(teacher_file, alignment_weight=weight)
        before = distiller.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
        history = distiller.fit(
            x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=list(callbacks)
        )
        after = distiller.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
        return distiller, before, history.history, after

    control, control_before, _, control_after = run(0.0)
    callbacks = [
        EDECallback(),
        InformationDiagnostics(per_layer=False),
        tf.keras.callbacks.TensorBoard(log_dir=str(tmp_path / "tb"), profile_batch=0),
        tf.keras.callbacks.CSVLogger(str(tmp_path / "history.csv")),
    ]
    distiller, before, history, after = run(1.0, callbacks)

    # Same initialization (same seed), so the same distance before training.
    assert before["alignment_loss"] == pytest.approx(control_before["alignment_loss"])
    assert after["alignment_loss"] < 0.85 * before["alignment_loss"]
    assert after["alignment_loss"] < 0.85 * control_after["alignment_loss"]
    assert history["alignment_loss"][-1] < 0.9 * history["alignment_loss"][0]
    # The objective is the task loss plus lambda times the alignment (no weight decay here).
    np.testing.assert_allclose(
        history["loss"], np.add(history["task_loss"], history["alignment_loss"]), rtol=1e-5
    )
    # kl_loss is logged whatever its weight (a callback may turn the term on later).
    assert 0.0 <= after["accuracy"] <= 1.0 and len(history["kl_loss"]) == 3

    # Callbacks found the student's EDE quantizers and binarized kernels, and logged.
    assert len(ede_quantizers(distiller)) == len(ede_quantizers(distiller.student)) == 2
    assert float(ede_quantizers(distiller)[0].ede_t.numpy()) == pytest.approx(history["ede_t"][-1])
    assert [k.name for k in binarized_kernels(distiller)] == [
        k.name for k in binarized_kernels(distiller.student)
    ]
    rows = list(csv.DictReader(open(tmp_path / "history.csv")))
    assert len(rows) == 3
    for key in ("loss", "task_loss", "alignment_loss", "accuracy", "ede_t", "entropy_mean"):
        assert key in rows[0], key
    tags = set()
    for event_file in (tmp_path / "tb" / "train").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"epoch_task_loss", "epoch_alignment_loss", "epoch_ede_t"} <= tags

    # The frozen teacher did not move, BatchNorm statistics included.
    for a, b in zip(teacher_before, distiller.teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_teacher_gets_no_gradient(teacher_file, fmnist_slice):
    x, y = fmnist_slice
    distiller = make_distiller(teacher_file, logits_weight=1.0)
    teacher_variables = distiller.teacher.variables
    assert not distiller.teacher.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(teacher_variables)  # even when watched, nothing reaches the teacher
        losses = distiller.distillation_losses(x[:BATCH], y[:BATCH], training=True)
    assert set(losses) == {"loss", "task_loss", "alignment_loss", "kl_loss"}
    assert all(g is None for g in tape.gradient(losses["loss"], teacher_variables))
    student_gradients = tape.gradient(losses["loss"], distiller.student.trainable_variables)
    assert all(g is not None for g in student_gradients)
    assert {id(v) for v in distiller.trainable_variables} == {
        id(v) for v in distiller.student.trainable_variables
    }
    # A fit step with the KL term on: the logged kl_loss is positive and the teacher fixed.
    before = [w.copy() for w in distiller.teacher.get_weights()]
    history = distiller.fit(x, y, batch_size=BATCH, epochs=1, steps_per_epoch=2, verbose=0)
    assert history.history["kl_loss"][0] > 0
    for a, b in zip(before, distiller.teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # converts
def test_student_saved_alone_loads_and_converts(tmp_path, teacher_file, fmnist_slice):
    x, y = fmnist_slice
    distiller = make_distiller(teacher_file)
    distiller.fit(x, y, batch_size=BATCH, epochs=1, steps_per_epoch=3, verbose=0)
    distiller.student.save(tmp_path / "student.h5")
    expected = distiller.student.predict(x[:64], verbose=0)
    with h5py.File(tmp_path / "student.h5", "r") as f:
        assert "Distiller" not in f.attrs["model_config"]

    tf.keras.backend.clear_session()
    student = tf.keras.models.load_model(tmp_path / "student.h5")
    np.testing.assert_allclose(student.predict(x[:64], verbose=0), expected, rtol=1e-5, atol=1e-6)
    report = convert(student, strict=True).report
    assert report.op_histogram["LceBconv2d"] == 1 == len(binarized_kernels(student))
    assert all(layer.ops == ("LceBconv2d",) for layer in report.layers if layer.binary)


@pytest.mark.slow  # trains three times
def test_checkpoint_resume_at_an_epoch_boundary_is_exact(tmp_path, teacher_file, fmnist_slice):
    x, y = fmnist_slice

    def fit(distiller, initial_epoch, epochs):
        distiller.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=epochs,
            initial_epoch=initial_epoch,
            shuffle=False,
            verbose=0,
            callbacks=[EDECallback(total=3)],
        )

    straight = make_distiller(teacher_file)
    fit(straight, 0, 3)
    expected = straight.student.get_weights()

    first = make_distiller(teacher_file)
    fit(first, 0, 1)
    tf.train.Checkpoint(model=first, optimizer=first.optimizer).write(str(tmp_path / "ckpt"))
    tf.keras.backend.clear_session()
    # A fresh Distiller (another initialization) restored from the checkpoint.
    resumed = make_distiller(teacher_file, seed=7)
    resumed.optimizer.build(resumed.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=resumed, optimizer=resumed.optimizer)
    checkpoint.read(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    fit(resumed, 1, 3)
    weights = resumed.student.get_weights()
    assert len(weights) == len(expected)
    for a, b in zip(expected, weights, strict=True):
        np.testing.assert_array_equal(a, b)


def random_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, *SHAPE)).astype(np.float32), rng.integers(0, 10, n)


def untrained_distiller(seed=0, **kwargs):
    tf.keras.utils.set_random_seed(seed)
    student = tiny_model(input_shape=SHAPE, binarization="irnet")
    return Distiller(student, tiny_model(input_shape=SHAPE, binarization="fp"), **kwargs)


@pytest.fixture
def mixed_float16():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    tf.keras.mixed_precision.set_global_policy("float32")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def first_conv_update(model, fit):
    conv = next(layer for layer in model.layers if type(layer) is tf.keras.layers.Conv2D)
    before = conv.kernel.numpy().copy()
    fit()
    return conv.kernel.numpy() - before


def test_mixed_precision_distiller_moves_the_student_as_its_own_fit(mixed_float16):
    # Sample weights of 1e-4 make float16 gradients underflow unless the loss is scaled.
    x, y = random_images(16)
    weights = np.full(16, 1e-4, np.float32)
    records = _Records()
    tf.get_logger().addHandler(records)
    try:
        distiller = untrained_distiller(alignment_weight=0.0)
        distiller.compile(
            tf.keras.optimizers.SGD(1.0), tf.keras.losses.SparseCategoricalCrossentropy()
        )
        assert isinstance(distiller.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        distilled = first_conv_update(
            distiller.student,
            lambda: distiller.fit(x, y, sample_weight=weights, batch_size=16, verbose=0),
        )
    finally:
        tf.get_logger().removeHandler(records)
    tf.keras.utils.set_random_seed(0)
    student = tiny_model(input_shape=SHAPE, binarization="irnet")
    student.compile(tf.keras.optimizers.SGD(1.0), tf.keras.losses.SparseCategoricalCrossentropy())
    alone = first_conv_update(
        student, lambda: student.fit(x, y, sample_weight=weights, batch_size=16, verbose=0)
    )
    # The same initialization, data and objective (lambda = 0): the same step.
    assert np.linalg.norm(alone) > 0
    assert np.linalg.norm(distilled) / np.linalg.norm(alone) == pytest.approx(1.0, rel=1e-2)
    assert not [m for m in records.messages if "LossScaleOptimizer" in m]


class _SetLossWeights(tf.keras.callbacks.Callback):
    """From epoch `at` on: lambda 0, mu 0.5, T 2 (as NumPy scalars)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            self.model.alignment_weight = np.float32(0.0)
            self.model.logits_weight = np.float64(0.5)
            self.model.temperature = np.int64(2)


def test_loss_weights_changed_during_fit_take_effect_at_the_next_step():
    x, y = random_images(64)
    distiller = untrained_distiller(alignment_weight=1.0, logits_weight=0.0, temperature=4.0)
    distiller.compile(
        tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy()
    )
    history = distiller.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[_SetLossWeights(1)]
    ).history
    first, second = ({k: v[epoch] for k, v in history.items()} for epoch in (0, 1))
    assert first["loss"] == pytest.approx(first["task_loss"] + first["alignment_loss"], rel=1e-5)
    assert first["alignment_loss"] > 0.1
    assert second["loss"] == pytest.approx(second["task_loss"] + 0.5 * second["kl_loss"], rel=1e-5)
    assert (distiller.alignment_weight, distiller.logits_weight, distiller.temperature) == (
        0.0,
        0.5,
        2.0,
    )
    # The KL term is read at the new temperature.
    student_out, teacher_out = distiller.student(x[:8]), distiller.teacher(x[:8])
    expected = distillation_kl(student_out, teacher_out, temperature=2.0, from_logits=False)
    losses = distiller.distillation_losses(x[:8], y[:8])
    assert float(losses["kl_loss"]) == pytest.approx(float(tf.reduce_mean(expected)), rel=1e-5)
    # Not weights of the Distiller: its saved weights are the student's and teacher's.
    assert len(distiller.weights) == len(untrained_distiller().weights)
    with pytest.raises(ValueError, match=r"alignment_weight=-1"):
        distiller.alignment_weight = -1
    with pytest.raises(ValueError, match=r"temperature=0"):
        distiller.temperature = 0
    assert distiller.alignment_weight == 0.0 and distiller.temperature == 2.0


def compiled_distiller(seed=0, **kwargs):
    distiller = untrained_distiller(seed, **kwargs)
    distiller.compile(
        tf.keras.optimizers.Adam(1e-2), tf.keras.losses.SparseCategoricalCrossentropy()
    )
    return distiller


@pytest.mark.parametrize("name", ["d.keras", "d.h5", "d_savedmodel"])
def test_saving_the_distiller_whole_is_refused_naming_what_to_save(tmp_path, name):
    x, y = random_images(32)
    distiller = compiled_distiller()
    refusal = r"a Distiller is not saved whole.*distiller\.student\.save.*BackupAndRestore"
    with pytest.raises(NotImplementedError, match=rf"Distiller\.save\(.*{name}.*\): {refusal}"):
        distiller.save(tmp_path / name)
    before = distiller.student.get_weights()
    checkpoint = tf.keras.callbacks.ModelCheckpoint(str(tmp_path / name))
    with pytest.raises(
        NotImplementedError, match=rf"ModelCheckpoint.*on Distiller\.fit: {refusal}"
    ):
        distiller.fit(x, y, batch_size=16, verbose=0, callbacks=[checkpoint])
    # Refused before training: nothing moved, nothing written.
    for a, b in zip(before, distiller.student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["weights.h5", "weights"])
def test_model_checkpoint_of_weights_loads_into_a_fresh_distiller(tmp_path, name):
    x, y = random_images(32)
    distiller = compiled_distiller()
    checkpoint = tf.keras.callbacks.ModelCheckpoint(str(tmp_path / name), save_weights_only=True)
    distiller.fit(x, y, batch_size=16, verbose=0, callbacks=[checkpoint])
    fresh = compiled_distiller(seed=5)
    fresh.load_weights(tmp_path / name)
    for a, b in zip(distiller.student.get_weights(), fresh.student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


class _Anneal(tf.keras.callbacks.Callback):
    """lambda = 1 / (1 + epoch), set from the epoch: a resumed run sets it again."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.alignment_weight = 1.0 / (1 + epoch)


class _Interrupt(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt


def test_backup_and_restore_resumes_an_annealed_distillation_exactly(tmp_path):
    x, y = random_images(64)

    def fit(distiller, *extra):
        callbacks = [EDECallback(total=3), _Anneal(), *extra]
        return distiller.fit(
            x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=callbacks
        ).history

    straight = compiled_distiller()
    expected = fit(straight)
    backup = tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(KeyboardInterrupt):
        fit(compiled_distiller(), backup, _Interrupt())
    tf.keras.backend.clear_session()
    resumed = compiled_distiller(seed=7)  # another initialization: all comes from the backup
    history = fit(resumed, tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup")))
    assert len(history["loss"]) == 1  # only the third epoch ran
    assert history["loss"][0] == pytest.approx(expected["loss"][2], rel=1e-6)
    assert resumed.alignment_weight == straight.alignment_weight == pytest.approx(1 / 3)
    for a, b in zip(straight.student.get_weights(), resumed.student.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_get_config_round_trip(teacher_file):
    distiller = make_distiller(teacher_file, alignment_weight=0.5, logits_weight=0.1)
    config = distiller.get_config()
    json.dumps(config)
    copy = Distiller.from_config(config)
    assert copy.feature_layers == distiller.feature_layers
    assert (copy.alignment_weight, copy.logits_weight, copy.temperature) == (0.5, 0.1, 4.0)
    assert copy.from_logits is False and copy.teacher.trainable is False


def test_load_teacher_errors_name_the_path(tmp_path, teacher_file):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'missing'}"):
        load_teacher(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path} is a directory without model.h5"):
        load_teacher(tmp_path)
    teacher = load_teacher(teacher_file / "model.h5")
    teacher.save_weights(tmp_path / "weights.h5")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'weights.h5'}: a weights-only \.h5"):
        load_teacher(tmp_path / "weights.h5")
    tf.keras.utils.set_random_seed(3)
    fresh = load_teacher(
        tmp_path / "weights.h5", model=tiny_model(input_shape=SHAPE, binarization="fp")
    )
    assert not fresh.trainable
    for a, b in zip(teacher.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "broken.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'broken.h5'}: not an HDF5 file"):
        load_teacher(tmp_path / "broken.h5")


@pytest.mark.slow  # a multi-device strategy
def test_mirrored_strategy_trains_the_student(teacher_file, fmnist_slice):
    x, y = fmnist_slice
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        distiller = make_distiller(teacher_file)
    history = distiller.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert history.history["alignment_loss"][1] < history.history["alignment_loss"][0]


# Two replicas (two logical CPUs) against one device on the same global batches: with the
# student's BatchNorm frozen (per-replica batch statistics would differ), the loss scaling
# must make the summed replica gradients those of one device.
MIRRORED = textwrap.dedent(
    """
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import larq_irnet
    from larq_irnet.distillation import Distiller, load_teacher
    import numpy as np
    from tiny import tiny_model

    data = np.load(sys.argv[2])
    x, y = data["x"], data["y"]
    results = {}
    for name, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            student = tiny_model(input_shape=(28, 28, 1), binarization="irnet")
            for layer in student.layers:
                if isinstance(layer, tf.keras.layers.BatchNormalization):
                    layer.trainable = False
            distiller = Distiller(
                student, load_teacher(sys.argv[1]), alignment_weight=2.0, logits_weight=0.5
            )
            distiller.compile(
                tf.keras.optimizers.SGD(0.05),
                tf.keras.losses.SparseCategoricalCrossentropy(),
                ["accuracy"],
            )
        assert distiller.distribute_strategy.num_replicas_in_sync == len(devices)
        history = distiller.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        results[name] = (student.get_weights(), history.history)
    (w1, h1), (w2, h2) = results["one"], results["two"]
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for key in ("loss", "task_loss", "alignment_loss", "kl_loss"):
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-4)
    print("ok", h2["alignment_loss"])
    """
)


@pytest.mark.slow
def test_mirrored_two_replicas_equal_one_device(tmp_path, teacher_file, fmnist_slice):
    x, y = fmnist_slice
    np.savez(tmp_path / "data.npz", x=x[:256], y=y[:256])
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, str(script), str(teacher_file), str(tmp_path / "data.npz")]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import larq_irnet
    from larq_irnet.callbacks import EDECallback
    from larq_irnet.distillation import Distiller, load_teacher
    import numpy as np
    from tiny import tiny_model

    teacher_dir, data_file, out_dir, index = sys.argv[1:5]
    data = np.load(data_file)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (
        tf.data.Dataset.from_tensor_slices((data["x"], data["y"])).batch(64).with_options(options)
    )
    with strategy.scope():
        tf.keras.utils.set_random_seed(0)
        distiller = Distiller(
            tiny_model(input_shape=(28, 28, 1), binarization="irnet"), load_teacher(teacher_dir)
        )
        distiller.compile(
            tf.keras.optimizers.Adam(1e-2),
            tf.keras.losses.SparseCategoricalCrossentropy(),
            ["accuracy"],
        )
    history = distiller.fit(dataset, epochs=2, verbose=0, callbacks=[EDECallback()])
    np.savez(Path(out_dir) / f"weights{index}.npz", *distiller.student.get_weights())
    (Path(out_dir) / f"worker{index}.json").write_text(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }))
    """
)


@pytest.mark.slow
def test_two_workers_distil_to_the_same_student(tmp_path, teacher_file, fmnist_slice):
    x, y = fmnist_slice
    np.savez(tmp_path / "data.npz", x=x[:256], y=y[:256])
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, str(script), str(teacher_file), str(tmp_path / "data.npz")]
        workers.append(
            subprocess.Popen(
                [*command, str(out_dir), str(index)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=WORKER_TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"the workers did not finish within {WORKER_TIMEOUT} s")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for index, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, f"worker {index} failed:\n{output[-3000:]}"
    weights = [np.load(out_dir / f"weights{i}.npz") for i in range(2)]
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    records = [json.loads((out_dir / f"worker{i}.json").read_text()) for i in range(2)]
    assert records[0]["replicas"] == records[1]["replicas"] == 2
    assert records[0]["history"] == records[1]["history"]
    alignment = records[0]["history"]["alignment_loss"]
    assert alignment[1] < alignment[0] and records[0]["history"]["ede_t"] == [0.1, 1.0]


def test_a_binary_teacher_loads_with_a_warning_that_names_it(tmp_path):
    path = tmp_path / "binary.h5"
    tiny_model(input_shape=SHAPE, num_classes=10, binarization="irnet").save(path)
    with pytest.warns(UserWarning, match=r"binary.h5 has \d+ binarized layers; RBD is designed"):
        teacher = load_teacher(path)
    assert not teacher.trainable


def test_a_softmax_inside_a_nested_network_is_found():
    # irnetify and wrappers (padding, preprocessing) leave the classifier in a nested
    # model: its softmax still means probabilities, for the loss and for the logits KL.
    def network(activation):
        inputs = tf.keras.Input((4,))
        return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation=activation)(inputs))

    def wrapped(inner):
        inputs = tf.keras.Input((4,))
        return tf.keras.Model(inputs, inner(tf.keras.layers.Rescaling(0.5)(inputs)))

    assert ends_in_softmax(network("softmax")) and not ends_in_softmax(network(None))
    assert ends_in_softmax(wrapped(network("softmax")))
    assert ends_in_softmax(wrapped(wrapped(network("softmax"))))
    assert not ends_in_softmax(wrapped(network(None)))
    separate = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    separate.add(tf.keras.layers.Activation("softmax"))
    assert ends_in_softmax(separate)
