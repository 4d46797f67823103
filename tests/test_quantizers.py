"""Libra-PB and EDE against an independent NumPy implementation of the paper's formulas."""

import json

from larq_irnet.estimators import DTE_STATE
from larq_irnet.layers import kernel_channel_axes
from larq_irnet.quantizers import IMB, DTESign, EDESign, IMBSign, LibraPB, libra_standardize

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

KERNEL_SHAPES = [(3, 3, 16, 8), (1, 1, 32, 4), (5, 5, 3, 6), (64, 10)]


# --- NumPy reference (IR-Net, Eq. 5-7 and 10; float64) -------------------------------------


def np_reduced(ndim, channel_axes=(-1,)):
    channels = {a % ndim for a in channel_axes}
    return tuple(a for a in range(ndim) if a not in channels)


def np_standardize(w, standardize=True, eps=1e-8, channel_axes=(-1,)):
    axes = np_reduced(w.ndim, channel_axes)
    w_hat = w - w.mean(axis=axes, keepdims=True)
    if not standardize:
        return w_hat, np.ones_like(w_hat.mean(axis=axes, keepdims=True))
    n = np.prod([w.shape[a] for a in axes])
    sigma = np.sqrt((w_hat**2).sum(axis=axes, keepdims=True) / (n - 1) + eps)
    return w_hat / sigma, sigma


def np_scale(w_std, channel_axes=(-1,)):
    axes = np_reduced(w_std.ndim, channel_axes)
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


@pytest.mark.parametrize("value", [0.1, -3.0, 0.0, 0.25, 7.0, -1e-3])
@pytest.mark.parametrize("kwargs", [{}, dict(standardize=False), dict(bit_shift=False)])
def test_libra_pb_all_equal_filter_binarizes_to_plus_one(value, kwargs):
    # The docstring's promise: an all-equal filter gives +1 (scale 1), whatever rounding
    # the mean of the value has; the authors' code gives NaN here.
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 3, 4, 3))
    w[..., 1] = value
    upstream = rng.normal(size=w.shape)
    y, grad = tf_value_and_grad(LibraPB(**kwargs), w, upstream)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(grad))
    np.testing.assert_array_equal(y[..., 1], 1.0)
    # The other filters are untouched by it.
    w_std, _ = np_standardize(w, kwargs.get("standardize", True))
    scale = np_scale(w_std) if kwargs.get("bit_shift", True) else 1.0
    np.testing.assert_array_equal(y[..., [0, 2]], (np_sign(w_std) * scale)[..., [0, 2]])


@pytest.mark.parametrize("shape", [(1, 5), (1, 1, 1, 3), (5,)])
def test_libra_standardize_refuses_one_weight_per_filter(shape):
    with pytest.raises(ValueError, match="at least 2 entries per channel"):
        libra_standardize(tf.ones(shape))
    with pytest.raises(ValueError, match="at least 2 entries per channel"):
        LibraPB()(tf.ones(shape))


# --- Libra-PB on its own output (Larq's quantized_scope workflow) ----------------------------


def test_libra_pb_is_idempotent_on_the_issue_example():
    w = tf.constant([[-10.0], [-0.1], [0.1], [10.0]])
    once = LibraPB()(w).numpy()
    np.testing.assert_array_equal(once.ravel(), [-0.5, -0.5, 0.5, 0.5])
    np.testing.assert_array_equal(LibraPB()(once).numpy(), once)


@pytest.mark.parametrize("shape", KERNEL_SHAPES + [(4, 1), (2, 2, 3, 5)])
@pytest.mark.parametrize(
    "kwargs", [{}, dict(standardize=False), dict(bit_shift=False), dict(gradient="ste")]
)
def test_libra_pb_applied_to_its_output_changes_nothing(shape, kwargs):
    rng = np.random.default_rng(sum(shape))
    w = (rng.normal(0.2, 1.0, size=shape) * rng.uniform(0.01, 5.0, shape[-1])).astype("f4")
    once = LibraPB(**kwargs)(w).numpy()
    np.testing.assert_array_equal(LibraPB(**kwargs)(once).numpy(), once)
    # ... and it still is Eq. 5-7 on real-valued kernels.
    w_std, _ = np_standardize(w.astype(np.float64), kwargs.get("standardize", True))
    scale = np_scale(w_std) if kwargs.get("bit_shift", True) else 1.0
    np.testing.assert_array_equal(once, np_sign(w_std) * scale)


def test_libra_pb_keeps_a_power_of_two_scale_of_binary_filters_only():
    # +-0.25 with both signs keeps 0.25; +-0.3 (not a power of two) and an all-0.25
    # filter (one sign) do not.
    w = np.array([[0.25, 0.3, 0.25], [-0.25, -0.3, 0.25], [0.25, 0.3, 0.25], [0.25, -0.3, 0.25]])
    y = LibraPB()(tf.constant(w, tf.float32)).numpy()
    np.testing.assert_array_equal(y[:, 0], w[:, 0])
    w_std, _ = np_standardize(w[:, 1:2])
    np.testing.assert_array_equal(y[:, 1:2], np_sign(w_std) * np_scale(w_std))
    np.testing.assert_array_equal(y[:, 2], 1.0)


@pytest.mark.parametrize("binarization", ["irnet", "bnn", "dirnet", "dirnet_act"])
def test_quantized_scope_weights_reload_to_the_same_outputs(tmp_path, binarization):
    # Larq's documented workflow: save the binarized weights, load them into a fresh
    # model, run it. ste_sign (bnn) gives 0.0 difference; so must Libra-PB.
    from tiny import tiny_model

    tf.keras.utils.set_random_seed(0)
    model = tiny_model(input_shape=(12, 12, 1), binarization=binarization)
    x = np.random.default_rng(0).uniform(0, 255, (8, 12, 12, 1)).astype("f4")
    path = str(tmp_path / "binary.h5")
    with lq.context.quantized_scope(True):
        model.save_weights(path)
    reloaded = tiny_model(input_shape=(12, 12, 1), binarization=binarization)
    reloaded.load_weights(path)
    assert np.max(np.abs(reloaded(x).numpy() - model(x).numpy())) == 0.0


# --- float16 ---------------------------------------------------------------------------------


@pytest.fixture
def mixed_float16():
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    tf.keras.mixed_precision.set_global_policy("float32")


def test_libra_pb_statistics_in_float32_under_mixed_float16(mixed_float16):
    quantizer = LibraPB()
    y = quantizer(tf.zeros((3, 3, 4, 2))).numpy()  # the issue: NaN (epsilon -> 0 in f16)
    np.testing.assert_array_equal(y, 1.0)
    w = np.random.default_rng(6).normal(0.1, 0.02, size=(3, 3, 8, 4)).astype(np.float16)
    w_var = tf.Variable(w)
    with tf.GradientTape() as tape:
        y = LibraPB()(w_var)
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    grad = tape.gradient(loss, w_var)
    assert y.dtype == tf.float16 and grad.dtype == tf.float16
    # Float32 statistics of the float16 kernel, as NumPy computes them.
    w_std, _ = np_standardize(w.astype(np.float64))
    np.testing.assert_array_equal(y.numpy(), np_sign(w_std) * np_scale(w_std))
    assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("t", [1e-3, 10.0, 1e-6, 100.0])
def test_ede_gradient_finite_in_float16_at_the_ends_of_t(mixed_float16, t):
    x = np.linspace(-2, 2, 41).astype(np.float16)
    x_var = tf.Variable(x)
    with tf.GradientTape() as tape:
        y = EDESign(t=t)(x_var)
    grad = tape.gradient(y, x_var).numpy()
    assert y.dtype == tf.float16 and np.all(np.isfinite(grad))
    expected = max(1 / t, 1) * t * (1 - np.tanh(t * x.astype(np.float64)) ** 2)
    np.testing.assert_allclose(grad, expected, rtol=2e-3, atol=1e-3)


# --- channel axes of every Larq layer kind ---------------------------------------------------

# (layer, input shape, {quantizer argument: weight}, filter axes of each weight)
LAYER_KINDS = {
    "Dense": (lambda q: lq.layers.QuantDense(3, kernel_quantizer=q), (5,), {"kernel": (-1,)}),
    "Conv1D": (
        lambda q: lq.layers.QuantConv1D(3, 3, kernel_quantizer=q),
        (8, 2),
        {"kernel": (-1,)},
    ),
    "Conv2D": (
        lambda q: lq.layers.QuantConv2D(3, 2, kernel_quantizer=q),
        (5, 5, 2),
        {"kernel": (-1,)},
    ),
    "Conv3D": (
        lambda q: lq.layers.QuantConv3D(3, 2, kernel_quantizer=q),
        (4, 4, 4, 2),
        {"kernel": (-1,)},
    ),
    "Conv2DTranspose": (
        lambda q: lq.layers.QuantConv2DTranspose(3, 2, kernel_quantizer=q),
        (4, 4, 2),
        {"kernel": (-2,)},
    ),
    "Conv3DTranspose": (
        lambda q: lq.layers.QuantConv3DTranspose(3, 2, kernel_quantizer=q),
        (3, 3, 3, 2),
        {"kernel": (-2,)},
    ),
    "DepthwiseConv2D": (
        lambda q: lq.layers.QuantDepthwiseConv2D(2, depth_multiplier=2, depthwise_quantizer=q),
        (5, 5, 3),
        {"depthwise_kernel": (-2, -1)},
    ),
    "SeparableConv1D": (
        lambda q: lq.layers.QuantSeparableConv1D(
            3, 3, depth_multiplier=2, depthwise_quantizer=q, pointwise_quantizer="libra_pb"
        ),
        (8, 2),
        {"depthwise_kernel": (-2, -1), "pointwise_kernel": (-1,)},
    ),
    "SeparableConv2D": (
        lambda q: lq.layers.QuantSeparableConv2D(
            3, 2, depth_multiplier=2, depthwise_quantizer=q, pointwise_quantizer="libra_pb"
        ),
        (5, 5, 2),
        {"depthwise_kernel": (-2, -1), "pointwise_kernel": (-1,)},
    ),
    "LocallyConnected1D": (
        lambda q: lq.layers.QuantLocallyConnected1D(3, 2, kernel_quantizer=q),
        (6, 2),
        {"kernel": (0, -1)},
    ),
    "LocallyConnected2D": (
        lambda q: lq.layers.QuantLocallyConnected2D(3, 2, kernel_quantizer=q),
        (4, 4, 2),
        {"kernel": (0, -1)},
    ),
}


@pytest.mark.parametrize("kind", list(LAYER_KINDS))
def test_libra_pb_balances_each_filter_of_every_larq_layer_kind(kind):
    make, input_shape, weights = LAYER_KINDS[kind]
    rng = np.random.default_rng(7)
    layer = make("libra_pb")
    inputs = tf.keras.Input(input_shape)
    tf.keras.Model(inputs, layer(inputs))
    for weight, axes in weights.items():
        variable = getattr(layer, weight)
        shape = tuple(variable.shape)
        # Every filter skewed by its own offset (+-1.1): only a per-filter balance
        # gives each filter both signs.
        offsets = np.where(rng.random(shape) < 2, 1.0, 1.0)
        filter_shape = [
            s if a in {x % len(shape) for x in axes} else 1 for a, s in enumerate(shape)
        ]
        offsets = rng.choice([-1.1, 1.1], size=filter_shape) * offsets
        w = (offsets + rng.normal(0, 0.05, shape)).astype(np.float32)
        variable.latent_variable.assign(w)
        with lq.context.quantized_scope(True):
            q = variable.numpy()
        quantizer = getattr(
            layer, {"kernel": "kernel_quantizer"}.get(weight, weight[:-6] + "quantizer")
        )
        assert tuple(a % len(shape) for a in quantizer.channel_axes) == tuple(
            a % len(shape) for a in axes
        )
        assert kernel_channel_axes(layer, weight) == axes
        w_std, _ = np_standardize(w.astype(np.float64), channel_axes=axes)
        np.testing.assert_array_equal(q, np_sign(w_std) * np_scale(w_std, channel_axes=axes))
        reduced = np_reduced(len(shape), axes)
        plus = (q > 0).mean(axis=reduced)
        assert np.all((plus > 0) & (plus < 1)), (kind, weight, plus)


@pytest.fixture
def larq_scope_restored():
    """Larq's `quantized_scope` has no try/finally: an error raised inside a Larq layer's
    call leaves it on for the whole thread. Turn it off again after such a test."""
    yield
    if lq.context.should_quantize():
        lq.context.quantized_scope(False).__enter__()  # left open on purpose: sets False


@pytest.mark.parametrize("implementation", [2, 3])
def test_libra_pb_refuses_masked_locally_connected_kernels(implementation, larq_scope_restored):
    layer = lq.layers.QuantLocallyConnected1D(
        3, 2, kernel_quantizer="libra_pb", implementation=implementation, name="masked_lc"
    )
    with pytest.raises(ValueError, match="'masked_lc'.*implementation"):
        layer(tf.keras.Input((6, 2)))
    assert not lq.context.should_quantize()  # refused without leaving Larq's scope on


# (layer, input shape, message): an unknown filter axis (LibraPB and IMB quantize
# kernels: an activation's batch axis is unknown) or a single weight per filter.
BAD_SHAPES = {
    "input_libra_pb": (
        lambda: lq.layers.QuantDense(4, input_quantizer="libra_pb", name="q"),
        (8,),
        r"LibraPB in layer 'q' .* shape \(None, 8\) whose axis 0 is unknown",
    ),
    "input_imb_conv": (
        lambda: lq.layers.QuantConv2D(4, 3, input_quantizer="imb", name="q"),
        (None, None, 3),
        r"IMB in layer 'q' .* shape \(None, None, None, 3\) whose axis 0 is unknown",
    ),
    "kernel_one_feature": (
        lambda: lq.layers.QuantDense(4, kernel_quantizer="libra_pb", name="q"),
        (1,),
        r"LibraPB in layer 'q' .* at least 2 entries per channel; got a kernel of shape \(1, 4\)",
    ),
    "kernel_imb_one_feature": (
        lambda: lq.layers.QuantDense(4, kernel_quantizer=IMB(), name="q"),
        (1,),
        r"IMB in layer 'q' .* kernel of shape \(1, 4\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SHAPES))
def test_bad_shapes_are_refused_naming_the_layer_and_larq_scope_stays_off(case):
    make, input_shape, message = BAD_SHAPES[case]
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((4,))
    other = tf.keras.Model(inputs, lq.layers.QuantDense(3, kernel_quantizer="libra_pb")(inputs))
    latent = other.get_weights()
    with pytest.raises(ValueError, match=message):
        make()(tf.keras.Input(input_shape))
    assert not lq.context.should_quantize()
    # What the scope left on would do: every later get_weights() silently binarized.
    for a, b in zip(latent, other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"LibraPB standardizes .* axis 0 is unknown"):
        LibraPB().build(tf.TensorShape([None, 8]))  # the quantizer's own build, eagerly


def test_libra_pb_on_the_issue_depthwise_example():
    # Channel 0 about +1.1, channel 1 about -1.1: each (channel, multiplier) filter must
    # come out about half +1 and half -1, not one channel all +1 and one all -1.
    rng = np.random.default_rng(8)
    kernel = np.stack([1.1 + rng.normal(0, 0.01, (2, 2)), -1.1 + rng.normal(0, 0.01, (2, 2))], -1)
    layer = lq.layers.QuantDepthwiseConv2D(
        2,
        depthwise_quantizer="libra_pb",
        depthwise_initializer=tf.constant_initializer(kernel[..., None]),
    )
    layer(tf.keras.Input((4, 4, 2)))
    with lq.context.quantized_scope(True):
        q = layer.depthwise_kernel.numpy()
    w_std, _ = np_standardize(kernel[..., None], channel_axes=(2, 3))
    np.testing.assert_array_equal(q, np_sign(w_std) * np_scale(w_std, channel_axes=(2, 3)))
    plus = (q > 0).reshape(4, 2).mean(axis=0)
    assert np.all((plus >= 0.25) & (plus <= 0.75)), plus  # 4 weights: 1 to 3 of them +1


def test_explicit_channel_axes_round_trip_and_validate():
    quantizer = LibraPB(channel_axes=(2, 3))
    assert lq.quantizers.get(lq.quantizers.serialize(quantizer)).channel_axes == (2, 3)
    with pytest.raises(ValueError, match="channel_axes"):
        LibraPB(channel_axes=())
    with pytest.raises(ValueError, match="channel_axes"):
        LibraPB(channel_axes=("last",))


def test_libra_pb_rejects_bad_arguments():
    with pytest.raises(ValueError, match="gradient"):
        LibraPB(gradient="dirac")
    with pytest.raises(ValueError, match="epsilon"):
        LibraPB(epsilon=-1.0)
    with pytest.raises(ValueError, match="`t`"):
        LibraPB(t=0.0)
    for bad in (float("inf"), float("nan"), True, "1"):
        with pytest.raises(ValueError, match="`t`.*t="):
            EDESign(t=bad)
        with pytest.raises(ValueError, match="`k`.*k="):
            LibraPB(k=bad)
    assert EDESign(t=np.float32(0.5)).get_config()["t"] == 0.5
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


# --- graph control flow: the state is an input of the gradient, not a captured variable --


def np_ede_grad(x, t=1.0, k=1.0):
    return k * t * (1 - np.tanh(t * x) ** 2)


@pytest.mark.parametrize("quantizer_cls", [EDESign, LibraPB])
def test_ede_gradient_inside_tf_cond_in_tf_function(quantizer_cls):
    quantizer = quantizer_cls()
    x = tf.constant([[0.5], [-0.25]]) if quantizer_cls is LibraPB else tf.constant([[0.5]])

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.cond(tf.constant(True), lambda: quantizer(x), lambda: x)
        return tape.gradient(y, x)

    g = grad(x).numpy()
    if quantizer_cls is EDESign:
        assert g[0, 0] == pytest.approx(0.7864477, abs=1e-6)  # the issue's value
        assert g[0, 0] == pytest.approx(np_ede_grad(0.5), rel=1e-6)
    else:
        w = x.numpy().astype(np.float64)
        expected = np_libra_pb_grad(w, np.ones_like(w), 1.0, 1.0)
        np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


def test_ede_gradient_inside_while_loop_and_map_fn():
    quantizer = EDESign(t=2.0)
    x = tf.constant([0.3, -0.7, 1.1])

    @tf.function
    def grads(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            _, looped = tf.while_loop(
                lambda i, acc: i < 3,
                lambda i, acc: (i + 1, acc + quantizer(x)),
                (tf.constant(0), tf.zeros_like(x)),
            )
            mapped = tf.map_fn(lambda v: quantizer(v), x)
        return tape.gradient(looped, x), tape.gradient(mapped, x)

    looped, mapped = grads(x)
    expected = np_ede_grad(x.numpy().astype(np.float64), t=2.0, k=1.0)
    np.testing.assert_allclose(looped.numpy(), 3 * expected, rtol=1e-5)
    np.testing.assert_allclose(mapped.numpy(), expected, rtol=1e-5)


class _CondBlock(tf.keras.layers.Layer):
    """A block that runs its binary layer under `tf.cond` (as stochastic depth does)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = lq.layers.QuantDense(
            1,
            kernel_quantizer=EDESign(),
            use_bias=False,
            kernel_initializer=tf.constant_initializer([[0.3], [-0.6], [1.2], [0.05]]),
        )

    def call(self, inputs):
        return tf.cond(
            tf.reduce_sum(inputs) > -1e9, lambda: self.dense(inputs), lambda: inputs[:, :1]
        )


@pytest.mark.slow  # compiles and fits a model
def test_fit_of_a_block_using_tf_cond_takes_the_ede_step():
    block = _CondBlock()
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, block(inputs))
    model.compile(tf.keras.optimizers.SGD(1.0), loss=lambda y_true, y_pred: y_pred)
    x = np.array([[1.0, 2.0, -1.0, 0.5]], np.float32)
    before = block.dense.kernel.latent_variable.numpy().copy()
    model.fit(x, np.zeros((1, 1)), epochs=1, verbose=0)
    step = before - block.dense.kernel.latent_variable.numpy()
    np.testing.assert_allclose(step, x.T * np_ede_grad(before), rtol=1e-5, atol=1e-6)


# --- Larq integration ------------------------------------------------------------------------


def test_string_names_resolve_in_larq_layers():
    layer = lq.layers.QuantConv2D(
        4, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign", use_bias=False
    )
    assert isinstance(layer.kernel_quantizer, LibraPB)
    assert isinstance(layer.input_quantizer, EDESign)
    assert layer.kernel_quantizer.precision == 1 and layer.input_quantizer.precision == 1


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


# --- DIR-Net's IMB (our design): weights and activations -------------------------------------


def np_dte(x, sigma, t, k, band, epsilon, width):
    u = x / sigma
    soft = k * t * (1 - np.tanh(t * u) ** 2)
    return np.maximum(soft, np.where(np.abs(u) <= width, band * epsilon, 0.0)) / sigma


def np_imb_grad(w, upstream, scale, surrogate):
    """dL/dw for Q(w) = sign(w_std) * scale (scale without gradient), by hand."""
    axes = tuple(range(w.ndim - 1))
    n = np.prod(w.shape[:-1])
    w_std, sigma = np_standardize(w)
    d_std = upstream * scale * surrogate(w_std)
    w_hat = w_std * sigma
    d_hat = d_std / sigma - w_hat * (d_std * w_hat).sum(axes, keepdims=True) / ((n - 1) * sigma**3)
    return d_hat - d_hat.mean(axis=axes, keepdims=True)


STAGE_2 = dict(t=4.0, k=1.0, band=1.0, epsilon=0.3, width=0.6745)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("scale", ["mean_abs", "bit_shift", "none"])
@pytest.mark.parametrize("state", [dict(t=0.1, k=10.0), STAGE_2], ids=["stage1", "stage2"])
def test_imb_matches_numpy(shape, scale, state):
    rng = np.random.default_rng(sum(shape))
    w = rng.normal(0.3, 0.5, size=shape)
    upstream = rng.normal(size=shape)
    quantizer = IMB(scale=scale)
    quantizer.set_state(**state)
    y, grad = tf_value_and_grad(quantizer, w, upstream)
    w_std, _ = np_standardize(w)
    axes = tuple(range(w.ndim - 1))
    alpha = {
        "mean_abs": np.abs(w_std).mean(axis=axes, keepdims=True),
        "bit_shift": np_scale(w_std),
        "none": 1.0,
    }[scale]
    np.testing.assert_allclose(y, np_sign(w_std) * alpha, rtol=1e-5)
    full = {"band": 0.0, "epsilon": 0.1, "width": 0.3186, **state}
    expected = np_imb_grad(
        w, upstream, alpha, lambda x: np_dte(x, 1.0, *(full[n] for n in DTE_STATE))
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)


def test_imb_mean_abs_minimizes_the_binarization_error():
    w = np.random.default_rng(8).normal(size=(3, 3, 8, 4))
    y = IMB()(tf.constant(w, tf.float32)).numpy().astype(np.float64)
    w_std, _ = np_standardize(w)
    best = np.sum((w_std - y) ** 2)
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert np.sum((w_std - factor * y) ** 2) > best


def test_imb_with_bit_shift_and_ede_is_libra_pb():
    w = np.random.default_rng(9).normal(0.1, 0.4, size=(3, 3, 4, 6))
    upstream = np.random.default_rng(10).normal(size=w.shape)
    imb = tf_value_and_grad(IMB(scale="bit_shift", gradient="ede", t=2.0), w, upstream)
    libra = tf_value_and_grad(LibraPB(t=2.0), w, upstream)
    for a, b in zip(imb, libra, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", KERNEL_SHAPES + [(4, 1), (2, 2, 3, 5)])
@pytest.mark.parametrize("scale", ["mean_abs", "bit_shift", "none"])
def test_imb_applied_to_its_output_changes_nothing(shape, scale):
    rng = np.random.default_rng(sum(shape))
    w = (rng.normal(0.2, 1.0, size=shape) * rng.uniform(0.01, 5.0, shape[-1])).astype("f4")
    once = IMB(scale=scale)(w).numpy()
    np.testing.assert_array_equal(IMB(scale=scale)(once).numpy(), once)


@pytest.mark.parametrize("scale", ["mean_abs", "bit_shift", "none"])
@pytest.mark.parametrize("value", [0.0, -3.0, 0.25])
def test_imb_all_equal_filter_binarizes_to_plus_one_with_finite_gradient(scale, value):
    w = np.full((3, 3, 2, 2), value)
    w[..., 1] = np.random.default_rng(1).normal(size=(3, 3, 2))
    y, grad = tf_value_and_grad(IMB(scale=scale), w, np.ones_like(w))
    np.testing.assert_array_equal(y[..., 0], 1.0)
    assert np.all(np.isfinite(grad))


def test_imb_statistics_in_float32_under_mixed_float16(mixed_float16):
    np.testing.assert_array_equal(IMB()(tf.zeros((3, 3, 4, 2))).numpy(), 1.0)
    w = np.random.default_rng(6).normal(0.1, 0.02, size=(3, 3, 8, 4)).astype(np.float16)
    w_var = tf.Variable(w)
    with tf.GradientTape() as tape:
        y = IMB()(w_var)
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    grad = tape.gradient(loss, w_var)
    assert y.dtype == tf.float16 and np.all(np.isfinite(grad.numpy()))
    w_std, _ = np_standardize(w.astype(np.float64))
    alpha = np.abs(w_std).mean(axis=(0, 1, 2), keepdims=True)
    np.testing.assert_allclose(y.numpy(), np_sign(w_std) * alpha, rtol=1e-3)


@pytest.mark.parametrize("gradient", ["dte", "ede", "ste"])
def test_imb_sign_matches_numpy(gradient):
    rng = np.random.default_rng(11)
    x = rng.normal(0.3, 1.0, size=(4, 5, 5, 3)) * np.array([0.2, 1.0, 3.0])
    upstream = rng.normal(size=x.shape)
    threshold = np.array([0.1, -0.5, 0.7])
    quantizer = IMBSign(gradient=gradient)
    x_var = tf.Variable(x.astype(np.float32))
    quantizer(x_var)
    quantizer.threshold.assign(threshold)
    if gradient == "dte":
        quantizer.set_state(**STAGE_2)
    with tf.GradientTape() as tape:
        y = quantizer(x_var)
        loss = tf.reduce_sum(y * upstream.astype(np.float32))
    dx, dtau = tape.gradient(loss, [x_var, quantizer.threshold])
    z = x - threshold
    np.testing.assert_array_equal(y.numpy(), np_sign(z))
    if gradient == "dte":
        sigma = z.reshape(-1, 3).std(axis=0)
        surrogate = np_dte(z, np.sqrt(sigma**2 + 1e-5), *STAGE_2.values())
    elif gradient == "ede":
        surrogate = np_ede(z, 1.0, 1.0)
    else:
        surrogate = (np.abs(z) <= 1).astype(float)
    np.testing.assert_allclose(dx.numpy(), upstream * surrogate, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        dtau.numpy(), -(upstream * surrogate).sum(axis=(0, 1, 2)), rtol=1e-3, atol=1e-3
    )
    assert [w.name.split("/")[-1] for w in quantizer.trainable_weights] == ["threshold:0"]


def test_imb_sign_refuses_an_unknown_channel_axis():
    with pytest.raises(ValueError, match="channel"):
        IMBSign().build(tf.TensorShape([None, None]))


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: IMB(scale="l1"), "scale"),
        (lambda: IMB(gradient="bad"), "gradient"),
        (lambda: IMB(epsilon=-1.0), "epsilon"),
        (lambda: IMBSign(gradient="bad"), "gradient"),
        (lambda: IMBSign(t=0.0), "t"),
        (lambda: DTESign(t=-1.0), "t"),
        (lambda: LibraPB(gradient="bad"), "gradient"),
    ],
)
def test_dirnet_quantizers_refuse_bad_arguments(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


def test_dirnet_string_names_resolve_in_larq_layers():
    layer = lq.layers.QuantConv2D(4, 3, kernel_quantizer="imb", input_quantizer="dte_sign")
    assert isinstance(layer.kernel_quantizer, IMB) and layer.kernel_quantizer.uses_dte
    assert isinstance(layer.input_quantizer, DTESign) and layer.input_quantizer.precision == 1
    assert isinstance(lq.quantizers.get("imb_sign"), IMBSign)


@pytest.mark.parametrize(
    "quantizer",
    [
        IMB(scale="none", gradient="ste", epsilon=1e-6),
        IMB(t=0.5),
        DTESign(t=0.2),
        IMBSign(gradient="ede", t=3.0),
        LibraPB(gradient="dte"),
    ],
)
def test_dirnet_get_config_round_trips(quantizer):
    restored = lq.quantizers.get(lq.quantizers.serialize(quantizer))
    assert type(restored) is type(quantizer)
    assert restored.get_config() == quantizer.get_config()
    assert restored.state() == quantizer.state()


@pytest.mark.parametrize("epsilon", [-1.0, float("nan"), "0.1"])
def test_libra_standardize_refuses_a_bad_epsilon_by_name(epsilon):
    with pytest.raises(ValueError, match=r"libra_standardize: `epsilon` must be"):
        libra_standardize(tf.ones((3, 2)), epsilon=epsilon)


def test_channel_axes_accept_numpy_integers():
    for channel_axes in (np.int64(-1), (np.int32(-1),), [np.int64(0), np.int64(-1)]):
        quantizer = LibraPB(channel_axes=channel_axes, epsilon=np.float32(1e-8), t=np.float32(2))
        config = json.loads(json.dumps(quantizer.get_config()))
        assert all(type(a) is int for a in quantizer.channel_axes)
        assert LibraPB.from_config(config).channel_axes == quantizer.channel_axes
    with pytest.raises(ValueError, match=r"`channel_axes` must be a non-empty sequence of ints"):
        LibraPB(channel_axes=(np.float32(-1),))
