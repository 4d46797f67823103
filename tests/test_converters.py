"""Tests for larq_irnet.converters: what LCE made of each layer, int8, evaluate, CLI, benchmark."""

import collections
import json
import logging
import os
import warnings

import larq_irnet  # first: selects Keras 2, registers the quantizers
from larq_irnet import cli
from larq_irnet.converters import ConversionError, convert
from larq_irnet.converters.benchmark import _make_runner
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.converters.flatbuffer import op_histogram, op_names, read_graph, structure
from larq_irnet.converters.lce import fold_weight_computations
from larq_irnet.converters.report import layer_macs, quantizer_kind
from larq_irnet.training.data import FASHION_MNIST_DIR
from larq_irnet.zoo import IRNetResNet20, registry
from larq_irnet.zoo.loading import load_model
from larq_irnet.zoo.registry import WEIGHTS_DIR, get_entry

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tiny import tiny_model

BINARY = dict(
    input_quantizer="ede_sign",
    kernel_quantizer="libra_pb",
    padding="same",
    pad_values=1.0,
    use_bias=False,
)


def compute_layers(model):
    return [layer for layer in model.layers if layer_macs(layer)]


# --- quantizer classification -----------------------------------------------------------


def test_quantizer_kind_from_values():
    rng = np.random.default_rng(0)
    signs = np.where(rng.standard_normal((3, 3, 8, 4)) >= 0, 1.0, -1.0)
    scale_out = np.array([0.5, 1.0, 2.0, 0.25])
    scale_in = np.linspace(0.1, 0.8, 8)[:, None]
    assert quantizer_kind(signs) == "sign"
    assert quantizer_kind(0.5 * signs) == "scaled sign"
    assert quantizer_kind(signs * scale_out, per_channel_axis=-1) == "sign"
    assert quantizer_kind(signs * scale_in, per_channel_axis=-1) == (
        "sign, scale not per output channel"
    )
    assert quantizer_kind((signs + 1) / 2) == "1-bit, not a sign"
    assert quantizer_kind(np.round(rng.uniform(-1.5, 1.5, 100))) == "multi-bit"
    assert quantizer_kind(rng.standard_normal(1000)) == "float"


# --- a model with every pattern, converted once ------------------------------------------


def batch_norm() -> tf.keras.layers.BatchNormalization:
    """A BatchNorm with random statistics, as after training: no exact ties at sign()."""
    return tf.keras.layers.BatchNormalization(
        gamma_initializer=tf.keras.initializers.RandomUniform(0.5, 1.5),
        beta_initializer=tf.keras.initializers.RandomNormal(stddev=0.5),
        moving_mean_initializer=tf.keras.initializers.RandomNormal(stddev=0.5),
        moving_variance_initializer=tf.keras.initializers.RandomUniform(0.5, 2.0),
    )


LONG_NAME = "binary_conv_with_a_name_long_enough_to_be_cut"
MIXED_LAYERS = [
    "good",
    "good_strided",
    LONG_NAME,
    "plain_tf_sign",
    "permuted",
    "weights_only",
    "depthwise",
    "dense",
]


def mixed_model() -> tf.keras.Model:
    inputs = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(x)
    x = batch_norm()(x)
    # good -> BN -> good_strided: LCE writes good's output bitpacked, named after the
    # next layer's quantizer.
    x = lq.layers.QuantConv2D(32, 3, name="good", **BINARY)(x)
    x = batch_norm()(x)
    x = lq.layers.QuantConv2D(64, 3, strides=2, name="good_strided", **BINARY)(x)
    x = batch_norm()(x)
    # LCE truncates tensor names to 50 characters, inside this layer's name.
    y = lq.layers.QuantConv2D(64, 3, name=LONG_NAME, **BINARY)(x)
    y = batch_norm()(y)
    x = tf.keras.layers.add([x, y])
    x = lq.layers.QuantConv2D(
        64,
        3,
        name="plain_tf_sign",
        input_quantizer=lambda t: tf.math.sign(t),
        kernel_quantizer="ste_sign",
        padding="same",
        pad_values=1.0,
        use_bias=False,
    )(x)
    x = lq.quantizers.SteSign()(x)
    x = tf.keras.layers.Permute((2, 1, 3))(x)
    x = lq.layers.QuantConv2D(
        64, 3, name="permuted", kernel_quantizer="ste_sign", padding="same", use_bias=False
    )(x)
    x = lq.layers.QuantConv2D(
        64, 3, name="weights_only", kernel_quantizer="libra_pb", padding="same", use_bias=False
    )(x)
    x = lq.layers.QuantDepthwiseConv2D(
        3,
        name="depthwise",
        input_quantizer="ste_sign",
        depthwise_quantizer="ste_sign",
        padding="same",
        use_bias=False,
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = lq.layers.QuantDense(
        10, name="dense", input_quantizer="ste_sign", kernel_quantizer="ste_sign"
    )(x)
    return tf.keras.Model(inputs, x, name="mixed")


@pytest.fixture(scope="module")
def mixed():
    tf.keras.utils.set_random_seed(1)
    model = mixed_model()
    return model, convert(model)


def test_report_names_what_each_layer_became(mixed):
    _, result = mixed
    layers = {layer.layer: layer for layer in result.report.layers}
    assert list(layers) == MIXED_LAYERS
    for name in ("good", "good_strided", LONG_NAME):
        assert layers[name].ops == ("LceBconv2d",) and layers[name].binary
        assert layers[name].weights == "sign" and layers[name].activations == "sign"
        assert layers[name].reason is None
    expected = {
        "plain_tf_sign": ("CONV_2D (float32)", "not a sign pattern LCE recognizes"),
        "permuted": ("CONV_2D (float32)", "TRANSPOSE between the quantizer and the conv"),
        "weights_only": ("CONV_2D (float32)", "activations are float"),
        "depthwise": ("DEPTHWISE_CONV_2D (float32)", "no binary depthwise"),
        "dense": ("FULLY_CONNECTED (float32)", "no binary fully-connected"),
    }
    for name, (op, reason) in expected.items():
        assert layers[name].ops == (op,), name
        assert not layers[name].binary
        assert reason in layers[name].reason, (name, layers[name].reason)
    assert layers["permuted"].activations == "sign (upstream)"
    # 1w1a layers must become LceBconv2d; binary weights on float inputs cannot.
    assert [layer.layer for layer in result.report.float_layers] == [
        "plain_tf_sign",
        "permuted",
        "depthwise",
        "dense",
    ]


def test_report_macs_histogram_and_size(mixed):
    model, result = mixed
    report = result.report
    by_name = {layer.name: layer_macs(layer) for layer in compute_layers(model)}
    assert {layer.layer: layer.macs for layer in report.layers} == {
        name: by_name[name] for name in MIXED_LAYERS
    }
    assert report.binary_macs == sum(by_name[n] for n in ("good", "good_strided", LONG_NAME))
    assert report.float_macs == sum(by_name.values()) - report.binary_macs
    assert report.int8_macs == 0
    assert report.op_histogram == dict(collections.Counter(op_names(result.flatbuffer)))
    assert report.op_histogram["LceBconv2d"] == 3
    graph = read_graph(result.flatbuffer)
    bitpacked = [
        op for op in graph.operators if op.name == "LceBconv2d" and op.outputs[0].dtype == "int32"
    ]
    assert len(bitpacked) == 1  # good's output: the mapping must not rely on its name
    assert report.size_bytes == len(result.flatbuffer)
    assert "good_strided" in str(report) and "LceBconv2d" in str(report)
    assert json.loads(report.to_json())["float_layers"] == [
        layer.layer for layer in report.float_layers
    ]


def test_flatbuffer_computes_the_keras_model(mixed):
    model, result = mixed
    x = np.random.default_rng(2).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    lce_outputs = Interpreter(result.flatbuffer, use_indirect_bgemm=True).predict(x)
    np.testing.assert_allclose(lce_outputs, model.predict(x, verbose=0), rtol=1e-3, atol=1e-3)


def test_strict_names_the_float_layers():
    tf.keras.utils.set_random_seed(3)
    with pytest.raises(ConversionError) as error:
        convert(mixed_model(), strict=True)
    message = str(error.value)
    for name in ("'plain_tf_sign'", "'permuted'", "'depthwise'", "'dense'"):
        assert name in message
    for name in ("'good'", "'good_strided'", f"'{LONG_NAME}'", "'weights_only'"):
        assert name not in message
    assert "dense layer: LCE has no binary fully-connected op" in message
    assert len(error.value.report.float_layers) == 4


def test_convert_rejects_bad_arguments():
    model = tf.keras.Sequential([tf.keras.Input((4, 4, 1)), tf.keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="representative_data"):
        convert(model, int8=True)
    with pytest.raises(ValueError, match="only used with int8=True"):
        convert(model, int8_sign_inputs=True)
    with pytest.raises(TypeError, match="inference_type"):
        convert(model, inference_type=tf.int8)
    with pytest.raises(ValueError, match="`target` must be"):
        convert(model, target="x86")
    with pytest.raises(ValueError, match="`inference_input_type` must be"):
        convert(model, inference_input_type=tf.uint8)
    with pytest.raises(ValueError, match="experimental_default_int8_range"):
        convert(model, experimental_default_int8_range=(3.0, -3.0))


@pytest.mark.slow  # converts two ResNet-20s
def test_irnet_deploys_as_the_same_graph_as_ste_sign():
    # Libra-PB's per-channel power of two folds into the binary conv's multiplier and
    # EDE only changes gradients: nothing of either is left to run at inference, whatever
    # the state of EDE's schedule.
    model = IRNetResNet20(input_shape=(16, 16, 3), binarization="irnet")
    larq_irnet.set_ede(model, 5.0)
    irnet = convert(model)
    tf.keras.backend.clear_session()
    bnn = convert(IRNetResNet20(input_shape=(16, 16, 3), binarization="bnn"))
    assert structure(irnet.flatbuffer) == structure(bnn.flatbuffer)
    assert irnet.report.size_bytes == bnn.report.size_bytes
    tf.keras.backend.clear_session()
    fp = convert(IRNetResNet20(input_shape=(16, 16, 3), binarization="fp"))
    assert structure(fp.flatbuffer) != structure(irnet.flatbuffer)


# --- the shipped trained ResNet-20 on real Fashion-MNIST: evaluate, int8, CLI ---------------


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The shipped Fashion-MNIST ResNet-20, its .h5 and its float conversion (once)."""
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
    directory = tmp_path_factory.mktemp("shipped")
    h5 = directory / "resnet20.h5"
    model.save(h5)
    result = convert(model, strict=True)
    tflite = directory / "resnet20.tflite"
    result.save(tflite)
    return model, h5, result, tflite


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory):
    tf.keras.utils.set_random_seed(0)
    model = tiny_model(input_shape=(28, 28, 1))
    path = tmp_path_factory.mktemp("tiny") / "tiny.h5"
    model.save(path)
    return model, path


def test_cli_convert_h5(tiny_h5, tmp_path, capsys):
    model, h5 = tiny_h5
    out = tmp_path / "model.tflite"
    assert cli.main(["convert", str(h5), "-o", str(out), "--strict"]) == 0
    assert "1 of 1 1w1a layers became LceBconv2d" in capsys.readouterr().out
    flatbuffer = out.read_bytes()
    assert op_histogram(flatbuffer)["LceBconv2d"] == 1
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0600
    # The .h5 round trip is the same function as the model in memory.
    x = np.random.default_rng(5).uniform(0, 255, (16, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        Interpreter(flatbuffer).predict(x), model.predict(x, verbose=0), atol=1e-4
    )


@pytest.mark.slow  # converts and evaluates through the CLI
def test_cli_evaluate_real_slice(shipped, fashion_mnist, capsys):
    model, h5, _, tflite = shipped
    _, (x_test, y_test) = fashion_mnist
    argv = ["evaluate", str(tflite), "--dataset", "fashion_mnist", "--limit", "1000"]
    assert cli.main(argv + ["--keras", str(h5), "--no-progress", "--json"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    keras_accuracy = np.mean(model.predict(x_test[:1000], verbose=0).argmax(-1) == y_test[:1000])
    assert result["examples"] == 1000
    assert result["keras_accuracy"] == pytest.approx(keras_accuracy)
    assert result["agreement"] >= 0.995
    assert result["accuracy"] > 0.87  # the shipped weights: 90.02% on the full test set
    assert "top-1 agreement LCE vs Keras" in printed


@pytest.fixture(scope="module")
def int8_conversions(shipped, fashion_mnist):
    """The shipped model in int8 with the stem float (`keep`) and in int8 throughout
    (`signs`), converted once for the tests that read them."""
    model = shipped[0]
    calibration = fashion_mnist[0][0][:256]
    keep = convert(model, int8=True, representative_data=calibration)
    signs = convert(model, int8=True, representative_data=calibration, int8_sign_inputs=True)
    return keep, signs


@pytest.mark.slow  # converts the shipped ResNet-20 twice and scores int8
def test_int8_quantizes_the_float_layers_but_not_what_feeds_a_sign(
    shipped, fashion_mnist, int8_conversions
):
    model, _, float_result, _ = shipped
    (x_train, _), (x_test, y_test) = fashion_mnist
    keep, signs = int8_conversions
    for result in (keep, signs):
        assert result.report.int8 and all(layer.binary for layer in result.report.layers)
        bconv_outputs = {
            op.outputs[0].dtype
            for op in read_graph(result.flatbuffer).operators
            if op.name == "LceBconv2d"
        }
        assert bconv_outputs <= {"float32", "int32"}  # binary convs never write int8
    # The stem (3x3x1 -> 16 channels at 28x28) feeds the first sign: it stays float32 by
    # default; the classifier (64 -> 10) runs in int8.
    stem_macs, classifier_macs = 28 * 28 * 16 * 9, 64 * 10
    dtypes = {op.name: op.compute_dtype for op in read_graph(keep.flatbuffer).operators}
    assert dtypes["CONV_2D"] == "float32" and dtypes["FULLY_CONNECTED"] == "int8"
    assert (keep.report.float_macs, keep.report.int8_macs) == (stem_macs, classifier_macs)
    assert float_result.report.float_macs == stem_macs + classifier_macs
    assert (signs.report.float_macs, signs.report.int8_macs) == (0, stem_macs + classifier_macs)
    x, y = x_test[:1000], y_test[:1000]
    evaluation = evaluate_tflite(keep.flatbuffer, x, y, keras_model=model, progress=False)
    assert evaluation.agreement >= 0.99, evaluation


@pytest.mark.slow
def test_int8_on_the_full_test_set(shipped, fashion_mnist, int8_conversions):
    # Measured figures: benchmarks/results/int8_accuracy.json (docs/deploy.md). The float
    # conversion of the same file is scored on all 10,000 images by test_shipped_weights.
    model = shipped[0]
    _, (x_test, y_test) = fashion_mnist
    keep, signs = int8_conversions
    scores = {
        name: evaluate_tflite(r.flatbuffer, x_test, y_test, keras_model=model, progress=False)
        for name, r in (("keep", keep), ("signs", signs))
    }
    assert scores["keep"].agreement >= 0.99
    assert abs(scores["keep"].accuracy - scores["keep"].keras_accuracy) <= 0.005
    # int8 rounding of the stem's output flips signs at the first binary convolution.
    assert scores["signs"].agreement < scores["keep"].agreement - 0.02


# --- nested models and sign layers: the report and int8 walk the same layers ---------------


def backbone_layers(inputs):
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(x)
    x = batch_norm()(x)
    x = lq.layers.QuantConv2D(32, 3, name="binary", **BINARY)(x)
    x = batch_norm()(x)
    return tf.keras.layers.GlobalAveragePooling2D()(x)


def flat_model():
    inputs = tf.keras.Input((12, 12, 3))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(backbone_layers(inputs)))


def nested_functional():
    backbone_input = tf.keras.Input((12, 12, 3))
    backbone = tf.keras.Model(backbone_input, backbone_layers(backbone_input), name="backbone")
    inputs = tf.keras.Input((12, 12, 3))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(backbone(inputs)))


def nested_sequential():
    backbone = tf.keras.Sequential(
        [
            tf.keras.Input((12, 12, 3)),
            tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0),
            tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem"),
            batch_norm(),
            lq.layers.QuantConv2D(32, 3, name="binary", **BINARY),
            batch_norm(),
            tf.keras.layers.GlobalAveragePooling2D(),
        ],
        name="backbone",
    )
    inputs = tf.keras.Input((12, 12, 3))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(4)(backbone(inputs)))


@pytest.mark.parametrize(
    "build", [pytest.param(nested_functional, marks=pytest.mark.slow), nested_sequential]
)
def test_nested_backbone_converts_as_the_flat_model(build):
    images = np.random.default_rng(6).uniform(0, 255, (32, 12, 12, 3)).astype(np.float32)
    tf.keras.utils.set_random_seed(7)
    flat = flat_model()
    tf.keras.utils.set_random_seed(7)
    nested = build()
    results = {}
    for name, model in (("flat", flat), ("nested", nested)):
        results[name] = {
            "float": convert(model),
            "int8": convert(model, int8=True, representative_data=images),
            "signs": convert(model, int8=True, representative_data=images, int8_sign_inputs=True),
        }
    dense_macs, stem_macs = 32 * 4, 12 * 12 * 32 * 27
    assert [layer.layer for layer in results["nested"]["float"].report.layers] == [
        "backbone/binary"
    ]
    for kind, (float_macs, int8_macs) in {
        "float": (stem_macs + dense_macs, 0),
        "int8": (stem_macs, dense_macs),
        "signs": (0, stem_macs + dense_macs),
    }.items():
        for name in ("flat", "nested"):
            report = results[name][kind].report
            assert (report.float_macs, report.int8_macs) == (float_macs, int8_macs), (name, kind)
            assert report.binary_macs == 12 * 12 * 32 * 9 * 32
            assert [layer.ops for layer in report.layers] == [("LceBconv2d",)], (name, kind)
        assert results["nested"][kind].report.op_histogram == (
            results["flat"][kind].report.op_histogram
        )


def sign_as_a_layer(kind):
    inputs = tf.keras.Input((16, 16, 8))
    if kind == "quantizer layer":
        x = larq_irnet.EDESign()(inputs)
    elif kind == "activation":
        x = tf.keras.layers.Activation(lq.quantizers.SteSign())(inputs)
    else:  # the previous layer's activation
        x = tf.keras.layers.Conv2D(8, 1, activation=lq.quantizers.SteSign(), name="before")(inputs)
    x = lq.layers.QuantConv2D(
        32, 3, padding="same", pad_values=1.0, use_bias=False, kernel_quantizer="libra_pb"
    )(x)
    return tf.keras.Model(inputs, x)


@pytest.mark.parametrize("kind", ["quantizer layer", "activation", "layer activation"])
def test_report_counts_a_sign_computed_outside_the_layer(kind):
    tf.keras.utils.set_random_seed(8)
    model = sign_as_a_layer(kind)
    result = convert(model, strict=True)
    assert op_histogram(result.flatbuffer)["LceBconv2d"] == 1
    (layer,) = result.report.layers
    assert layer.ops == ("LceBconv2d",) and layer.binary and layer.fully_binary
    assert layer.activations == "sign (upstream)" and layer.reason is None
    assert layer.macs == 16 * 16 * 32 * 9 * 8 == result.report.binary_macs
    assert "1 of 1 1w1a layers became LceBconv2d" in str(result.report)
    images = np.random.default_rng(9).normal(size=(8, 16, 16, 8)).astype(np.float32)
    int8 = convert(model, int8=True, representative_data=images).report
    assert [layer.ops for layer in int8.layers] == [("LceBconv2d",)]


# --- errors: one line naming the path, nothing written -----------------------------------


@pytest.mark.parametrize("where", ["missing directory", "a directory", "under a file"])
def test_cli_convert_checks_the_report_path_before_any_work(tiny_h5, tmp_path, capsys, where):
    _, h5 = tiny_h5
    out = tmp_path / "model.tflite"
    report = {
        "missing directory": tmp_path / "missing" / "report.json",
        "a directory": tmp_path,
        "under a file": h5 / "report.json",
    }[where]
    argv = ["convert", str(h5), "-o", str(out), "--report", str(report)]
    before = sorted(tmp_path.iterdir())
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no conversion report: nothing was converted
    (line,) = captured.err.strip().splitlines()
    assert str(report) in line and "--report" in line
    assert sorted(tmp_path.iterdir()) == before
    assert not out.exists()


def test_cli_evaluate_refuses_a_file_that_is_not_a_tflite_model(tmp_path, capsys):
    bogus = tmp_path / "notes.tflite"
    bogus.write_bytes(b"this is not a flatbuffer at all, just text")
    argv = ["evaluate", str(bogus), "--dataset", "fashion_mnist", "--limit", "10"]
    assert cli.main(argv + ["--no-progress"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(bogus) in line and "not a TFLite model" in line


def test_cli_evaluate_needs_only_the_test_files(tiny_h5, tmp_path, capsys, fashion_mnist):
    _, h5 = tiny_h5
    tflite = tmp_path / "tiny.tflite"
    assert cli.main(["convert", str(h5), "-o", str(tflite)]) == 0
    data_dir = tmp_path / "t10k-only"
    data_dir.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data_dir / name).symlink_to(FASHION_MNIST_DIR / name)
    argv = ["evaluate", str(tflite), "--dataset", "fashion_mnist", "--data-dir", str(data_dir)]
    assert cli.main(argv + ["--limit", "20", "--no-progress"]) == 0
    assert "top-1 accuracy" in capsys.readouterr().out


#: Enough of a flatbuffer for the file checks: the TFL3 identifier at bytes 4-8.
FAKE_TFLITE = b"\x1c\x00\x00\x00TFL3" + bytes(32)


def evaluate_error(argv, capsys):
    assert cli.main(["evaluate", *argv, "--dataset", "fashion_mnist", "--no-progress"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("larq-irnet evaluate: error: ") and "Errno" not in line
    return line.removeprefix("larq-irnet evaluate: error: ")


def test_cli_evaluate_names_a_missing_or_unreadable_tflite(tmp_path, capsys):
    missing = tmp_path / "missing.tflite"
    expected = "expected a .tflite model written by `larq-irnet convert`"
    assert evaluate_error([str(missing)], capsys) == f"{missing}: no such file; {expected}"
    assert evaluate_error([str(tmp_path)], capsys) == f"{tmp_path}: is a directory; {expected}"


def test_cli_evaluate_names_the_argument_an_error_is_about(tmp_path, capsys):
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(FAKE_TFLITE)
    missing = tmp_path / "missing.h5"
    line = evaluate_error([str(tflite), "--keras", str(missing)], capsys)
    assert line == f"--keras: no such run directory, model file or zoo weights: {missing}"
    line = evaluate_error([str(tflite), "--data-dir", str(tmp_path / "nope")], capsys)
    assert line.startswith(f"--data-dir {tmp_path / 'nope'}: Fashion-MNIST directory not found")
    assert str(tflite) not in line
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evaluate", str(tflite), "--dataset", "fashion_mnist", "--limit", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("argument --limit: expected a positive integer, got '0'")


def test_cli_convert_explains_a_weights_only_h5(tmp_path, capsys):
    shipped = WEIGHTS_DIR / get_entry("fashion_mnist", "irnet").filename
    assert cli.main(["convert", str(shipped), "-o", str(tmp_path / "w.tflite")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{shipped}: a weights-only .h5" in line and "object at 0x" not in line
    assert "IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, " in line
    assert "weights='fashion_mnist').save('model.h5')" in line
    # Weights of one's own: how to build, load and save.
    mine = tmp_path / "mine.h5"
    tiny_model(input_shape=(28, 28, 1)).save_weights(mine)
    with pytest.raises(ValueError, match=r"weights-only \.h5.*weights='.*mine\.h5'"):
        load_model(mine)
    assert not (tmp_path / "w.tflite").exists()


def test_weights_only_advice_names_a_variants_binarization(tmp_path, monkeypatch):
    # Every variant of every name is recognized; the call that loads it names its
    # binarization unless that is the model's default (irnet).
    files, entries = {}, []
    for binarization in ("irnet", "fp"):
        files[binarization] = tmp_path / f"{binarization}.h5"
        tiny_model(input_shape=(28, 28, 1), binarization=binarization).save_weights(
            files[binarization]
        )
        kwargs = {"input_shape": (28, 28, 1), "num_classes": 10, "binarization": binarization}
        entries.append(
            registry.WeightsEntry(
                model="IRNetResNet20",
                filename=files[binarization].name,
                sha256=registry.sha256sum(files[binarization]),
                kwargs=kwargs,
            )
        )
    monkeypatch.setitem(registry.WEIGHTS, "pair", tuple(entries))
    call = "IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, "
    with pytest.raises(ValueError) as error:
        load_model(files["fp"])
    assert f"{call}binarization='fp', weights='pair').save('model.h5')" in str(error.value)
    with pytest.raises(ValueError) as error:
        load_model(files["irnet"])
    assert f"{call}weights='pair').save('model.h5')" in str(error.value)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notamodel.keras", b"not a zip", "not a zip archive; expected a .keras model file"),
        ("notamodel.h5", b"not hdf5", "not an HDF5 file; expected a .h5 model"),
    ],
)
def test_convert_says_what_a_model_file_should_be(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert cli.main(["convert", str(path), "-o", str(tmp_path / "out.tflite")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{path}: {expected}" in line and "signature" not in line


def test_an_h5_named_keras_is_told_to_be_renamed(tiny_h5, tmp_path):
    _, h5 = tiny_h5
    misnamed = tmp_path / "model.keras"
    misnamed.write_bytes(h5.read_bytes())
    with pytest.raises(ValueError, match="an HDF5 file named .keras.*Rename it to .h5"):
        load_model(misnamed)


def test_failed_conversion_leaves_existing_file_untouched(tmp_path, capsys):
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Flatten()(inputs)
    x = lq.layers.QuantDense(
        4, name="binary_dense", input_quantizer="ede_sign", kernel_quantizer="libra_pb"
    )(x)
    h5 = tmp_path / "dense.h5"
    tf.keras.Model(inputs, x).save(h5)
    out = tmp_path / "out" / "model.tflite"
    out.parent.mkdir()
    out.write_bytes(b"previous model")
    assert cli.main(["convert", str(h5), "-o", str(out), "--strict"]) == 1
    assert "'binary_dense'" in capsys.readouterr().err
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.tflite"]

    fresh = tmp_path / "out" / "fresh.tflite"
    assert cli.main(["convert", str(h5), "-o", str(fresh), "--strict"]) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.tflite"]


def test_keras_files_load_in_safe_mode(tmp_path):
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)
    assert isinstance(load_model(path, safe_mode=False), tf.keras.Model)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(ValueError, match="expected a .keras or .h5 file"):
        load_model(onnx)


def test_a_function_initializer_h5_loads_and_saves_again(tmp_path):
    # larq-zoo's QuickNet initializes its blur pooling with a plain function; Keras writes
    # it into an .h5 model as {"class_name": "function", ...}, which its own .h5 loader
    # cannot read. load_model reads it by name (larq_irnet.legacy_h5.loadable_h5_model).
    from larq_zoo.sota.quicknet import blurpool_initializer

    inputs = tf.keras.Input((8, 8, 3))
    blur = tf.keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, depthwise_initializer=blurpool_initializer
    )
    outputs = lq.layers.QuantConv2D(4, 1, kernel_quantizer="ste_sign")(blur(inputs))
    model = tf.keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32)
    path = tmp_path / "blur.h5"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    initializer = loaded.layers[1].depthwise_initializer
    assert initializer.get_config() == {"function_name": "blurpool_initializer"}
    expected = blurpool_initializer((3, 3, 3, 1))
    np.testing.assert_array_equal(np.asarray(initializer((3, 3, 3, 1))), expected)
    assert expected[1, 1, 0, 0] == pytest.approx(4 / 16)  # [1 2 1] x [1 2 1] / 16

    again = tmp_path / "again.h5"
    loaded.save(again)
    np.testing.assert_array_equal(load_model(again)(x).numpy(), model(x).numpy())
    with pytest.raises(ValueError, match="no function registered as 'not_registered'"):
        larq_irnet.layers.FunctionInitializer("not_registered")((3, 3, 3, 1))


@pytest.mark.slow  # converts twice, through both routes
def test_graphdef_route_matches_lce_saved_model_route(tiny_h5):
    model, _ = tiny_h5
    fast = convert(model).flatbuffer
    saved = convert(model, saved_model=True).flatbuffer
    assert op_names(fast) == op_names(saved)
    x = np.random.default_rng(4).uniform(0, 255, (8, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(Interpreter(fast).predict(x), Interpreter(saved).predict(x))


def _frozen(function, *specs):
    concrete = tf.function(function).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    return frozen.graph.as_graph_def(), [t.name for t in frozen.outputs]


def test_fold_weight_computations_evaluates_what_reads_no_input():
    rng = np.random.default_rng(0)
    w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
    x = rng.normal(size=(3, 6)).astype(np.float32)
    libra_pb = larq_irnet.quantizers.LibraPB()
    libra_pb(w)  # builds its estimator state outside the function

    def model(inputs):
        kernel = libra_pb(w)
        ranged = tf.quantization.fake_quant_with_min_max_args(w, min=-1.0, max=1.0)
        return tf.matmul(inputs, kernel) + tf.reduce_sum(ranged), tf.reduce_sum(inputs)

    graph_def, outputs = _frozen(model, tf.TensorSpec((3, 6), tf.float32))
    folded = fold_weight_computations(graph_def, outputs)
    ops = collections.Counter(node.op for node in folded.node)
    # Libra-PB's statistics, sign and scale became one constant; the fake-quant op (LCE
    # reads int8 ranges from it) and what reads the input stay.
    assert not {"Mean", "Sqrt", "Sign", "Pow", "SelectV2", "Log"} & set(ops), ops
    assert ops["FakeQuantWithMinMaxArgs"] == 1 and ops["MatMul"] == 1
    assert ops["Placeholder"] == 1
    assert len(folded.node) < len(graph_def.node)

    def run(definition):
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(definition, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(outputs, {"inputs:0": x})

    for a, b in zip(run(graph_def), run(folded), strict=True):
        np.testing.assert_array_equal(a, b)
    # Nothing to fold: the same GraphDef back.
    plain, plain_outputs = _frozen(lambda v: v * 2.0, tf.TensorSpec((2,), tf.float32))
    assert fold_weight_computations(plain, plain_outputs) is plain


@pytest.mark.slow  # converts a layer with 37.7M weights
def test_a_kernel_too_large_for_tensorflows_constant_folder_still_becomes_lce_bconv2d():
    # 9216 x 4096 scaled sign weights (larq-zoo XNORNet's first classifier layer at
    # 224x224): TensorFlow's MLIR folder refuses operands over 128 MiB, so without
    # folding the weights first their mean magnitude was computed on the device at
    # every inference and the layer stayed a float CONV_2D.
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((1, 1, 9216))
    x = lq.layers.QuantConv2D(
        4096,
        1,
        input_quantizer="ste_sign",
        kernel_quantizer="magnitude_aware_sign",
        use_bias=False,
    )(inputs)
    result = convert(tf.keras.Model(inputs, x), strict=True)
    assert result.report.op_histogram == {"LceQuantize": 1, "LceBconv2d": 1}


# --- benchmark ---------------------------------------------------------------------------


def test_timing_the_float_twin_with_tflite_prints_no_deprecation_notice():
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    flatbuffer = convert(model).flatbuffer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = _make_runner(flatbuffer, np.zeros((1, 4), np.float32), ("tflite", ()))
        runner.run()
    assert not [w for w in caught if "tf.lite.Interpreter is deprecated" in str(w.message)]


@pytest.mark.parametrize("where", ["missing/b.json", "."])
def test_benchmark_refuses_an_unwritable_output_before_any_work(
    where, tmp_path, capsys, monkeypatch
):
    from larq_irnet.converters import benchmark

    started = []
    monkeypatch.setattr(benchmark, "benchmark", lambda *a, **k: started.append(a) or {})
    output = tmp_path / where
    code = cli.main(["benchmark", "--tiny", "--output", str(output)])
    err = capsys.readouterr().err
    assert code != 0 and "--output" in err and str(output) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not started


@pytest.mark.slow  # converts and times interpreters
def test_benchmark_tiny_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["benchmark", "--tiny", "--repeats", "10", "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    tiny = results["models"]["tiny"]
    assert set(tiny["variants"]) == {"irnet", "irnet_int8", "bnn", "fp32"}
    assert results["repeats"] == 10 and results["instances"] == 3
    for variant in tiny["variants"].values():
        assert len(variant["latency_ms"]) == 10 * 3  # runs of every interpreter, pooled
        assert len(variant["instance_medians_ms"]) == 3
        assert variant["latency_ms_median"] == pytest.approx(np.median(variant["latency_ms"]))
        assert variant["size_bytes"] > 0
    sizes = {name: v["size_bytes"] for name, v in tiny["variants"].items()}
    assert tiny["ratios"]["size_fp32_over_irnet"] == pytest.approx(sizes["fp32"] / sizes["irnet"])
    assert sizes["fp32"] > 8 * sizes["irnet"]
    assert tiny["variants"]["irnet"]["op_histogram"]["LceBconv2d"] == 3
    assert "LceBconv2d" not in tiny["variants"]["fp32"]["op_histogram"]
    assert tiny["irnet_and_bnn_same_graph"]
    assert "size FP32/IR-Net" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


# --- DIR-Net's quantizers (our design) through LCE -------------------------------------------


def randomized_batch_norm(model, seed=0):
    """BatchNorm statistics of a trained-like model: no activation sits exactly on 0,
    where Keras and LCE may round a sign differently."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.3, beta.shape),
                    rng.normal(0, 0.3, mean.shape),
                    rng.uniform(0.5, 2.0, variance.shape),
                ]
            )


def set_thresholds(model):
    for layer in model.layers:
        quantizer = getattr(layer, "input_quantizer", None)
        if isinstance(quantizer, larq_irnet.IMBSign):
            quantizer.threshold.assign(np.linspace(-0.5, 0.5, quantizer.threshold.shape[0]))


def lce_outputs(flatbuffer, images):
    interpreter = Interpreter(flatbuffer, num_threads=1)
    return np.concatenate([interpreter.predict(image[None]) for image in images])


@pytest.mark.parametrize(
    "kernel_quantizer, input_quantizer",
    [
        ({"class_name": "IMB", "config": {"scale": "mean_abs"}}, "dte_sign"),
        ({"class_name": "IMB", "config": {"scale": "bit_shift"}}, "dte_sign"),
        ({"class_name": "IMB", "config": {"scale": "none"}}, "dte_sign"),
        ({"class_name": "LibraPB", "config": {"gradient": "dte"}}, "dte_sign"),
        ("imb", "imb_sign"),
    ],
)
def test_dirnet_quantizers_fold_into_one_bconv(kernel_quantizer, input_quantizer):
    # Every IMB scale folds into the bconv's multiplier (no MUL), DTE is backward-only,
    # and imb_sign's threshold is an affine op before LceQuantize (here folded into the
    # float conv that feeds it); the Keras and LCE outputs agree.
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((10, 10, 3))
    x = tf.keras.layers.Conv2D(16, 3, use_bias=False)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        pad_values=1.0,
        use_bias=False,
        kernel_quantizer=kernel_quantizer,
        input_quantizer=input_quantizer,
    )(x)
    x = tf.keras.layers.BatchNormalization()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.GlobalAveragePooling2D()(x))
    randomized_batch_norm(model)
    set_thresholds(model)
    result = convert(model, strict=True)
    ops = result.report.op_histogram
    assert ops == {"CONV_2D": 1, "LceQuantize": 1, "LceBconv2d": 1, "MEAN": 1}, ops
    images = np.random.default_rng(1).normal(size=(3, 10, 10, 3)).astype("f4")
    np.testing.assert_allclose(lce_outputs(result.flatbuffer, images), model(images), atol=1e-4)


def resnet20(binarization):
    model = IRNetResNet20(input_shape=(16, 16, 3), binarization=binarization)
    randomized_batch_norm(model)
    set_thresholds(model)
    return model


@pytest.fixture(scope="module")
def irnet_ops():
    return convert(resnet20("irnet"), strict=True).report.op_histogram


@pytest.mark.slow
@pytest.mark.parametrize("binarization", ["imb", "dte", "dirnet", "dirnet_act"])
def test_dirnet_resnet20_converts_to_one_bconv_per_binary_conv(binarization, irnet_ops):
    model = resnet20(binarization)
    result = convert(model, strict=True)
    ops = result.report.op_histogram
    assert ops["LceBconv2d"] == ops["LceQuantize"] == 18, ops
    assert "LceDequantize" not in ops and ops["CONV_2D"] == 1, ops
    # IR-Net's graph exactly (every IMB scale folded, DTE backward-only), plus for
    # imb_sign one per-channel SUB (its threshold) before each LceQuantize.
    extra = {"SUB": 18} if binarization == "dirnet_act" else {}
    assert ops == {**irnet_ops, **extra}, (ops, irnet_ops)
    images = np.random.default_rng(2).uniform(0, 255, (2, 16, 16, 3)).astype("f4")
    np.testing.assert_allclose(lce_outputs(result.flatbuffer, images), model(images), atol=1e-5)


def test_loading_a_trained_model_logs_no_training_warning(tmp_path, caplog):
    # Larq's "starved weights" warning is about training without weight_clip; loading a
    # trained model to convert or report on it must not print it once per layer.
    path = tmp_path / "model.h5"
    tiny_model(input_shape=(28, 28, 1), binarization="irnet").save(path)  # warns: built here
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="larq.layers_base"):
        model = load_model(path)
    assert model.count_params() > 0
    assert not [r for r in caplog.records if "starved weights" in r.getMessage()]
