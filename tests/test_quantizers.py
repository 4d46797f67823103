"""Libra-PB and EDE against an independent NumPy implementation of the paper's formulas."""

import logging

from larq_irnet.quantizers import EDESign, LibraPB

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

KERNEL_SHAPES = [(3, 3, 16, 8), (1, 1, 32, 4), (5, 5, 3, 6), (64, 10)]


# --- NumPy reference (IR-Net, Eq. 5-7 and 10; float64) -------------------------------------


def np_standardize(w, standardize=True, eps=1e-8):
    axes = tuple(range(w.ndim - 1))
    w_hat = w - w.mean(axis=axes, keepdims=True)
    if not standardize:
        return w_hat, np.ones((1,) * (w.ndim - 1) + (w.shape[-1],))
    n = np.prod(w.shape[:-1])
    sigma = np.sqrt((w_hat**2).sum(axis=axes, keepdims=True) / (n - 1) + eps)
    return w_hat / sigma, sigma


def np_scale(w_std):
    axes = tuple(range(w_std.ndim - 1))
    return 2.0 ** np.round(np.log2(np.abs(w_std).mean(axis=axes, keepdims=True)))


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_ede(x, t, k):
    return k * t * (1 - np.tanh(t * x) ** 2)


def np_libra_pb_grad(w, upstream, t, k, gradient="ede", standardize=True, bit_shift=True):
    """dL/dw for Q(w) = sign(w_std) * s, derived by hand for the standardization."""
    axes = tuple(range(w.ndim - 1))
    n = np.prod(w.shape[:-1])
    w_std, sigma = np_standardize(w, standardize)
    s = np_scale(w_std) if bit_shift else 1.0
    surrogate = np_ede(w_std, t, k) if gradient == "ede" else (np.abs(w_std) <= 1)
    d_std = upstream * s * surrogate
    if standardize:
        w_hat = w_std * sigma
        d_hat = d_std / sigma - w_hat * (d_std * w_hat).sum(axes, keepdims=True) / (
            (n - 1) * sigma**3
        )
    else:
        d_hat = d_std
    return d_hat - d_hat.mean(axis=axes, keepdims=True)


def tf_value_and_grad(quantizer, w, upstream):
    w_var = tf.Variable(w.astype(np.float32))
    with tf.GradientTape() as tape:
        y = quantizer(w_var)
        loss = tf.reduce_sum(y * upstream.astype(np.float32))
    return y.numpy(), tape.gradient(loss, w_var).numpy()


# --- Libra-PB --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("t", [0.1, 1.0, 7.0])
def test_libra_pb_matches_numpy(shape, t):
    rng = np.random.default_rng(sum(shape))
    w = rng.normal(0.3, 0.5, size=shape)  # skewed on purpose: the mean must be removed
    upstream = rng.normal(size=shape)
    quantizer = LibraPB(t=t)
    y, grad = tf_value_and_grad(quantizer, w, upstream)

    w_std, _ = np_standardize(w)
    np.testing.assert_allclose(y, np_sign(w_std) * np_scale(w_std), rtol=0, atol=0)
    k = max(1 / t, 1)
    np.testing.assert_allclose(grad, np_libra_pb_grad(w, upstream, t, k), rtol=2e-4, atol=1e-5)


def test_libra_pb_uses_unbiased_std():
    # n = 4 weights per filter: mean |w_std| is 0.67 with the unbiased std (s = 2^-1) but
    # 0.77 with the biased one (s = 2^0), so the scale tells the two apart.
    w = np.array([1.0, -1.0, 0.1, -0.1]).reshape(1, 1, 4, 1)
    w_std, _ = np_standardize(w)
    assert np_scale(w_std).item() == 0.5
    y = LibraPB()(tf.constant(w, tf.float32)).numpy()
    np.testing.assert_array_equal(y.ravel(), [0.5, -0.5, 0.5, -0.5])


def test_libra_pb_scale_is_a_power_of_two_per_output_channel():
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.normal(size=(3, 3, 4, 1)), rng.uniform(-1, 1, (3, 3, 4, 1))], -1)
    w[:2, :, :, 1] = 0.0  # a sparse channel: smaller mean |w_std|, another scale
    y = LibraPB()(tf.constant(w, tf.float32)).numpy()
    scales = [np.unique(np.abs(y[..., o])) for o in range(2)]
    assert all(s.size == 1 and np.log2(s[0]).is_integer() for s in scales)
    np.testing.assert_array_equal([s[0] for s in scales], np_scale(np_standardize(w)[0]).ravel())
    assert scales[0][0] != scales[1][0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(gradient="ste"),
        dict(standardize=False),
        dict(bit_shift=False),
        dict(standardize=False, bit_shift=False, gradient="ste"),
    ],
)
def test_libra_pb_ablation_switches_match_numpy(kwargs):
    rng = np.random.default_rng(1)
    w = rng.normal(0.1, 0.3, size=(3, 3, 8, 4))
    upstream = rng.normal(size=w.shape)
    y, grad = tf_value_and_grad(LibraPB(t=2.0, **kwargs), w, upstream)
    standardize = kwargs.get("standardize", True)
    bit_shift = kwargs.get("bit_shift", True)
    w_std, _ = np_standardize(w, standardize)
    scale = np_scale(w_std) if bit_shift else 1.0
    np.testing.assert_allclose(y, np_sign(w_std) * scale)
    expected = np_libra_pb_grad(
        w, upstream, 2.0, 1.0, kwargs.get("gradient", "ede"), standardize, bit_shift
    )
    np.testing.assert_allclose(grad, expected, rtol=2e-4, atol=1e-5)


def test_libra_pb_balances_a_skewed_kernel_where_plain_sign_does_not():
    w = np.random.default_rng(2).normal(0.5, 0.2, size=(3, 3, 64, 16)).astype(np.float32)
    plain = lq.quantizers.SteSign()(w).numpy()
    libra = LibraPB()(w).numpy()
    plus_plain = (plain > 0).reshape(-1, 16).mean(0)
    plus_libra = (libra > 0).reshape(-1, 16).mean(0)
    assert np.all(plus_plain > 0.95)
    assert np.all(np.abs(plus_libra - 0.5) < 0.07)


def test_libra_pb_zero_variance_filter_is_finite():
    w = np.random.default_rng(3).normal(size=(3, 3, 4, 3))
    w[..., 1] = 0.25  # all-equal filter: the authors' code gives NaN here
    y, grad = tf_value_and_grad(LibraPB(), w, np.ones_like(w))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grad))
    assert np.all(y[..., 1] >= 0)


def test_libra_pb_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gradient"):
        LibraPB(gradient="dirac")
    with pytest.raises(ValueError, match="epsilon"):
        LibraPB(epsilon=-1.0)
    with pytest.raises(ValueError, match="`t`"):
        LibraPB(t=0.0)
    with pytest.raises(ValueError, match="shape"):
        LibraPB()(tf.ones((1, 5)))


# --- EDE sign --------------------------------------------------------------------------------


@pytest.mark.parametrize("t,k", [(0.1, None), (1.0, None), (10.0, None), (3.0, 0.5)])
def test_ede_sign_matches_numpy(t, k):
    rng = np.random.default_rng(4)
    x = rng.normal(scale=1.5, size=(4, 7, 7, 5))
    x[0, 0, 0, 0] = 0.0  # sign(0) must be +1 (larq.math.sign), never 0
    upstream = rng.normal(size=x.shape)
    y, grad = tf_value_and_grad(EDESign(t=t, k=k), x, upstream)
    k_expected = max(1 / t, 1) if k is None else k
    np.testing.assert_array_equal(y, np_sign(x))
    np.testing.assert_allclose(grad, upstream * np_ede(x, t, k_expected), rtol=1e-5, atol=2e-5)


def test_ede_gradient_goes_from_identity_to_sign():
    x = np.linspace(-3, 3, 61)
    _, small_t = tf_value_and_grad(EDESign(t=1e-3), x[:, None], np.ones((61, 1)))
    _, large_t = tf_value_and_grad(EDESign(t=10.0), x[:, None], np.ones((61, 1)))
    np.testing.assert_allclose(small_t, 1.0, atol=1e-4)  # k t = 1 and tanh' ~ 1: identity
    assert large_t[30, 0] == pytest.approx(10.0)  # peaked at 0 ...
    assert np.all(large_t[np.abs(x) > 0.5] < 0.2)  # ... and ~0 elsewhere, like sign's


# --- Larq integration ------------------------------------------------------------------------


def test_string_names_resolve_in_larq_layers():
    layer = lq.layers.QuantConv2D(
        4, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign", use_bias=False
    )
    assert isinstance(layer.kernel_quantizer, LibraPB)
    assert isinstance(layer.input_quantizer, EDESign)
    assert layer.kernel_quantizer.precision == 1 and layer.input_quantizer.precision == 1


@pytest.mark.parametrize(
    "kernel_quantizer, warns",
    [
        ("libra_pb", False),
        (LibraPB(gradient="ste", bit_shift=False), False),
        (LibraPB(standardize=False), True),
        ("ste_sign", True),
        ("ede_sign", True),
    ],
)
def test_starved_weights_warning_only_where_weights_can_starve(kernel_quantizer, warns, caplog):
    # Standardized kernels need no weight_clip; Larq's warning stays for the others.
    caplog.set_level(logging.WARNING, logger="larq.layers_base")
    lq.layers.QuantConv2D(4, 3, kernel_quantizer=kernel_quantizer)
    assert any("starved weights" in r.getMessage() for r in caplog.records) is warns


@pytest.mark.parametrize(
    "quantizer", [LibraPB(gradient="ste", bit_shift=False, epsilon=1e-6, t=0.5), EDESign(t=2.0)]
)
def test_get_config_round_trips(quantizer):
    serialized = lq.quantizers.serialize(quantizer)
    restored = lq.quantizers.get(serialized)
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()


def test_flip_ratio_metric_counts_sign_flips():
    with lq.context.metrics_scope(["flip_ratio"]):
        layer = lq.layers.QuantDense(8, kernel_quantizer="libra_pb", use_bias=False)
    inputs = tf.keras.Input((16,))
    model = tf.keras.Model(inputs, layer(inputs))
    model.compile(tf.keras.optimizers.SGD(1.0), "mse")
    rng = np.random.default_rng(5)
    history = model.fit(rng.normal(size=(64, 16)), rng.normal(size=(64, 8)), epochs=2, verbose=0)
    key = next(k for k in history.history if "flip_ratio" in k)
    assert 0.0 < history.history[key][-1] <= 1.0  # lr=1 flips some signs, never more than all
