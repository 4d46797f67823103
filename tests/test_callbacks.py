"""EDE state and schedule: live gradient changes, logs, persistence, distribution."""

import json
import math
import os
import subprocess
import sys
import textwrap

from larq_irnet import schedules
from larq_irnet.callbacks import (
    DTECallback,
    EDECallback,
    EstimatorScheduler,
    dte_quantizers,
    ede_quantizers,
    set_ede,
)
from larq_irnet.quantizers import EDESign, LibraPB
from larq_irnet.schedules import dte_schedule
from larq_irnet.schedules import ede_schedule as ede_schedule_object

import larq as lq
import numpy as np
import pytest
import tensorflow as tf


def np_schedule(i, n, t_min, t_max):
    """IR-Net's t schedule, written independently of larq_irnet."""
    t = t_min * 10 ** ((i / n) * np.log10(t_max / t_min))
    return t, max(1 / t, 1)


def tiny_model(seed=0, kernel_quantizer="libra_pb", input_quantizer="ede_sign"):
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((6, 6, 2))
    x = lq.layers.QuantConv2D(
        4, 3, padding="same", kernel_quantizer=kernel_quantizer, use_bias=False
    )(inputs)
    x = lq.layers.QuantConv2D(
        4,
        3,
        padding="same",
        pad_values=1.0,
        input_quantizer=input_quantizer,
        kernel_quantizer=kernel_quantizer,
        use_bias=False,
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))
    model.compile(
        tf.keras.optimizers.SGD(0.1, momentum=0.9),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def tiny_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 2)).astype(np.float32), rng.integers(0, 3, n)


def ede_values(model):
    return [(float(q.ede_t.numpy()), float(q.ede_k.numpy())) for q in ede_quantizers(model)]


# --- the schedule ----------------------------------------------------------------------------


@pytest.mark.parametrize("t_min,t_max", [(0.1, 10.0), (1e-3, 10.0)])
def test_schedule_in_fit_logs(t_min, t_max):
    n = 4
    model = tiny_model()
    history = model.fit(
        *tiny_data(), epochs=n, batch_size=16, verbose=0, callbacks=[EDECallback(t_min, t_max)]
    )
    expected = [np_schedule(i, n, t_min, t_max) for i in range(n)]
    np.testing.assert_allclose(history.history["ede_t"], [t for t, _ in expected], rtol=1e-6)
    np.testing.assert_allclose(history.history["ede_k"], [k for _, k in expected], rtol=1e-6)
    # epochs 0, N/2, N-1: T_min, the geometric midpoint, and just under T_max
    assert history.history["ede_t"][0] == pytest.approx(t_min)
    assert history.history["ede_t"][n // 2] == pytest.approx(math.sqrt(t_min * t_max))
    assert history.history["ede_t"][-1] == pytest.approx(t_min * (t_max / t_min) ** 0.75)
    # the quantizers hold the last epoch's values
    assert all(v == pytest.approx(expected[-1]) for v in ede_values(model))


def test_schedule_function_matches_numpy():
    for i, n in [(0, 10), (5, 10), (9, 10), (399, 400)]:
        expected = pytest.approx(np_schedule(i, n, 1e-3, 10.0))
        assert schedules.ede_values(i, n, 1e-3, 10.0) == expected


def test_step_schedule_uses_optimizer_steps():
    model = tiny_model()
    seen = []
    record = tf.keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(ede_values(model)[0][0])
    )
    callback = EDECallback(0.1, 10.0, update_freq="step")
    model.fit(*tiny_data(), epochs=2, batch_size=8, verbose=0, callbacks=[callback, record])
    steps = 2 * 4
    np.testing.assert_allclose(seen, [np_schedule(i, steps, 0.1, 10.0)[0] for i in range(steps)])


def compiled_with(model, steps_per_execution):
    model.compile(
        tf.keras.optimizers.SGD(0.1),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=steps_per_execution,
    )
    return model


@pytest.mark.parametrize(
    "steps_per_execution,shown",
    [(4, "steps_per_execution=4"), ("auto", "steps_per_execution='auto'")],
)
@pytest.mark.parametrize(
    "make_callback,make_model",
    [(EDECallback, tiny_model), (DTECallback, lambda: dirnet_model())],
    ids=["ede", "dte"],
)
def test_step_schedule_refuses_several_steps_per_execution(
    steps_per_execution, shown, make_callback, make_model
):
    # Keras calls on_train_batch_begin once per execution: with 4 steps in one, t would be
    # set at steps 0, 4, 8, 12 only (at the last step 3.16 instead of 7.50).
    model = compiled_with(make_model(), steps_per_execution)
    before = model.get_weights()
    callback = make_callback(0.1, 10.0, update_freq="step")
    with pytest.raises(ValueError, match=rf"{shown}.*steps_per_execution=1, or use update_freq"):
        model.fit(*tiny_data(64), epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # refused before the first step


def test_epoch_schedule_is_exact_with_several_steps_per_execution():
    model = compiled_with(tiny_model(), 4)
    seen = []
    record = tf.keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(ede_values(model)[0][0])
    )
    history = model.fit(
        *tiny_data(64), epochs=3, batch_size=8, verbose=0, callbacks=[EDECallback(), record]
    )
    expected = [np_schedule(i, 3, 0.1, 10.0)[0] for i in range(3)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    np.testing.assert_allclose(history.history["ede_t"], expected, rtol=1e-6)


def test_resumed_fit_continues_the_schedule():
    model = tiny_model()
    history = model.fit(
        *tiny_data(), epochs=4, initial_epoch=2, verbose=0, callbacks=[EDECallback(0.1, 10.0)]
    )
    np.testing.assert_allclose(
        history.history["ede_t"], [np_schedule(i, 4, 0.1, 10.0)[0] for i in (2, 3)]
    )


# --- live changes inside a compiled training step --------------------------------------------


def test_set_ede_changes_gradients_inside_compiled_fit():
    # One EDE-quantized weight vector, loss = sum(q(w) * x): dL/dw = x * k t (1 - tanh^2(t w)).
    w0 = np.array([[0.3], [-0.6], [1.2], [0.05]], np.float32)
    layer = lq.layers.QuantDense(
        1,
        kernel_quantizer=EDESign(),
        use_bias=False,
        kernel_initializer=tf.constant_initializer(w0),
    )
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, layer(inputs))
    model.compile(tf.keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: y_pred)
    x = np.array([[1.0, 2.0, -1.0, 0.5]], np.float32)

    def step(t):
        set_ede(model, t)
        before = layer.kernel.numpy().copy()
        model.fit(x, np.zeros((1, 1)), epochs=1, verbose=0)
        k = max(1 / t, 1)
        np.testing.assert_allclose(
            before - layer.kernel.numpy(),
            x.T * k * t * (1 - np.tanh(t * before) ** 2),
            rtol=1e-5,
            atol=1e-6,
        )

    step(0.1)
    train_function = model.train_function
    traces = train_function.experimental_get_tracing_count()
    step(5.0)
    assert model.train_function is train_function
    assert train_function.experimental_get_tracing_count() == traces


def test_set_ede_reaches_nested_models_and_counts():
    inner = tiny_model()
    inputs = tf.keras.Input((6, 6, 2))
    outer = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inner(inputs)))
    assert set_ede(outer, 2.5) == 3  # two Libra-PB kernels and one EDE sign
    assert ede_values(inner) == [(2.5, 1.0)] * 3
    assert set_ede(outer, 0.5, k=3.0) == 3
    assert ede_values(inner) == [(0.5, 3.0)] * 3


def test_set_ede_before_build_sets_initial_values():
    quantizer = EDESign()
    set_ede(quantizer, 4.0)
    quantizer(tf.ones((2, 2)))
    assert (float(quantizer.ede_t.numpy()), float(quantizer.ede_k.numpy())) == (4.0, 1.0)


def test_ste_libra_pb_has_no_ede_state():
    layer = lq.layers.QuantDense(2, kernel_quantizer=LibraPB(gradient="ste"))
    inputs = tf.keras.Input((3,))
    model = tf.keras.Model(inputs, layer(inputs))
    assert set_ede(model, 1.0) == 0
    with pytest.raises(ValueError, match="no quantizer with an EDE gradient"):
        model.compile("sgd", "mse")
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0, callbacks=[EDECallback()])
    # A DIR-Net model (e.g. irnetify(model, method="dirnet")) is pointed to DTECallback.
    dte = lq.layers.QuantDense(2, kernel_quantizer=LibraPB(gradient="dte"))
    model = tf.keras.Model(inputs, dte(inputs))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"EDE gradient; .*, or larq_irnet.DTECallback for"):
        model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0, callbacks=[EDECallback()])


# --- persistence -----------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["model.h5", "saved_model"])
def test_ede_state_survives_save_and_load(tmp_path, filename):
    model = tiny_model()
    set_ede(model, 3.7)
    x, _ = tiny_data()
    path = str(tmp_path / filename)
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(ede_values(loaded), [(3.7, 1.0)] * 3, rtol=1e-6)
    assert [type(q) for q in ede_quantizers(loaded)] == [LibraPB, LibraPB, EDESign]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_ede_state_survives_checkpoint(tmp_path):
    model = tiny_model()
    set_ede(model, 6.0, k=2.0)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    restored = tiny_model()
    assert ede_values(restored) == [(1.0, 1.0)] * 3
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    assert ede_values(restored) == [(6.0, 2.0)] * 3


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(t_min=0.0), "t_min"),
        (dict(t_min=-1.0), "t_min"),
        (dict(t_min=1.0, t_max=1.0), "t_max"),
        (dict(t_min=1.0, t_max=0.5), "t_max"),
        (dict(update_freq="batch"), "update_freq"),
        (dict(total=0), "total"),
    ],
)
def test_callback_rejects_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        EDECallback(**kwargs)


@pytest.mark.parametrize(
    "kwargs,argument,shown",
    [
        (dict(t_max=float("inf")), "t_max", "t_max=inf"),
        (dict(t_min=float("nan")), "t_min", "t_min=nan"),
        (dict(t_min=np.float64(-np.inf)), "t_min", "t_min="),
        (dict(t_min=True), "t_min", "t_min=True"),
        (dict(t_min="0.1"), "t_min", "t_min='0.1'"),
        (dict(total=2.0), "total", "total=2.0"),
    ],
)
def test_callback_refuses_non_finite_and_non_real_at_construction(kwargs, argument, shown):
    with pytest.raises(ValueError, match=f"`{argument}`") as raised:
        EDECallback(**kwargs)
    assert shown in str(raised.value)


@pytest.mark.parametrize("total", [np.int64(4), np.int32(4), np.uint8(4)])
def test_numpy_integers_and_floats_are_accepted_wherever_python_numbers_are(total):
    # The issue: EDECallback(total=np.int64(5)) was refused as "not a positive integer".
    callback = EDECallback(np.float32(0.1), np.float64(10.0), total=total)
    model = tiny_model()
    history = model.fit(*tiny_data(), epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    expected = [np_schedule(i, 4, 0.1, 10.0)[0] for i in range(2)]
    np.testing.assert_allclose(history.history["ede_t"], expected, rtol=1e-6)
    assert type(callback.total) is int and json.loads(json.dumps(callback.get_config()))
    dte = DTECallback(np.float32(0.1), np.int64(10), np.float64(0.5), total=total)
    assert json.loads(json.dumps(dte.get_config()))["total"] == 4
    assert set_ede(model, np.float32(2.0), k=np.int64(1)) == 3
    assert ede_values(model) == [(2.0, 1.0)] * 3


def test_t_max_below_t_min_names_t_min():
    with pytest.raises(ValueError, match=r"`t_max` must be > t_min \(10\.0\), got t_max=0\.1"):
        EDECallback(t_min=10, t_max=0.1)


@pytest.mark.parametrize(
    "t_min,t_max", [(np.float32(0.1), 10.0), (np.float64(1e-3), np.int64(10)), (1, 10)]
)
def test_callback_accepts_every_real_number_type(t_min, t_max):
    callback = EDECallback(t_min=t_min, t_max=t_max)
    assert callback.get_config()["t_min"] == pytest.approx(float(t_min))
    assert callback.get_config()["t_max"] == pytest.approx(float(t_max))
    quantizer = EDESign()
    assert set_ede(quantizer, np.float32(2.0)) == 1 and quantizer.state()["t"] == 2.0


def test_schedule_object_drives_the_same_values_as_edecallback():
    schedule = ede_schedule_object(1e-3, 10.0)
    assert schedule.name == "ede" and schedule.state_names == ("t", "k")
    for i, n in [(0, 10), (5, 10), (9, 10)]:
        values = schedule(i, n)
        assert (values["t"], values["k"]) == pytest.approx(np_schedule(i, n, 1e-3, 10.0))
    model = tiny_model()
    history = model.fit(
        *tiny_data(),
        epochs=3,
        verbose=0,
        callbacks=[EstimatorScheduler(schedule)],
    )
    expected = [np_schedule(i, 3, 1e-3, 10.0)[0] for i in range(3)]
    np.testing.assert_allclose(history.history["ede_t"], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="`t_max`.*t_max=inf"):
        ede_schedule_object(0.1, float("inf"))


def test_set_ede_rejects_bad_arguments():
    model = tiny_model()
    with pytest.raises(ValueError, match="`t`"):
        set_ede(model, 0.0)
    with pytest.raises(ValueError, match="`k`"):
        set_ede(model, 1.0, k=-2.0)


# --- distribution (fresh processes: TF fixes its devices at start-up) ------------------------


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )


@pytest.mark.slow
def test_callback_under_mirrored_strategy_with_two_replicas():
    result = run_python(
        """
        import json
        import larq_irnet
        import larq as lq, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            inputs = tf.keras.Input((8,))
            x = lq.layers.QuantDense(
                8, input_quantizer="ede_sign", kernel_quantizer="libra_pb")(inputs)
            model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x))
            model.compile("sgd", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rng = np.random.default_rng(0)
        history = model.fit(rng.normal(size=(64, 8)), rng.integers(0, 2, 64), batch_size=16,
                            epochs=3, verbose=0, callbacks=[larq_irnet.EDECallback(0.1, 10.0)])
        quantizers = larq_irnet.callbacks.ede_quantizers(model)
        replicas = [v.numpy() for q in quantizers for v in q.ede_t._values]
        replicas = [float(r) for r in replicas]
        print("RESULT", json.dumps({"logged": history.history["ede_t"], "replicas": replicas}))
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    values = json.loads(line.removeprefix("RESULT "))
    logged, replicas = values["logged"], values["replicas"]
    expected = [np_schedule(i, 3, 0.1, 10.0)[0] for i in range(3)]
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    np.testing.assert_allclose(replicas, [expected[-1]] * 4, rtol=1e-6)  # 2 quantizers x 2


@pytest.mark.slow
def test_import_selects_keras_2_before_tensorflow():
    result = run_python(
        """
        import larq_irnet, tensorflow as tf
        print(tf.keras.Model.__module__)
        """,
        env={"TF_USE_LEGACY_KERAS": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("tf_keras.")


@pytest.mark.slow
def test_import_after_keras_3_explains_what_to_do():
    result = run_python(
        """
        import os
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
        import tensorflow as tf
        tf.keras.Model  # resolves Keras 3
        import larq_irnet
        """
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "TF_USE_LEGACY_KERAS=1" in result.stderr


# --- DIR-Net's DTE schedule (our design) -----------------------------------------------------


def np_dte_schedule(i, n, t_min, t_max, split=0.5):
    """DTE's two stages, written independently: (t, k, band)."""
    p = i / n
    if p < split:
        t = t_min * (1 / t_min) ** (p / split)
        return t, 1 / t, 0.0
    return t_max ** ((p - split) / (1 - split)), 1.0, 1.0


def dirnet_model(seed=0):
    return tiny_model(seed, kernel_quantizer="imb", input_quantizer="imb_sign")


def np_in_band(model, width):
    """Fraction of the IMB kernels' standardized latent weights with |w_std| <= width."""
    inside = total = 0
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantConv2D):
            w = layer.kernel.latent_variable.numpy().astype(np.float64)
            w_hat = w - w.mean(axis=(0, 1, 2), keepdims=True)
            sigma = np.sqrt((w_hat**2).sum(axis=(0, 1, 2), keepdims=True) / (w[..., 0].size - 1))
            inside += np.sum(np.abs(w_hat / sigma) <= width)
            total += w.size
    return inside / total


def test_dte_callback_runs_two_stages_and_logs():
    n = 4
    model = dirnet_model()
    callback = DTECallback(t_min=0.1, t_max=10.0, epsilon=0.2, band_fraction=0.3)
    history = model.fit(*tiny_data(), epochs=n, batch_size=16, verbose=0, callbacks=[callback])
    expected = [np_dte_schedule(i, n, 0.1, 10.0) for i in range(n)]
    for key, column in (("dte_t", 0), ("dte_k", 1), ("dte_band", 2)):
        np.testing.assert_allclose(history.history[key], [e[column] for e in expected], rtol=1e-9)
    assert history.history["dte_band"] == [0.0, 0.0, 1.0, 1.0]  # the switch at N/2
    width = history.history["dte_width"][-1]
    assert math.erf(width / math.sqrt(2)) == pytest.approx(0.3)
    assert history.history["dte_epsilon"] == [0.2] * n
    assert history.history["dte_in_band"][-1] == pytest.approx(np_in_band(model, width))
    assert 0.1 < history.history["dte_in_band"][-1] < 0.6
    # Every DTE quantizer (2 kernels, 1 input) holds the last epoch's state.
    quantizers = dte_quantizers(model)
    assert len(quantizers) == 3
    assert all(q.state()["t"] == pytest.approx(expected[-1][0]) for q in quantizers)
    assert ede_quantizers(model) == []


def test_dte_callback_resumed_continues_and_steps():
    history = dirnet_model().fit(
        *tiny_data(), epochs=4, initial_epoch=3, verbose=0, callbacks=[DTECallback(0.1, 10.0)]
    )
    assert history.history["dte_t"] == [pytest.approx(np_dte_schedule(3, 4, 0.1, 10.0)[0])]
    model, seen = dirnet_model(), []
    record = tf.keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(dte_quantizers(model)[0].state()["t"])
    )
    callback = DTECallback(0.1, 10.0, stage_split=0.25, update_freq="step")
    model.fit(*tiny_data(), epochs=2, batch_size=8, verbose=0, callbacks=[callback, record])
    expected = [np_dte_schedule(i, 8, 0.1, 10.0, 0.25)[0] for i in range(8)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_dte_callback_refuses_a_model_without_dte():
    with pytest.raises(ValueError, match="DTECallback: the model has no quantizer"):
        tiny_model().fit(*tiny_data(), epochs=1, verbose=0, callbacks=[DTECallback()])


@pytest.mark.parametrize(
    "kwargs,argument,shown",
    [
        (dict(t_min=0.0), "t_min", "t_min=0.0"),
        (dict(t_min=2.0), "t_min", "t_min=2.0"),
        (dict(t_max=1.0), "t_max", "t_max=1.0"),
        (dict(t_max=float("inf")), "t_max", "t_max=inf"),
        (dict(stage_split=1.0), "stage_split", "stage_split=1.0"),
        (dict(stage_split=-0.1), "stage_split", "stage_split=-0.1"),
        (dict(epsilon=-0.5), "epsilon", "epsilon=-0.5"),
        (dict(band_fraction=1.0), "band_fraction", "band_fraction=1.0"),
        (dict(band_fraction="0.2"), "band_fraction", "band_fraction='0.2'"),
        (dict(update_freq="batch"), "update_freq", "update_freq='batch'"),
    ],
)
def test_dte_callback_refuses_bad_values_naming_them(kwargs, argument, shown):
    with pytest.raises(ValueError, match=f"`{argument}`") as raised:
        DTECallback(**kwargs)
    assert shown in str(raised.value) and "\n" not in str(raised.value)


def test_dte_schedule_is_data_and_round_trips():
    schedule = dte_schedule(0.01, 100.0, 0.3, 0.05, 0.2)
    assert dte_schedule(**schedule.get_config()) == schedule
    callback = DTECallback(**schedule.get_config())
    assert callback.schedule == schedule
    assert DTECallback(**callback.get_config()).get_config() == callback.get_config()
