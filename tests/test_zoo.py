"""Tests for the model zoo (`zoo/`, installed as `larq_irnet.zoo`).

The five 1w1a IR-Net models are built once per module, at the smallest input that runs
every layer, and shared by the parameter-count, LCE-conversion and summary tests.
"""

import dataclasses
import inspect
import logging
import re

import larq_irnet  # noqa: F401  (first: selects Keras 2)
from larq_irnet.converters import convert
from larq_irnet.converters.report import layer_macs
from larq_irnet.zoo import (
    BINARIZATIONS,
    PRESETS,
    IRNetResNet18,
    IRNetResNet20,
    IRNetResNet34,
    IRNetVGGSmall,
    common,
    registry,
    resnet,
)
from larq_irnet.zoo.blocks import Hardtanh, SubsampleChannelPad, binary_conv
from larq_irnet.zoo.presets import conv_settings

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

# Trainable parameters of the authors' PyTorch 1w1a models (htqin/IR-Net), counted as
# sum(p.numel() for p in model.parameters() if p.requires_grad).
AUTHORS_PARAMS = {
    "resnet20": 269_850,
    "vgg_small": 4_660_106,
    "resnet18_imagenet": 11_692_536,
    "resnet34": 21_800_696,
    "resnet18_cifar": 11_174_986,
}
# The authors' ImageNet ResNets declare `self.bn3 = nn.BatchNorm1d(num_classes)` but
# their forward() never calls it: its gamma and beta are in their count, not in the
# function they compute.
UNUSED_IN_AUTHORS_FORWARD = {"resnet18_imagenet": 2 * 1000, "resnet34": 2 * 1000}

# name: (model function, kwargs for the smallest input that runs every layer,
#        binarized convolutions, float CONV_2D in the converted model)
MODELS = {
    "resnet20": (IRNetResNet20, {"input_shape": (8, 8, 3)}, 18, 1),
    # VGG-Small's Dense has 8192 inputs only at 32x32, which the count needs.
    "vgg_small": (IRNetVGGSmall, {"input_shape": (32, 32, 3)}, 5, 1),
    # stem="auto" picks the CIFAR stem at this size (the count tells the stems apart).
    "resnet18_cifar": (IRNetResNet18, {"input_shape": (8, 8, 3)}, 16, 4),
    "resnet18_imagenet": (
        IRNetResNet18,
        {"input_shape": (32, 32, 3), "stem": "imagenet"},
        16,
        4,
    ),
    "resnet34": (IRNetResNet34, {"input_shape": (32, 32, 3)}, 32, 4),
}

SLOW = pytest.mark.slow  # the whole zoo, or every variant: the fast tier keeps one

CLASSES = {"resnet18_imagenet": 1000, "resnet34": 1000}  # others: 10


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def binary_convs(model):
    """QuantConv2D layers whose kernel and input quantizers are both 1-bit."""
    return [
        layer
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D)
        and getattr(layer.kernel_quantizer, "precision", None) == 1
        and getattr(layer.input_quantizer, "precision", None) == 1
    ]


@pytest.fixture(scope="module")
def built():
    """The 1w1a IR-Net models, built once for the whole module."""
    return {name: fn(**kwargs) for name, (fn, kwargs, _, _) in MODELS.items()}


@pytest.mark.slow  # builds the whole zoo (the `built` fixture)
@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_count_equals_authors(built, name):
    model = built[name]
    expected = AUTHORS_PARAMS[name] - UNUSED_IN_AUTHORS_FORWARD.get(name, 0)
    assert trainable_count(model) == expected
    images = np.full((2, *model.input_shape[1:]), 128.0, "float32")
    assert model(images).shape == (2, CLASSES.get(name, 10))
    # EDE's t and k are training state, not weights (tests/test_estimators.py).
    assert not [w for w in model.weights if "ede_" in w.name]


@pytest.fixture(scope="module")
def converted(built):
    """Each 1w1a zoo model converted once for the whole suite, strictly."""
    return {name: convert(model, strict=True) for name, model in built.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_converts_to_one_lce_bconv_per_binary_conv(built, converted, name):
    _, _, n_binary, n_float_conv = MODELS[name]
    model, report = built[name], converted[name].report
    ops = report.op_histogram
    assert ops.get("LceBconv2d") == n_binary, ops
    # Every binarized activation feeds a binary conv; none is turned back into floats.
    assert ops.get("LceQuantize") == n_binary, ops
    assert "LceDequantize" not in ops, ops
    # Float convolutions only where the reference keeps full precision: the stem and
    # (ResNet-18/34) the three downsampling 1x1 convolutions; one float classifier.
    assert ops.get("CONV_2D") == n_float_conv, ops
    assert "DEPTHWISE_CONV_2D" not in ops, ops
    assert ops.get("FULLY_CONNECTED") == 1, ops
    # The report matches every binary conv to its operator, and counts the MACs.
    quant_convs = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(report.layers) == len(quant_convs) == n_binary
    assert all(layer.binary and layer.ops == ("LceBconv2d",) for layer in report.layers)
    assert report.binary_macs == sum(layer_macs(layer) for layer in quant_convs)
    float_layers = [lyr for lyr in model.layers if layer_macs(lyr) and lyr not in quant_convs]
    assert report.float_macs == sum(layer_macs(layer) for layer in float_layers)


@pytest.mark.slow  # builds the whole zoo (the `built` fixture)
def test_keras_config_round_trip(built):
    # `lce.convert_keras_model` saves the Keras model first (and silently takes a slower
    # path if that fails): every zoo layer must serialize, custom ones included.
    model = built["resnet20"]
    clone = tf.keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    images = np.random.default_rng(4).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(clone(images).numpy(), model(images).numpy(), rtol=1e-6)


@pytest.mark.slow  # builds the whole zoo (the `built` fixture)
@pytest.mark.parametrize("name", list(MODELS))
def test_summary_lists_binary_layers_with_precision_1(built, name, capsys):
    model = built[name]
    lq.models.summary(model)
    printed = capsys.readouterr().out
    binary = {layer.name for layer in binary_convs(model)}
    assert len(binary) == MODELS[name][2]
    rows = {}
    for line in printed.splitlines():
        cells = line.strip("| ").split()
        if cells:
            rows[cells[0]] = cells
    for layer_name in binary:
        assert rows[layer_name][1] == "1", rows[layer_name]  # the "Input prec." column
    profile = lq.models.ModelProfile(model)
    for lp in profile.layer_profiles:
        kernel_bits = [wp.bitwidth for wp in lp.weight_profiles if wp.trainable]
        if lp.name in binary:
            assert lp.input_precision == 1 and kernel_bits == [1]
        elif isinstance(lp._layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
            # Stem, downsampling convolutions and classifier stay full precision.
            assert lp.input_precision is None and set(kernel_bits) == {32}, lp.name
    n_binary_weights = sum(np.prod(layer.kernel.shape) for layer in binary_convs(model))
    assert profile.weight_count(bitwidth=1) == n_binary_weights


#: Every (structure, bits, binarization) of ResNet-20; the fast tier builds IR-Net's own.
RESNET20_VARIANTS = [
    pytest.param(
        structure,
        bits,
        binarization,
        marks=[] if (structure, bits, binarization) == ("bireal", "1w1a", "irnet") else [SLOW],
    )
    for structure in ("bireal", "normal")
    for bits in ("1w1a", "1w32a")
    for binarization in BINARIZATIONS
]


@pytest.mark.parametrize("structure,bits,binarization", RESNET20_VARIANTS)
def test_resnet20_variants(binarization, bits, structure):
    model = IRNetResNet20(
        input_shape=(4, 4, 3), binarization=binarization, bits=bits, structure=structure
    )
    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    probabilities = model(images, training=False).numpy()
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # Quantizers add no parameters, except imb_sign's per-channel thresholds.
    thresholds = sum(
        int(layer.input_shape[-1])
        for layer in model.layers
        if isinstance(getattr(layer, "input_quantizer", None), larq_irnet.IMBSign)
    )
    assert thresholds == (624 if (binarization, bits) == ("dirnet_act", "1w1a") else 0)
    assert trainable_count(model) == 269_850 + thresholds

    convs = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(convs) == 18
    preset = PRESETS[binarization]
    for conv in convs:
        assert (conv.kernel_quantizer is None) == (preset.kernel_quantizer is None)
        binary_input = bits == "1w1a" and preset.input_quantizer is not None
        assert (conv.input_quantizer is not None) == binary_input
        assert conv.pad_values == (1.0 if binary_input else 0.0)
    adds = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Add)]
    assert len(adds) == (18 if structure == "bireal" else 9)
    activation = Hardtanh if bits == "1w1a" else tf.keras.layers.ReLU
    assert any(isinstance(layer, activation) for layer in model.layers)


def test_presets_resolve_to_the_ablation_quantizers():
    def kernel(name):
        return lq.quantizers.get(
            conv_settings(binarization=name, bits="1w1a", pad_values=1).kernel_quantizer
        )

    assert kernel("fp") is None
    assert isinstance(kernel("bnn"), lq.quantizers.SteSign)
    no_std, no_scale, libra = (
        kernel("libra_pb_no_std"),
        kernel("libra_pb_no_scale"),
        kernel("libra_pb"),
    )
    assert (no_std.standardize, no_std.bit_shift, no_std.gradient) == (False, True, "ste")
    assert (no_scale.standardize, no_scale.bit_shift, no_scale.gradient) == (True, False, "ste")
    assert (libra.standardize, libra.bit_shift, libra.gradient) == (True, True, "ste")
    assert isinstance(kernel("ede"), larq_irnet.EDESign)
    irnet = kernel("irnet")
    assert isinstance(irnet, larq_irnet.LibraPB) and irnet.gradient == "ede"
    imb, dte = kernel("imb"), kernel("dte")
    assert isinstance(imb, larq_irnet.IMB) and (imb.scale, imb.gradient) == ("mean_abs", "ede")
    assert type(dte) is larq_irnet.LibraPB and dte.gradient == "dte"
    for name in ("dirnet", "dirnet_act"):
        dirnet = kernel(name)
        assert isinstance(dirnet, larq_irnet.IMB) and (dirnet.scale, dirnet.gradient) == (
            "mean_abs",
            "dte",
        )

    def inputs(name):
        return lq.quantizers.get(
            conv_settings(binarization=name, bits="1w1a", pad_values=1).input_quantizer
        )

    assert isinstance(inputs("imb"), larq_irnet.EDESign)
    assert isinstance(inputs("dte"), larq_irnet.DTESign)
    assert isinstance(inputs("dirnet"), larq_irnet.DTESign)
    assert isinstance(inputs("dirnet_act"), larq_irnet.IMBSign)
    assert inputs("dirnet_act").gradient == "dte"
    settings = conv_settings(binarization="irnet", bits="1w1a", pad_values=0.0)
    assert isinstance(lq.quantizers.get(settings.input_quantizer), larq_irnet.EDESign)
    assert settings.pad_values == 0.0
    with pytest.raises(ValueError, match="binarization"):
        conv_settings(binarization="xnor", bits="1w1a", pad_values=1.0)
    with pytest.raises(ValueError, match="bits"):
        conv_settings(binarization="irnet", bits="2w2a", pad_values=1.0)
    with pytest.raises(ValueError, match="pad_values"):
        conv_settings(binarization="irnet", bits="1w1a", pad_values=0.5)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[] if n == "resnet20" else [SLOW]) for n in MODELS]
)
def test_1w32a_models_forward(name):
    fn, kwargs, n_binary, _ = MODELS[name]
    model = fn(**kwargs, bits="1w32a")
    images = np.full((1, *model.input_shape[1:]), 128.0, "float32")
    assert model(images).shape == (1, CLASSES.get(name, 10))
    convs = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(convs) == n_binary
    assert all(conv.input_quantizer is None and conv.kernel_quantizer for conv in convs)
    assert any(isinstance(layer, tf.keras.layers.ReLU) for layer in model.layers)
    assert not any(isinstance(layer, Hardtanh) for layer in model.layers)


def test_stem_auto_and_include_top():
    assert resnet._auto_stem((32, 32, 3)) == "cifar"
    assert resnet._auto_stem((111, 224, 3)) == "cifar"
    assert resnet._auto_stem((112, 112, 3)) == "imagenet"
    assert resnet._auto_stem((None, None, 3)) == "imagenet"
    assert IRNetVGGSmall(include_top=False).output_shape == (None, 4, 4, 512)
    with pytest.raises(ValueError, match="stem"):
        IRNetResNet18(stem="tiny")
    with pytest.raises(ValueError, match="at least 8"):
        IRNetVGGSmall(input_shape=(4, 4, 3))
    with pytest.raises(ValueError, match="structure"):
        IRNetResNet20(structure="dense")


def test_input_is_rescaled_raw_pixels(built):
    rescaling = built["resnet20"].layers[1]
    assert isinstance(rescaling, tf.keras.layers.Rescaling)
    np.testing.assert_allclose(rescaling(np.array([0.0, 127.5, 255.0])).numpy(), [-1, 0, 1])


@pytest.mark.slow  # builds several ResNets
def test_input_tensor():
    inputs = tf.keras.Input((8, 8, 3))
    model = IRNetResNet20(input_tensor=inputs)
    assert model.inputs[0] is inputs and model.output_shape == (None, 10)


def test_option_a_shortcut_and_hardtanh_match_numpy():
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 4)).astype("float32")
    y = SubsampleChannelPad(8, 2)(x).numpy()
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (2, 2)])
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(Hardtanh()(3 * x).numpy(), np.clip(3 * x, -1, 1))


def test_convolutions_are_kaiming_normal_and_distinct(built):
    model = built["resnet20"]
    kernels = [
        layer.kernel.numpy()
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D) and layer.kernel.shape == (3, 3, 64, 64)
    ]
    assert len(kernels) == 5
    assert not np.allclose(kernels[0], kernels[1])  # each layer its own initializer
    weights = np.concatenate([k.ravel() for k in kernels])
    np.testing.assert_allclose(weights.std(), np.sqrt(2 / (3 * 3 * 64)), rtol=0.03)


@pytest.mark.slow  # a multi-device strategy
def test_builds_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = IRNetResNet20(input_shape=(8, 8, 3))
    assert all(strategy.extended.variable_created_in_scope(v) for v in model.variables)
    images = np.random.default_rng(2).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(np.arange(4), model(images))
    gradients = tape.gradient(loss, model.trainable_weights)
    # Every parameter, binary kernels included (through EDE), gets a finite gradient.
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    assert all(np.abs(g.numpy()).max() > 0 for g in gradients)


# --- the public signatures --------------------------------------------------------------

# Every model function's keyword-only arguments and defaults (user code and
# `training._default_argument` read them).
SHARED = {
    "input_shape": None,
    "input_tensor": None,
    "include_top": True,
    "weights": None,
}
BINARY = {"bits": "1w1a", "binarization": "irnet", "pad_values": 1.0}
SIGNATURES = {
    IRNetResNet20: {**SHARED, "num_classes": 10, "structure": None, **BINARY},
    IRNetResNet18: {**SHARED, "num_classes": None, "structure": None, **BINARY, "stem": "auto"},
    IRNetResNet34: {**SHARED, "num_classes": 1000, "structure": None, **BINARY},
    IRNetVGGSmall: {**SHARED, "num_classes": 10, **BINARY},
}


@pytest.mark.parametrize("function", list(SIGNATURES), ids=lambda f: f.__name__)
def test_signature_is_keyword_only_with_its_defaults_and_one_argument_text(function):
    parameters = inspect.signature(function).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert {name: p.default for name, p in parameters.items()} == SIGNATURES[function]
    doc = function.__doc__
    assert "{arguments}" not in doc and doc.count("# Arguments") == 1
    section = doc.split("# Arguments")[1].split("# Returns")[0]
    assert re.findall(r"^        (\w+): ", section, re.M) == list(parameters)
    flat = " ".join(section.split())
    for name in ("input_tensor", "include_top", "bits", "binarization", "pad_values"):
        assert f"{name}: {common.ARGUMENTS[name]}" in flat


def test_document_arguments_refuses_a_parameter_without_text():
    def model(*, input_shape=None, depth=20):
        """A model.

        {arguments}
        """

    with pytest.raises(ValueError, match="undocumented \\['depth'\\]"):
        common.document_arguments()(model)
    documented = common.document_arguments(depth="number of layers.")(model)
    assert "            depth: number of layers." in documented.__doc__


# The core modules the zoo may import (issue #15's layers: the zoo depends on core only).
# --- weights -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A ResNet-20 with non-default weights and BN statistics, and images for it."""
    model = IRNetResNet20(input_shape=(8, 8, 1))
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(0.5, 0.1, w.shape).astype("float32") for w in model.weights])
    images = rng.uniform(0, 255, (3, 8, 8, 1)).astype("float32")
    return model, images


@pytest.fixture
def saved_weights(saved_model, tmp_path):
    """`saved_model`'s weights in a fresh .h5 file (tests may delete it)."""
    model, images = saved_model
    path = tmp_path / "resnet20.h5"
    model.save_weights(path)
    return model, path, images


def test_weights_from_path_round_trip(saved_weights):
    model, path, images = saved_weights
    expected = model(images).numpy()
    loaded = IRNetResNet20(input_shape=(8, 8, 1), weights=str(path))
    np.testing.assert_array_equal(loaded(images).numpy(), expected)
    fresh = IRNetResNet20(input_shape=(8, 8, 1))
    assert not np.allclose(fresh(images).numpy(), expected)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        IRNetResNet20(weights=str(path.with_name("missing.h5")))


@pytest.fixture
def registered(saved_weights, monkeypatch):
    model, path, images = saved_weights
    entry = registry.WeightsEntry(
        model="IRNetResNet20",
        filename=path.name,
        sha256=registry.sha256sum(path),
        kwargs={"input_shape": (8, 8, 1), "num_classes": 10, "bits": "1w1a"},
    )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", path.parent)
    monkeypatch.setitem(registry.WEIGHTS, "test_weights", (entry,))
    return model, path, images, entry


@pytest.mark.slow  # builds ResNet-20 four times
def test_registered_weights_load_after_sha_check(registered):
    model, path, images, entry = registered
    loaded = IRNetResNet20(weights="test_weights")  # input_shape from the registry
    assert loaded.input_shape == (None, 8, 8, 1)
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())
    features = IRNetResNet20(weights="test_weights", include_top=False)
    pool = next(lyr for lyr in model.layers if isinstance(lyr, tf.keras.layers.AveragePooling2D))
    reference = tf.keras.Model(model.input, pool.input)
    np.testing.assert_array_equal(features(images).numpy(), reference(images).numpy())


def test_registered_weights_errors(registered, monkeypatch):
    _, path, _, entry = registered
    with pytest.raises(ValueError, match="'test_weights' \\(IRNetResNet20\\)"):
        IRNetResNet20(weights="imagenet")
    with pytest.raises(ValueError, match="IRNetResNet20, not IRNetVGGSmall"):
        IRNetVGGSmall(weights="test_weights")
    with pytest.raises(ValueError, match="num_classes"):
        IRNetResNet20(weights="test_weights", num_classes=3)
    with pytest.raises(ValueError, match="bits"):
        IRNetResNet20(weights="test_weights", bits="1w32a")
    monkeypatch.setitem(
        registry.WEIGHTS,
        "test_weights",
        (dataclasses.replace(entry, sha256="0" * 64),),
    )
    with pytest.raises(ValueError, match="sha256"):
        IRNetResNet20(weights="test_weights")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        IRNetResNet20(weights="test_weights")


@pytest.fixture
def variants(tmp_path, monkeypatch):
    """Weights "pair" with an irnet variant (first) and an fp one, over small files."""
    entries = {}
    for binarization in ("irnet", "fp"):
        path = tmp_path / f"{binarization}.h5"
        path.write_bytes(binarization.encode())
        entries[binarization] = registry.WeightsEntry(
            model="IRNetResNet20",
            filename=path.name,
            sha256=registry.sha256sum(path),
            kwargs={"input_shape": (8, 8, 1), "num_classes": 10, "binarization": binarization},
        )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(registry.WEIGHTS, "pair", (entries["irnet"], entries["fp"]))
    return entries


def test_a_name_holds_one_variant_per_binarization(variants, tmp_path, monkeypatch):
    assert registry.get_entry("pair", "fp") is variants["fp"]
    assert registry.get_entry("pair", "irnet") is variants["irnet"]
    assert registry.get_entry("pair") is variants["irnet"]  # the first is the default
    assert registry.resolve_weights("pair", "fp") == (tmp_path / "fp.h5", variants["fp"])
    assert registry.verified_path("pair") == tmp_path / "irnet.h5"
    with pytest.raises(ValueError, match=r"'pair' \(IRNetResNet20; binarization 'irnet', 'fp'\)"):
        registry.get_entry("imagenet")
    # A variant registered without a binarization fits any that has none of its own.
    anything = dataclasses.replace(variants["fp"], kwargs={"input_shape": (8, 8, 1)})
    monkeypatch.setitem(registry.WEIGHTS, "pair", (variants["irnet"], anything))
    assert registry.get_entry("pair", "dirnet") is anything
    assert registry.get_entry("pair", "irnet") is variants["irnet"]


def test_a_binarization_without_a_variant_is_refused_naming_those_registered(variants, monkeypatch):
    # Resolving the weights comes first: the error needs no model built.
    with pytest.raises(ValueError) as error:
        IRNetResNet20(weights="pair", binarization="dirnet")
    assert str(error.value) == (
        "Weights 'pair' have no variant for binarization='dirnet'; registered "
        "binarizations: 'irnet', 'fp'."
    )
    monkeypatch.setitem(registry.WEIGHTS, "solo", (variants["irnet"],))
    with pytest.raises(ValueError, match=r"'solo' have no variant for binarization='fp'; "):
        IRNetResNet20(weights="solo", binarization="fp")
    with pytest.raises(ValueError, match=r"binarization='fp'; registered binarizations: 'irnet'"):
        registry.verified_path("solo", "fp")


def test_a_bad_binarization_is_the_usual_error_whatever_the_weights(variants):
    # The model's own arguments are validated before a registered name is resolved.
    with pytest.raises(ValueError) as usual:
        IRNetResNet20(binarization="nope")
    assert str(usual.value).startswith("`binarization` must be one of ('fp', ")
    for weights in ("pair", "fashion_mnist"):
        with pytest.raises(ValueError) as error:
            IRNetResNet20(binarization="nope", weights=weights)
        assert str(error.value) == str(usual.value)
    for classes in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"^`num_classes` must be an integer >= 1, got"):
            IRNetResNet20(num_classes=classes)
    with pytest.raises(ValueError, match=r"^`bits` must be one of \('1w1a', '1w32a'\)"):
        IRNetResNet20(bits="2w2a", weights="pair")
    with pytest.raises(ValueError, match=r"^`pad_values` must be 1.0"):
        IRNetVGGSmall(pad_values=0.5, weights="pair")


def test_weights_that_do_not_fit_name_the_argument_the_caller_changed():
    # bits="1w32a" also changes ResNet-20's default structure to "normal"; the message
    # names bits first and says structure was not passed.
    shape = dict(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
    with pytest.raises(ValueError) as error:
        IRNetResNet20(bits="1w32a", **shape)
    assert str(error.value) == (
        "The weights fit IRNetResNet20(bits='1w1a', structure='bireal'), got bits='1w32a', "
        "structure='normal' (by default)."
    )
    with pytest.raises(ValueError) as error:
        IRNetResNet20(bits="1w32a", structure="normal", **shape)
    assert str(error.value) == (
        "The weights fit IRNetResNet20(structure='bireal', bits='1w1a'), got "
        "structure='normal', bits='1w32a'."
    )
    # One argument off: the message as before.
    with pytest.raises(ValueError) as error:
        IRNetResNet20(structure="normal", **shape)
    assert str(error.value) == (
        "The weights fit IRNetResNet20(structure='bireal'), got structure='normal'."
    )


def test_check_fits_lists_every_mismatch_the_callers_first():
    entry = registry.WeightsEntry(
        model="M", filename="m.h5", sha256="0" * 64, kwargs={"a": 1, "b": (2, 3), "c": 4}
    )
    check = dict(model="M", include_top=True)
    registry.check_fits(entry, arguments={"a": 1, "b": [2, 3], "c": 4}, **check)
    with pytest.raises(ValueError) as error:
        registry.check_fits(entry, arguments={"a": 0, "b": (2, 3), "c": 5}, derived={"a"}, **check)
    assert str(error.value) == "The weights fit M(c=4, a=1), got c=5, a=0 (by default)."
    with pytest.raises(ValueError) as error:
        registry.check_fits(entry, arguments={"a": 0, "b": (2, 3), "c": 4}, derived={"a"}, **check)
    assert str(error.value) == "The weights fit M(a=1), got a=0 (by default)."


def test_registered_as_finds_a_file_by_sha256(variants):
    assert registry.registered_as(variants["fp"].sha256) == [("pair", variants["fp"])]
    assert registry.registered_as(variants["irnet"].sha256.upper()) == [("pair", variants["irnet"])]
    assert registry.registered_as("0" * 64) == []
    shipped = registry.get_entry("fashion_mnist")
    assert registry.registered_as(shipped.sha256) == [("fashion_mnist", shipped)]


def test_each_variant_has_its_own_sha256_check(variants, tmp_path):
    (tmp_path / "fp.h5").write_bytes(b"replaced")
    with pytest.raises(ValueError, match=r"Weights 'pair' \(binarization='fp'\): .* sha256"):
        IRNetResNet20(weights="pair", binarization="fp")
    assert registry.verified_path("pair", "irnet") == tmp_path / "irnet.h5"
    (tmp_path / "irnet.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"'pair' \(binarization='irnet'\) are registered"):
        registry.verified_path("pair", "irnet")


def test_registered_variants_differ_by_binarization_the_models_default_first():
    # `weights=name` without `binarization=` loads the model's default binarization's
    # variant; `get_entry(name)` (the converters' advice, the tests) takes the first: the same.
    for name, entries in registry.WEIGHTS.items():
        assert entries, name
        binarizations = [entry.binarization for entry in entries]
        assert len(set(binarizations)) == len(binarizations), name
        for entry in entries:
            assert entry.binarization is None or entry.binarization in BINARIZATIONS, name
        model = getattr(larq_irnet.zoo, entries[0].model)
        default = inspect.signature(model).parameters["binarization"].default
        if default in binarizations:
            assert entries[0].binarization == default, name


def test_two_variants_under_one_name_load_by_binarization(saved_model, tmp_path, monkeypatch):
    irnet, images = saved_model
    fp = IRNetResNet20(input_shape=(8, 8, 1), binarization="fp")
    rng = np.random.default_rng(4)
    fp.set_weights([rng.normal(0.5, 0.1, w.shape).astype("float32") for w in fp.weights])
    entries = []
    for binarization, model in (("irnet", irnet), ("fp", fp)):
        path = tmp_path / f"{binarization}.h5"
        model.save_weights(path)
        entries.append(
            registry.WeightsEntry(
                model="IRNetResNet20",
                filename=path.name,
                sha256=registry.sha256sum(path),
                kwargs={"input_shape": (8, 8, 1), "binarization": binarization},
            )
        )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(registry.WEIGHTS, "pair", tuple(entries))
    expected_fp = fp(images).numpy()
    assert not np.allclose(expected_fp, irnet(images).numpy())
    loaded_fp = IRNetResNet20(weights="pair", binarization="fp")
    np.testing.assert_array_equal(loaded_fp(images).numpy(), expected_fp)
    loaded = IRNetResNet20(weights="pair")  # the default binarization, "irnet"
    np.testing.assert_array_equal(loaded(images).numpy(), irnet(images).numpy())


@pytest.mark.parametrize(
    "binarization, warns",
    [
        ("irnet", False),
        ("libra_pb", False),
        ("libra_pb_no_std", True),
        ("ede", True),
        ("dirnet", False),
        ("imb", False),
    ],
)
def test_starved_weights_warning_only_where_weights_can_starve(binarization, warns, caplog):
    # Standardized Libra-PB kernels need no weight_clip: the zoo drops Larq's warning for
    # them while it builds the layer; it stays for the presets whose weights can starve.
    caplog.set_level(logging.WARNING, logger="larq.layers_base")
    settings = conv_settings(binarization=binarization, bits="1w1a", pad_values=1.0)
    binary_conv(tf.keras.Input((8, 8, 4)), 4, 1, settings, "glorot_uniform")
    assert any("starved weights" in r.getMessage() for r in caplog.records) is warns
    assert not logging.getLogger("larq.layers_base").filters  # nothing left behind
