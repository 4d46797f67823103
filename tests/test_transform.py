"""`irnetify` on every Larq layer kind, nested models, save/load, fit, tf.distribute."""

import os

import larq_irnet
from larq_irnet.converters import convert
from larq_irnet.layers import binarized_weights, kernel_channel_axes
from larq_irnet.quantizers import EDESign, LibraPB
from larq_irnet.transform import irnetify

import larq as lq
import larq_zoo as lqz
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
        assert change.constraint_dropped == (None if change.new == "EDESign" else "WeightClip")
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
    assert str(report).splitlines()[0] == (
        "irnetify(method='irnet'): 6 quantizers replaced (2 of them the method's already), 5 kept"
    )
    lines = {line.split(":")[0].strip(): line for line in str(report).splitlines()[1:]}
    assert lines["already (QuantConv2D) kernel_quantizer"].endswith(
        "LibraPB -> LibraPB (already the method's quantizer, rebuilt with the layer's filter axes)"
    )
    assert lines["already (QuantConv2D) input_quantizer"].endswith(
        "EDESign -> EDESign (already the method's quantizer, rebuilt)"
    )
    assert lines["approx (QuantConv2D) input_quantizer"].endswith("ApproxSign -> EDESign")


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


def outputs_and_quantizers(model, x):
    quantizers = [
        (layer.name, type(q).__name__, getattr(q, "channel_axes", None))
        for layer in model.get_layer("backbone").layers + model.layers
        for q in (
            getattr(layer, "kernel_quantizer", None),
            getattr(layer, "input_quantizer", None),
            getattr(layer, "depthwise_quantizer", None),
        )
        if q is not None
    ]
    return model(x).numpy(), quantizers


@pytest.mark.parametrize("form", ["h5", "savedmodel", "config"])
def test_the_result_round_trips(tmp_path, form):
    new, _ = irnetify(nested_model())
    x = probe(new)
    expected, quantizers = outputs_and_quantizers(new, x)
    assert ("depthwise", "LibraPB", (-2, -1)) in quantizers
    if form == "config":
        loaded = tf.keras.Model.from_config(new.get_config())
        loaded.set_weights(new.get_weights())
    else:
        path = tmp_path / ("model.h5" if form == "h5" else "saved")
        new.save(path)
        loaded = tf.keras.models.load_model(path)
    outputs, loaded_quantizers = outputs_and_quantizers(loaded, x)
    assert loaded_quantizers == quantizers
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)


def test_ede_callback_finds_the_new_quantizers_in_fit(fashion_mnist):
    (x_train, y_train), _ = fashion_mnist
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            tf.keras.layers.Conv2D(16, 3, strides=2, use_bias=False),
            tf.keras.layers.BatchNormalization(),
            lq.layers.QuantConv2D(32, 3, strides=2, use_bias=False, name="binary", **STE),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(10),
        ],
        name="small",
    )
    new, report = irnetify(model)
    assert isinstance(new, tf.keras.Sequential) and len(report.replaced) == 2
    new.compile(
        tf.keras.optimizers.SGD(0.05, momentum=0.9),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )
    callback = larq_irnet.EDECallback(t_min=0.1, t_max=10.0)
    history = new.fit(
        x_train[:1024], y_train[:1024], batch_size=64, epochs=3, callbacks=[callback], verbose=0
    )
    binary = new.get_layer("binary")
    assert callback._quantizers == [binary.kernel_quantizer, binary.input_quantizer]
    # Epoch 2 of 3: t = 0.1 * 100 ** (2 / 3).
    assert history.history["ede_t"][-1] == pytest.approx(0.1 * 100 ** (2 / 3), rel=1e-6)
    t = binary.input_quantizer.state()["t"]
    assert t == pytest.approx(0.1 * 100 ** (2 / 3), rel=1e-6)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_under_mirrored_strategy_inside_the_scope():
    strategy = tf.distribute.MirroredStrategy(tf.config.list_logical_devices("CPU")[:1])
    with strategy.scope():
        model = nested_model()
        new, _ = irnetify(model)
        new.compile(tf.keras.optimizers.SGD(0.01), "mse")
    kernel = new.get_layer("backbone").get_layer("inner_conv").kernel.latent_variable
    assert isinstance(kernel, tf.distribute.DistributedValues)
    np.testing.assert_array_equal(
        kernel.numpy(), model.get_layer("backbone").get_layer("inner_conv").kernel.numpy()
    )
    x = probe(model, seed=3)
    y = np.zeros((3, 4), np.float32)
    before = kernel.numpy().copy()
    new.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert np.any(kernel.numpy() != before)


def test_dirnet_maps_to_imb_and_dte_sign():
    new, report = irnetify(nested_model(), method="dirnet")
    imb, dte = (type(lq.quantizers.get(alias)) for alias in ("imb", "dte_sign"))
    depthwise = new.get_layer("depthwise")
    assert isinstance(depthwise.depthwise_quantizer, imb)
    assert isinstance(depthwise.input_quantizer, dte)
    assert {c.new for c in report.replaced} == {imb.__name__, dte.__name__}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`method` must be one of .*'irnet'.*got 'xnor'"):
        irnetify(nested_model(), method="xnor")

    class Subclassed(tf.keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="Subclassed"):
        irnetify(Subclassed())


def zoo_networks():
    """Every model function of larq-zoo's `literature` and `sota` modules."""
    return [
        (module.__name__.rsplit(".", 1)[-1], name)
        for module in (lqz.literature, lqz.sota)
        for name in sorted(dir(module))
        if name[:1].isupper() and callable(getattr(module, name))
    ]


#: The smallest of 64, 96, 128, 224 at which a network builds (XNORNet's strides need 224).
ZOO_INPUT_SIZE = {"XNORNet": 224}


#: The networks CI converts (one per family: Bi-Real ResNet, QuickNet, BinaryDenseNet;
#: DoReFaNet for its 4096x4096 binary dense layer, whose Libra-PB kernel once stayed
#: unfolded in the graph);
#: converting all 14 twice takes about 7 minutes here, half of CI's whole run.
#: `LARQ_IRNET_ALL_ZOO=1 pytest tests/test_transform.py -m slow` runs every network.
CI_NETWORKS = {"BiRealNet", "QuickNetSmall", "BinaryDenseNet28", "DoReFaNet"}


def zoo_params():
    every = os.environ.get("LARQ_IRNET_ALL_ZOO") == "1"
    return [(module, name) for module, name in zoo_networks() if every or name in CI_NETWORKS]


@pytest.mark.slow
@pytest.mark.parametrize("module, name", zoo_params())
def test_larq_zoo_network_deploys_unchanged(module, name):
    """The IR-Net twin of every larq-zoo network converts to the same operators, with
    every 1w1a layer an LceBconv2d, and computes the same where the quantizers agree."""
    size = ZOO_INPUT_SIZE.get(name, 64)
    tf.keras.utils.set_random_seed(0)
    model = getattr(getattr(lqz, module), name)(input_shape=(size, size, 3), weights=None)
    new, report = irnetify(model)
    # Every layer whose two quantizers were both replaced must end up binary.
    replaced = {}
    for change in report.replaced:
        replaced.setdefault(change.layer, set()).add(change.attribute)
    both = sorted(
        layer for layer, attrs in replaced.items() if "input_quantizer" in attrs and len(attrs) == 2
    )
    # Keras inference: +-1 kernels (both signs per filter) make every replaced
    # quantizer's forward pass agree; compare each replaced layer's output and the model's.
    set_binary_kernels(model)
    set_binary_kernels(new)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)

    def outputs(m):
        taps = [m.get_layer(layer).output for layer in sorted(replaced)] + [m.output]
        return tf.keras.Model(m.input, taps)(x, training=False)

    for a, b in zip(outputs(model), outputs(new), strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-5)
    original, transformed = convert(model).report, convert(new).report
    assert transformed.op_histogram == original.op_histogram
    assert transformed.size_bytes == original.size_bytes
    fully_binary = sorted(layer.layer for layer in transformed.layers if layer.fully_binary)
    assert fully_binary == both
    assert all(layer.ops == ("LceBconv2d",) for layer in transformed.layers if layer.fully_binary)
    assert transformed.op_histogram.get("LceBconv2d", 0) == len(both)


def test_a_model_with_nothing_to_replace_is_warned_about():
    inputs = tf.keras.Input((4,))
    kept = lq.layers.QuantDense(3, kernel_quantizer="ste_heaviside", name="heaviside")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(kept), name="mostly_float")
    with pytest.warns(UserWarning, match=r"'mostly_float' has no binary sign quantizer .*1 kept"):
        new, report = irnetify(model)
    assert not report.replaced and [c.layer for c in report.kept] == ["heaviside"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(new(x).numpy(), model(x).numpy())
