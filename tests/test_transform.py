"""`irnetify` on every Larq layer kind, nested models, save/load, fit, tf.distribute."""

from larq_irnet.layers import binarized_weights, kernel_channel_axes
from larq_irnet.quantizers import EDESign, LibraPB
from larq_irnet.transform import irnetify

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

STE = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip")
DEPTHWISE = dict(
    input_quantizer="ste_sign", depthwise_quantizer="ste_sign", depthwise_constraint="weight_clip"
)
SEPARABLE = dict(**DEPTHWISE, pointwise_quantizer="ste_sign", pointwise_constraint="weight_clip")

# (layer, input shape without batch) for every Larq layer kind.
KINDS = {
    "QuantConv1D": (lambda: lq.layers.QuantConv1D(4, 3, **STE), (10, 3)),
    "QuantConv2D": (lambda: lq.layers.QuantConv2D(4, 3, **STE), (6, 6, 3)),
    "QuantConv3D": (lambda: lq.layers.QuantConv3D(4, 2, **STE), (4, 4, 4, 2)),
    "QuantDepthwiseConv2D": (
        lambda: lq.layers.QuantDepthwiseConv2D(3, depth_multiplier=2, **DEPTHWISE),
        (6, 6, 3),
    ),
    "QuantSeparableConv1D": (lambda: lq.layers.QuantSeparableConv1D(4, 3, **SEPARABLE), (10, 3)),
    "QuantSeparableConv2D": (
        lambda: lq.layers.QuantSeparableConv2D(4, 3, **SEPARABLE),
        (6, 6, 3),
    ),
    "QuantConv2DTranspose": (lambda: lq.layers.QuantConv2DTranspose(4, 3, **STE), (5, 5, 3)),
    "QuantConv3DTranspose": (lambda: lq.layers.QuantConv3DTranspose(4, 2, **STE), (3, 3, 3, 2)),
    "QuantDense": (lambda: lq.layers.QuantDense(5, **STE), (6,)),
    "QuantLocallyConnected1D": (
        lambda: lq.layers.QuantLocallyConnected1D(4, 3, implementation=1, **STE),
        (8, 3),
    ),
    "QuantLocallyConnected2D": (
        lambda: lq.layers.QuantLocallyConnected2D(4, 3, implementation=1, **STE),
        (5, 5, 3),
    ),
}


def one_layer_model(kind, seed=0):
    tf.keras.utils.set_random_seed(seed)
    make, shape = KINDS[kind]
    inputs = tf.keras.Input(shape)
    x = tf.keras.layers.Dense(shape[-1], name="float_in")(inputs)
    x = make()(x)
    outputs = tf.keras.layers.Flatten(name="flat")(x)
    return tf.keras.Model(inputs, outputs, name=f"model_{kind}")


def probe(model, seed=1):
    shape = (3, *model.input_shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def set_binary_kernels(model, seed=2):
    """Give every binarized weight random +-1 values, both signs in every filter.

    On such a kernel Libra-PB, `ste_sign` and `magnitude_aware_sign` all return the
    kernel itself, so models that differ only in those quantizers compute the same.
    """
    rng = np.random.default_rng(seed)
    for found in binarized_weights(model):
        latent = found.variable.latent_variable
        rank = len(latent.shape)
        channels = sorted(a % rank for a in found.channel_axes)
        last = list(range(rank - len(channels), rank))
        values = rng.choice([-1.0, 1.0], size=latent.shape).astype(np.float32)
        moved = np.moveaxis(values, channels, last)
        by_filter = moved.reshape(-1, int(np.prod(moved.shape[rank - len(channels) :])))
        by_filter[0], by_filter[1] = 1.0, -1.0
        latent.assign(np.moveaxis(by_filter.reshape(moved.shape), last, channels))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_larq_layer_kind_gets_libra_pb_with_its_filter_axes(kind):
    model = one_layer_model(kind)
    new, report = irnetify(model)
    old_layer, new_layer = model.layers[2], new.layers[2]
    assert new_layer.name == old_layer.name and type(new_layer) is type(old_layer)
    attributes = [
        a
        for a in ("kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
        if getattr(old_layer, a, None) is not None
    ]
    weights = {
        "kernel_quantizer": "kernel",
        "depthwise_quantizer": "depthwise_kernel",
        "pointwise_quantizer": "pointwise_kernel",
    }
    for attribute in attributes:
        quantizer = getattr(new_layer, attribute)
        assert isinstance(quantizer, LibraPB)
        assert quantizer.channel_axes == kernel_channel_axes(new_layer, weights[attribute])
        assert getattr(new_layer, attribute.replace("quantizer", "constraint")) is None
        np.testing.assert_array_equal(
            getattr(new_layer, weights[attribute]).latent_variable.numpy(),
            getattr(old_layer, weights[attribute]).latent_variable.numpy(),
        )
    assert isinstance(new_layer.input_quantizer, EDESign)
    assert len(report.replaced) == len(attributes) + 1 and not report.kept
    for change in report.replaced:
        assert change.layer == old_layer.name and change.old == "SteSign"
        assert change.new in ("LibraPB", "EDESign")
        assert change.constraint_dropped == (None if change.new == "EDESign" else "weight_clip")
    # The float layer and its weights are untouched.
    assert new.get_layer("float_in").get_config() == model.get_layer("float_in").get_config()
    for a, b in zip(
        new.get_layer("float_in").weights, model.get_layer("float_in").weights, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # It runs, and trains: the gradient reaches every latent kernel.
    x = probe(model)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(new(x, training=True)))
    kernels = [getattr(new_layer, weights[a]).latent_variable for a in attributes]
    gradients = tape.gradient(loss, kernels)
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)


@pytest.mark.parametrize("implementation", [2, 3])
def test_locally_connected_without_filter_axes_is_refused_by_name(implementation):
    inputs = tf.keras.Input((5, 5, 3))
    x = lq.layers.QuantLocallyConnected2D(
        4, 3, implementation=implementation, name="local_binary", **STE
    )(inputs)
    model = tf.keras.Model(inputs, x)
    with pytest.raises(ValueError, match="'local_binary'.*implementation"):
        irnetify(model)


def quantizer_zoo_model():
    """One binary conv per quantizer kind irnetify must decide about."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((8, 8, 4))
    layers = {
        "approx": dict(input_quantizer="approx_sign", kernel_quantizer="magnitude_aware_sign"),
        "swish": dict(input_quantizer="swish_sign", kernel_quantizer="ste_sign"),
        "heaviside": dict(input_quantizer="ste_heaviside", kernel_quantizer="ste_heaviside"),
        "dorefa2": dict(
            input_quantizer=lq.quantizers.DoReFa(k_bit=2),
            kernel_quantizer=lq.quantizers.DoReFa(k_bit=2, mode="weights"),
        ),
        "tf_sign": dict(input_quantizer=lq.utils.set_precision(1)(tf.math.sign)),
        "already": dict(input_quantizer="ede_sign", kernel_quantizer="libra_pb"),
    }
    x = inputs
    for name, quantizers in layers.items():
        x = lq.layers.QuantConv2D(4, 3, padding="same", name=name, **quantizers)(x)
    return tf.keras.Model(inputs, x)


def test_only_sign_quantizers_are_replaced_and_the_rest_is_reported():
    model = quantizer_zoo_model()
    new, report = irnetify(model)
    outcome = {(c.layer, c.attribute): (c.old, c.new, c.reason) for c in report.changes}
    assert outcome[("approx", "input_quantizer")][:2] == ("ApproxSign", "EDESign")
    assert outcome[("approx", "kernel_quantizer")][:2] == ("MagnitudeAwareSign", "LibraPB")
    assert outcome[("swish", "input_quantizer")][:2] == ("SwishSign", "EDESign")
    assert outcome[("already", "kernel_quantizer")][:2] == ("LibraPB", "LibraPB")
    assert outcome[("heaviside", "input_quantizer")] == (
        "SteHeaviside",
        None,
        "1-bit but not larq.math.sign (e.g. {0, 1}, a scaled sign, or sign(0) = 0)",
    )
    assert outcome[("heaviside", "kernel_quantizer")][1] is None
    assert outcome[("dorefa2", "input_quantizer")][1:] == (None, "2-bit, not binary")
    assert outcome[("dorefa2", "kernel_quantizer")][1:] == (None, "2-bit, not binary")
    assert outcome[("tf_sign", "input_quantizer")][:2] == ("sign", None)
    assert type(new.get_layer("heaviside").input_quantizer).__name__ == "SteHeaviside"
    assert "kept" in str(report) and "MagnitudeAwareSign -> LibraPB" in str(report)


def nested_model(kind="functional"):
    """A functional model holding a backbone (functional or Sequential) of binary convs."""
    tf.keras.utils.set_random_seed(0)
    conv = dict(padding="same", use_bias=False, pad_values=1.0, **STE)
    if kind == "functional":
        inner_in = tf.keras.Input((8, 8, 8))
        y = lq.layers.QuantConv2D(8, 3, name="inner_conv", **conv)(inner_in)
        y = tf.keras.layers.BatchNormalization(name="inner_bn")(y)
        backbone = tf.keras.Model(inner_in, y, name="backbone")
    else:
        backbone = tf.keras.Sequential(
            [
                tf.keras.Input((8, 8, 8)),
                lq.layers.QuantConv2D(8, 3, name="inner_conv", **conv),
                tf.keras.layers.BatchNormalization(name="inner_bn"),
            ],
            name="backbone",
        )
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = backbone(x)
    x = lq.layers.QuantDepthwiseConv2D(3, padding="same", name="depthwise", **DEPTHWISE)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(4, name="head")(x)
    return tf.keras.Model(inputs, outputs, name="outer")


@pytest.mark.parametrize("kind", ["functional", "sequential"])
def test_inference_is_unchanged_where_the_forward_passes_agree(kind):
    model = nested_model(kind)
    # A trained BatchNorm, so that the comparison is not of zeros.
    model.get_layer("backbone").get_layer("inner_bn").moving_mean.assign(tf.fill([8], 0.3))
    new, report = irnetify(model)
    assert [c.layer for c in report.replaced] == [
        "backbone/inner_conv",
        "backbone/inner_conv",
        "depthwise",
        "depthwise",
    ]
    assert new.name == "outer" and [layer.name for layer in new.layers] == [
        layer.name for layer in model.layers
    ]
    assert isinstance(new.get_layer("backbone"), type(model.get_layer("backbone")))
    x = probe(model)
    # Gaussian kernels: Libra-PB standardizes, so the outputs differ.
    assert not np.allclose(new(x).numpy(), model(x).numpy(), atol=1e-3)
    # +-1 kernels with both signs per filter: every quantizer's forward pass agrees.
    set_binary_kernels(model)
    set_binary_kernels(new)
    np.testing.assert_allclose(new(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
