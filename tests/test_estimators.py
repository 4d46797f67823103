"""larq_irnet.estimators: DIR-Net's DTE (our design) against an independent NumPy
computation of its formulas; where a scheduled estimator keeps its state (issue #13, item 7).

EDE's t and k (any `ScheduledSign` state) are training-only: checkpoints keep them; Keras
weights, `count_params`, Larq's profile and `.h5` weight files do not. Older `.h5` files
that hold them still load (`larq_irnet.legacy_h5.h5_without_estimator_state`).
"""

import math
import re

import larq_irnet  # (first: selects Keras 2, registers the quantizers)
from larq_irnet.callbacks import ede_quantizers, set_ede
from larq_irnet.estimators import (
    ScheduledSign,
    _channel_moments,
    _scale_channels,
    dte_band_width,
    dte_gradient,
    dte_sigma,
    ede_gradient,
)
from larq_irnet.legacy_h5 import estimator_state_entries, h5_without_estimator_state
from larq_irnet.quantizers import DTESign, IMBSign
from larq_irnet.schedules import dte_values
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.loading import load_model

import h5py
import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from tiny import tiny_model

T_MIN, T_MAX, N = 0.1, 10.0, 20


def np_sigma(x):
    """Per-channel (last axis) population std of x, 1 for a channel without spread
    (std at most 3.2% of |mean|: variance <= 1e-3 mean^2)."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    var, mean = flat.var(axis=0), flat.mean(axis=0)
    return np.where(var > 1e-3 * mean**2, np.sqrt(var + 1e-5), 1.0)


def np_dte(x, sigma, t, k, band, epsilon, width):
    u = x / sigma
    soft = k * t * (1 - np.tanh(t * u) ** 2)
    floor = np.where(np.abs(u) <= width, band * epsilon, 0.0)
    return np.maximum(soft, floor) / sigma


def np_stage(i, n, t_min, t_max, split=0.5):
    """The two stages, written out: (t, k, band)."""
    p = i / n
    if p < split:
        t = math.exp(math.log(t_min) * (1 - p / split))
        return t, 1 / t, 0.0
    return math.exp(math.log(t_max) * (p - split) / (1 - split)), 1.0, 1.0


def activations(seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([0.05, 1.0, 4.0])  # channels with very different spreads
    return rng.normal(0.2, 1.0, size=(4, 5, 5, 3)) * scales


def grad_of(quantizer, x):
    x_var = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        y = quantizer(x_var)
    return y.numpy(), tape.gradient(y, x_var).numpy()


# i = 0 (stage 1 start), 5 (stage 1), 9 (last of stage 1), 10 (the switch), 15, 19 (stage 2)
@pytest.mark.parametrize("i", [0, 5, 9, 10, 15, 19])
def test_dte_sign_matches_numpy_through_the_schedule(i):
    x = activations(i)
    x[0, 0, 0, 1] = 0.0  # sign(0) = +1
    state = dte_values(i, N, T_MIN, T_MAX)
    t, k, band = np_stage(i, N, T_MIN, T_MAX)
    assert (state["t"], state["k"], state["band"]) == pytest.approx((t, k, band), rel=1e-12)
    quantizer = DTESign()
    quantizer.set_state(**state)
    y, grad = grad_of(quantizer, x)
    np.testing.assert_array_equal(y, np.where(x >= 0, 1.0, -1.0))
    expected = np_dte(x, np_sigma(x), t, k, band, state["epsilon"], state["width"])
    # float32's 1 - tanh^2 loses digits where tanh ~ 1; a population-vs-unbiased sigma
    # (0.5% here) or a missing 1/sigma would still fail by far.
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)


def test_the_stage_switch_turns_the_band_on_with_t_and_k_continuous():
    before, at = dte_values(9, 10, T_MIN, T_MAX, 0.95), dte_values(10, 10, T_MIN, T_MAX, 0.95)
    assert before["band"] == 0.0 and at["band"] == 1.0
    # 9/10 < 0.95 is still stage 1; the first step of stage 2 starts from t = k = 1.
    assert dte_values(19, 20, T_MIN, T_MAX, 0.95)["t"] == pytest.approx(1.0)
    assert dte_values(19, 20, T_MIN, T_MAX, 0.95)["k"] == 1.0
    assert dte_values(0, 20, T_MIN, T_MAX)["t"] == pytest.approx(T_MIN)
    # Stage 1 keeps k t = 1 (the slope at zero of the identity: updating capability).
    for i in range(10):
        s = dte_values(i, 20, T_MIN, T_MAX)
        assert s["k"] * s["t"] == pytest.approx(1.0)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_band_width_holds_the_fraction_of_a_standardized_gaussian(fraction):
    b = dte_band_width(fraction)
    assert math.erf(b / math.sqrt(2)) == pytest.approx(fraction, abs=1e-12)  # P(|u| <= b)
    u = np.random.default_rng(0).standard_normal(200_000)
    assert np.mean(np.abs(u) <= b) == pytest.approx(fraction, abs=0.005)


def test_the_band_keeps_epsilon_in_stage_2_and_nothing_outside():
    x = np.linspace(-2.0, 2.0, 401)[:, None]  # one channel, std ~1.16
    sigma = np_sigma(x)
    quantizer = DTESign()
    state = dict(t=100.0, k=1.0, band=1.0, epsilon=0.05, width=dte_band_width(0.5))
    quantizer.set_state(**state)
    _, grad = grad_of(quantizer, x)
    u = x / sigma
    inside, outside = np.abs(u) <= state["width"], np.abs(u) > state["width"] + 1e-6
    assert np.all(grad[inside] >= 0.05 / sigma - 1e-7)  # the floor, in units of u
    assert np.all(grad[outside] < 1e-12)  # sharp sign outside the band
    assert grad[200, 0] == pytest.approx(100.0 / sigma[0], rel=1e-5)  # peak at 0: k t / sigma
    quantizer.set_state(band=0.0)  # stage 1: no floor
    _, no_band = grad_of(quantizer, x)
    assert np.all(no_band[inside & (np.abs(u) > 0.3)] < 1e-6)


def test_a_channel_concentrated_far_from_zero_counts_as_without_spread():
    rng = np.random.default_rng(2)
    x = np.empty((4, 5, 5, 3), np.float32)
    x[..., 0] = 1.0 + 0.01 * rng.standard_normal((4, 5, 5))  # std 1% of the mean: flat
    x[..., 1] = 1.0 + 0.1 * rng.standard_normal((4, 5, 5))  # 10%: its own spread
    x[..., 2] = 0.0  # all zero: flat
    sigma = dte_sigma(tf.constant(x)).numpy().reshape(-1)
    assert sigma[0] == 1.0 and sigma[2] == 1.0
    np.testing.assert_allclose(sigma[1], np.sqrt(x[..., 1].var() + 1e-5), rtol=1e-4)
    np.testing.assert_allclose(sigma, np_sigma(x), rtol=1e-4)


def test_zero_variance_channel_gets_sigma_one():
    x = np.zeros((2, 3, 3, 2))
    x[..., 1] = np.random.default_rng(1).normal(size=(2, 3, 3))
    x[..., 0] = 0.7  # no spread
    quantizer = DTESign(t=0.5)
    _, grad = grad_of(quantizer, x)
    expected = 2.0 * 0.5 * (1 - np.tanh(0.5 * 0.7) ** 2)  # sigma = 1, k = 1/t
    np.testing.assert_allclose(grad[..., 0], expected, rtol=1e-6)
    assert np.all(np.isfinite(grad))


@pytest.fixture
def mixed_float16():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    tf.keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("i", [0, 10, 19])
@pytest.mark.parametrize("quantizer_cls", [DTESign, IMBSign])
def test_dte_finite_in_float16(mixed_float16, i, quantizer_cls):
    x = activations(3).astype(np.float16)
    x[..., 0] = 0.25  # a zero-variance channel too
    state = dte_values(i, N, 1e-3, 100.0)
    quantizer = quantizer_cls()
    quantizer.set_state(**state)
    y, grad = grad_of_dtype(quantizer, x)
    assert y.dtype == np.float16 and grad.dtype == np.float16
    assert np.all(np.isfinite(grad))
    x64 = x.astype(np.float64)
    expected = np_dte(x64, np_sigma(x64), state["t"], state["k"], state["band"],
                      state["epsilon"], state["width"])  # fmt: skip
    np.testing.assert_allclose(grad, expected, rtol=5e-3, atol=2e-3)


def grad_of_dtype(quantizer, x):
    x_var = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = quantizer(x_var)
    return y.numpy(), tape.gradient(y, x_var).numpy()


def test_dte_gradient_inside_tf_cond_while_and_map_fn():
    quantizer = DTESign()
    state = dte_values(15, N, T_MIN, T_MAX)
    x = tf.constant(activations(4)[0].astype(np.float32))  # (5, 5, 3)
    quantizer(x)  # built eagerly: its state variables exist before the traced function
    quantizer.set_state(**state)

    branches = {
        "cond": lambda x: tf.cond(tf.constant(True), lambda: quantizer(x), lambda: x),
        "while": lambda x: tf.while_loop(
            lambda i, acc: i < 2,
            lambda i, acc: (i + 1, acc + quantizer(x)),
            (tf.constant(0), tf.zeros_like(x)),
        )[1],
        "map_fn": lambda x: tf.map_fn(lambda v: quantizer(v), x[None])[0],
    }

    def gradient(construct):
        @tf.function
        def traced(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = construct(x)
            return tape.gradient(y, x)

        return traced(x).numpy()

    conditional, looped, mapped = (gradient(branches[n]) for n in ("cond", "while", "map_fn"))
    x64 = x.numpy().astype(np.float64)
    expected = np_dte(x64, np_sigma(x64), *(state[n] for n in quantizer.state_names))
    np.testing.assert_allclose(conditional, expected, rtol=1e-3, atol=5e-5)
    np.testing.assert_allclose(looped, 2 * expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(mapped, expected, rtol=1e-3, atol=5e-5)


def test_dte_gradient_function_broadcasts_a_per_channel_sigma():
    x = tf.constant([[0.1, -0.4], [0.3, 0.0]])
    sigma = tf.constant([[0.5, 2.0]])
    got = dte_gradient(x, sigma, 3.0, 1.0, 1.0, 0.2, 0.5).numpy()
    expected = np_dte(x.numpy().astype(np.float64), np.array([[0.5, 2.0]]), 3.0, 1.0, 1.0, 0.2, 0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 3), (2, 4, 4, 3), (2, 2, 3, 2, 3)])
def test_per_channel_scaling_and_moments_match_numpy_at_every_rank(shape):
    # DTE's backward pass multiplies by per-channel factors and reads per-channel moments
    # through the fused batch-norm kernel; both must be exactly what they stand for.
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * [0.5, 2.0, 1e-3] + [0.0, 3.0, -1.0]).astype(np.float32)
    scale = np.array([0.5, -2.0, 7.0], np.float32)
    channel_shape = [1] * (len(shape) - 1) + [3]
    scaled = _scale_channels(tf.constant(x), tf.constant(scale.reshape(channel_shape)))
    np.testing.assert_array_equal(scaled.numpy(), x * scale)
    assert _scale_channels(tf.constant(x), 2.0).numpy().tolist() == (x * 2.0).tolist()
    mean, variance = _channel_moments(tf.constant(x))
    axes = tuple(range(len(shape) - 1))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), x64.mean(axes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance.numpy(), x64.var(axes), rtol=1e-4, atol=1e-9)
    one_sample = _channel_moments(tf.constant(x.reshape(-1, 3)[:1]))[1].numpy()
    assert one_sample.tolist() == [0.0, 0.0, 0.0]  # n = 1: no spread, not nan


def test_inputs_of_unknown_rank_or_without_channels_are_scaled_and_measured():
    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def unknown_rank(x):
        return _scale_channels(x, 3.0)

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(unknown_rank(tf.constant(x)), 3.0 * x)
    mean, variance = _channel_moments(tf.zeros((4, 0)))
    assert mean.shape == variance.shape == (0,)


def test_other_broadcasts_and_float64_scale_by_plain_multiplication():
    x = np.random.default_rng(4).standard_normal((4, 3))
    full = np.random.default_rng(5).standard_normal((4, 3))
    np.testing.assert_array_equal(
        _scale_channels(tf.constant(x.astype(np.float32)), tf.constant(full.astype(np.float32))),
        x.astype(np.float32) * full.astype(np.float32),
    )
    np.testing.assert_array_equal(
        _scale_channels(tf.constant(x), tf.constant([[1.0, 2.0, 3.0]], tf.float64)),
        x * [1.0, 2.0, 3.0],
    )


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan"), "0.5"])
def test_band_width_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match="band_fraction"):
        dte_band_width(fraction)


# --- where the state lives (issue #13, item 7) ---------------------------------------------

SHAPE = (12, 12, 1)


def images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *SHAPE)).astype("float32")


def irnet_and_twin(**kwargs):
    """An IR-Net model (EDE in both quantizers) and its ste_sign twin, same weights."""
    tf.keras.utils.set_random_seed(0)
    irnet = tiny_model(input_shape=SHAPE, **kwargs)
    tf.keras.utils.set_random_seed(0)
    twin = tiny_model(input_shape=SHAPE, binarization="libra_pb", **kwargs)
    return irnet, twin


def legacy_h5(model, path, t=10.0, k=1.0):
    """`model` saved as larq-irnet 0.1.0 saved it: EDE's t and k as per-layer weights.

    The entries are named and placed as in the shipped weights of that release
    (`quant_conv2d/ede_sign/ede_t:0` after the layer's kernel).
    """
    if path.stem.endswith("weights"):
        model.save_weights(path)
    else:
        model.save(path)
    with h5py.File(path, "r+") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in model.layers:
            quantizers = [
                q
                for q in (
                    getattr(layer, "kernel_quantizer", None),
                    getattr(layer, "input_quantizer", None),
                )
                if isinstance(q, ScheduledSign) and q.uses_state
            ]
            if not quantizers:
                continue
            group = root[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            for q in quantizers:
                for state, value in (("ede_t", t), ("ede_k", k)):
                    entry = f"{layer.name}/{q.name}/{state}:0"
                    group.create_dataset(entry, data=np.float32(value))
                    names.append(entry)
            group.attrs["weight_names"] = np.asarray([n.encode() for n in names])
    return path


def test_state_is_not_a_weight():
    irnet, twin = irnet_and_twin()
    quantizers = ede_quantizers(irnet)
    assert len(quantizers) == 2 and all(q.ede_t is not None for q in quantizers)
    assert all(q.weights == [] for q in quantizers)
    assert not [w for w in irnet.weights if "ede_" in w.name]
    assert irnet.count_params() == twin.count_params()
    assert [w.shape for w in irnet.weights] == [w.shape for w in twin.weights]
    profiles = [lq.models.ModelProfile(m) for m in (irnet, twin)]
    for bits in (1, 32):
        assert profiles[0].op_count("mac", bits) == profiles[1].op_count("mac", bits)
        assert profiles[0].weight_count(bits) == profiles[1].weight_count(bits)


def test_checkpoint_round_trip_restores_t_and_k(tmp_path):
    irnet, _ = irnet_and_twin()
    set_ede(irnet, 6.0, k=2.0)
    path = tf.train.Checkpoint(model=irnet).save(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(path) if "ede_" in name]
    assert len(keys) == 4 and all(key.split("/")[-3] in ("ede_t", "ede_k") for key in keys)
    restored, _ = irnet_and_twin()
    assert [q.state() for q in ede_quantizers(restored)] == [{"t": 1.0, "k": 1.0}] * 2
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    assert [q.state() for q in ede_quantizers(restored)] == [{"t": 6.0, "k": 2.0}] * 2


def test_state_stays_float32_under_mixed_precision():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        quantizer = larq_irnet.EDESign(t=1e-3)
        quantizer(tf.zeros((2, 3)))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert quantizer.ede_k.dtype == tf.float32 and quantizer.ede_k.numpy() == 1000.0


@pytest.mark.parametrize("filename", ["model.h5", "weights.h5"])
def test_irnet_h5_loads_into_its_ste_sign_twin(tmp_path, filename):
    irnet, twin = irnet_and_twin()
    set_ede(irnet, 5.0)
    path = tmp_path / filename
    if filename == "weights.h5":
        irnet.save_weights(path)
        twin.load_weights(path)
        loaded = twin
    else:
        irnet.save(path)
        loaded = tf.keras.models.load_model(path)
        # The whole-model file keeps t and k in the quantizers' config.
        assert [q.state() for q in ede_quantizers(loaded)] == [{"t": 5.0, "k": 1.0}] * 2
        twin.set_weights(loaded.get_weights())
    assert estimator_state_entries(path) == []
    np.testing.assert_array_equal(twin(images()).numpy(), irnet(images()).numpy())


@pytest.mark.slow  # two ResNet-20s at 32x32
def test_zoo_resnet20_profile_equals_its_ste_sign_twin(capsys):
    # larq.models.summary of the IR-Net ResNet-20 counted t and k as 32-bit parameters
    # and MACs (475,264 32-bit MACs against 443,008 for the twin, plus 72 parameters).
    irnet = IRNetResNet20(weights=None)
    twin = IRNetResNet20(weights=None, binarization="libra_pb")
    profiles = [lq.models.ModelProfile(m) for m in (irnet, twin)]
    for bits in (1, 32):
        assert profiles[0].op_count("mac", bits) == profiles[1].op_count("mac", bits)
        assert profiles[0].weight_count(bits) == profiles[1].weight_count(bits)
    assert profiles[0].op_count("mac", 32) == 443_008
    assert irnet.count_params() == twin.count_params()
    lq.models.summary(irnet)
    irnet_summary = capsys.readouterr().out
    lq.models.summary(twin)
    twin_summary = capsys.readouterr().out
    totals = [
        [line for line in s.splitlines() if "Total" in line] for s in (irnet_summary, twin_summary)
    ]
    assert totals[0] == totals[1] and totals[0]


def test_legacy_weights_file_loads_without_its_state(tmp_path):
    irnet, twin = irnet_and_twin()
    path = legacy_h5(irnet, tmp_path / "legacy_weights.h5")
    entries = estimator_state_entries(path)
    assert len(entries) == 4 and all(e.endswith(("/ede_t:0", "/ede_k:0")) for e in entries)
    with pytest.raises(ValueError, match="expects 1 weight"):
        twin.load_weights(path)  # what Keras says without the loader
    for model in irnet_and_twin():
        with h5_without_estimator_state(path) as clean:
            assert clean != path and estimator_state_entries(clean) == []
            model.load_weights(clean)
        np.testing.assert_array_equal(model(images()).numpy(), irnet(images()).numpy())
    assert len(estimator_state_entries(path)) == 4  # the file itself is left as it was
    with h5_without_estimator_state(tmp_path / "missing.h5") as same:
        assert same == tmp_path / "missing.h5"


def test_legacy_model_file_loads_in_the_converter(tmp_path):
    irnet, _ = irnet_and_twin()
    path = legacy_h5(irnet, tmp_path / "model.h5")
    assert len(estimator_state_entries(path)) == 4
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded(images()).numpy(), irnet(images()).numpy())


def test_legacy_weights_load_into_the_zoo(tmp_path):
    tf.keras.utils.set_random_seed(1)
    model = IRNetResNet20(input_shape=(8, 8, 1), weights=None)
    path = legacy_h5(model, tmp_path / "resnet20_weights.h5")
    assert len(estimator_state_entries(path)) == 4 * 18  # 18 binary convs, as shipped
    loaded = IRNetResNet20(input_shape=(8, 8, 1), weights=str(path))
    x = np.random.default_rng(2).uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_dte_state_is_checkpointed_but_not_weights(tmp_path):
    quantizer = DTESign()
    quantizer(tf.zeros((2, 3)))
    assert quantizer.weights == [] and quantizer.count_params() == 0
    quantizer.set_state(t=4.0, k=1.0, band=1.0)
    saved = quantizer.state()
    path = tf.train.Checkpoint(q=quantizer).save(str(tmp_path / "ckpt"))
    keys = {
        name.split("/")[1] for name, _ in tf.train.list_variables(path) if name.startswith("q/")
    }
    assert keys == {f"dte_{name}" for name in saved}
    restored = DTESign()
    restored(tf.zeros((2, 3)))
    assert restored.state()["band"] == 0.0
    tf.train.Checkpoint(q=restored).restore(path).assert_existing_objects_matched()
    assert restored.state() == saved


def test_the_band_floor_binds_only_where_epsilon_exceeds_the_soft_edge():
    from statistics import NormalDist

    from larq_irnet.estimators import dte_soft_at_band_edge
    from larq_irnet.schedules import dte_floor_epochs

    for t, k, width in ((0.01, 100.0, 0.3), (1.0, 1.0, 0.319), (6.31, 1.0, 0.674)):
        expected = k * t * (1 - np.tanh(t * width) ** 2)
        assert float(dte_soft_at_band_edge(t, k, width)) == pytest.approx(expected, rel=1e-3)

    def np_floor_epochs(n, epsilon, fraction, t_min=1e-3, t_max=10.0):
        width = NormalDist().inv_cdf((1 + fraction) / 2)
        out = []
        for i in range(n):
            t, k, band = np_stage(i, n, t_min, t_max)
            soft_edge = k * t * (1 - np.tanh(t * width) ** 2)
            grid = np.linspace(-width, width, 2001)  # the floor binds somewhere in the band
            if np.any(
                np_dte(grid, 1.0, t, k, band, epsilon, width) > k * t * (1 - np.tanh(t * grid) ** 2)
            ):
                assert band * epsilon > soft_edge
                out.append(i)
        return out

    points = [(0.1, 0.25), (0.1, 0.5), (0.5, 0.5), (1.0, 0.5), (1.0, 0.25), (0.0, 0.5)]
    for epsilon, fraction in points:
        for n in (4, 10, 100):
            found = dte_floor_epochs(n, 1e-3, 10.0, 0.5, epsilon, fraction)
            assert found == np_floor_epochs(n, epsilon, fraction), (epsilon, fraction, n)
    # The defaults never bind in 10 epochs; moving the band wider or the floor up does.
    assert dte_floor_epochs(10, 1e-3, 10.0) == []
    assert dte_floor_epochs(10, 1e-3, 10.0, 0.5, 1.0, 0.5) == [5, 6, 7, 8, 9]
    assert dte_floor_epochs(100, 1e-3, 10.0) == [99]  # t > 9.28: the last 1.6% of training
    with pytest.raises(ValueError, match=r"dte_floor_epochs: `n` must be an integer >= 1, got n=0"):
        dte_floor_epochs(0, 1e-3, 10.0)


# --- finite over every accepted t, under every policy ------------------------------------------

FLOAT32 = np.finfo(np.float32)
POLICY_DTYPES = {"mixed_float16": np.float16, "mixed_bfloat16": tf.bfloat16, "float32": np.float32}


@pytest.fixture(params=list(POLICY_DTYPES))
def policy(request):
    tf.keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    tf.keras.mixed_precision.set_global_policy("float32")


def _stage_2_band(quantizer):
    # The band on; for the activation signs with the largest accepted epsilon, whose
    # floor must not overflow either. (For the weight quantizers, the standardization's
    # backward multiplies by 1 / std: there the floor keeps its default.)
    if getattr(quantizer, "uses_dte", False):
        weights = isinstance(quantizer, larq_irnet.LibraPB)
        quantizer.set_state(band=1.0, epsilon=0.1 if weights else float(FLOAT32.max))
    return quantizer


@pytest.mark.parametrize("t", [float(FLOAT32.tiny), 1e-3, 1e5, float(FLOAT32.max)])
@pytest.mark.parametrize(
    "make",
    [
        lambda t: larq_irnet.EDESign(t=t),
        lambda t: DTESign(t=t),
        lambda t: IMBSign(t=t),
        lambda t: larq_irnet.LibraPB(t=t),
        lambda t: larq_irnet.IMB(t=t),
    ],
    ids=["ede_sign", "dte_sign", "imb_sign", "libra_pb", "imb"],
)
def test_gradients_are_finite_for_every_accepted_t_under_every_policy(policy, make, t):
    # The issue: under float16, EDE's k t = 1e5 > 65504 was inf at x = 0, so every step's
    # gradient was inf and no loss scale could recover. Now it saturates at 65504.
    x = np.linspace(-2, 2, 48).reshape(2, 3, 8)
    x[0, 0, :] = 0.0
    x_var = tf.Variable(tf.cast(x, POLICY_DTYPES[policy]))
    quantizer = _stage_2_band(make(t))
    with tf.GradientTape() as tape:
        y = quantizer(x_var)
    grad = tape.gradient(y, x_var)
    assert grad.dtype == x_var.dtype
    assert np.all(np.isfinite(tf.cast(grad, tf.float64).numpy()))


@pytest.mark.parametrize(
    "dtype,peak", [(tf.float16, 65504.0), (tf.bfloat16, 1e5), (tf.float32, 1e5)]
)
def test_ede_gradient_above_float16_saturates_only_in_float16(dtype, peak):
    x = tf.constant([0.0, 1e-6, 0.5], dtype)
    grad = tf.cast(ede_gradient(x, tf.constant(1e5), tf.constant(1.0)), tf.float64).numpy()
    assert grad[0] == pytest.approx(peak, rel=1e-2)
    assert grad[2] == 0.0  # tanh(5e4)^2 = 1: sign's true derivative away from 0


@pytest.mark.parametrize(
    "make,shown",
    [
        (lambda: larq_irnet.EDECallback(t_max=1e39), "t_max=1e+39"),
        (lambda: larq_irnet.EDECallback(t_min=1e-39), "t_min=1e-39"),
        (lambda: larq_irnet.DTECallback(t_max=np.float64(1e300)), "t_max=1e+300"),
        (lambda: larq_irnet.DTECallback(epsilon=1e39), "epsilon=1e+39"),
        (lambda: larq_irnet.EDESign(t=1e39), "t=1e+39"),
        (lambda: DTESign(t=1.0, k=1e-40), "k=1e-40"),
        (lambda: DTESign().set_state(epsilon=1e40), "epsilon=1e+40"),
        (lambda: set_ede(tiny_model(input_shape=(8, 8, 1)), 1e39), "t=1e+39"),
    ],
)
def test_state_values_float32_cannot_hold_are_refused_naming_them(make, shown):
    with pytest.raises(ValueError, match=r"float32's normal numbers.*got " + re.escape(shown)):
        make()
