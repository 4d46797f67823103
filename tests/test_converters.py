"""Tests for larq_irnet.converters: what LCE made of each layer, int8, evaluate, CLI, benchmark."""

import collections
import json
import math
import os

import larq_irnet  # noqa: F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet import cli
from larq_irnet.converters import ConversionError, convert
from larq_irnet.converters._io import load_keras_model
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.converters.flatbuffer import op_histogram, op_names, read_graph, structure
from larq_irnet.converters.report import quantizer_kind
from larq_irnet.zoo import IRNetResNet18, IRNetResNet20, IRNetResNet34, IRNetVGGSmall
from larq_irnet.zoo.blocks import Hardtanh

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

BINARY = dict(
    input_quantizer="ede_sign",
    kernel_quantizer="libra_pb",
    padding="same",
    pad_values=1.0,
    use_bias=False,
)


def keras_macs(layer) -> int:
    """MACs per example of a conv or dense layer, from its Keras shapes alone."""
    out = layer.output_shape[1:]
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw
    if isinstance(layer, tf.keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        return math.prod(out) * kh * kw * int(layer.input_shape[-1])
    if isinstance(layer, tf.keras.layers.Dense):
        return math.prod(out) * int(layer.input_shape[-1])
    return 0


def compute_layers(model):
    return [layer for layer in model.layers if keras_macs(layer)]


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
    by_name = {layer.name: keras_macs(layer) for layer in compute_layers(model)}
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
    with pytest.raises(TypeError, match="unknown LCE option"):
        convert(model, inference_type=tf.int8)


# --- every 1w1a zoo model converts strictly ------------------------------------------------

ZOO_1W1A = {
    "resnet20": lambda: IRNetResNet20(input_shape=(16, 16, 3)),
    "vgg_small": lambda: IRNetVGGSmall(input_shape=(16, 16, 3)),
    "resnet18_cifar": lambda: IRNetResNet18(input_shape=(16, 16, 3), stem="cifar"),
    "resnet18_imagenet": lambda: IRNetResNet18(input_shape=(32, 32, 3), stem="imagenet"),
    "resnet34": lambda: IRNetResNet34(input_shape=(32, 32, 3)),
}


@pytest.mark.parametrize("name", list(ZOO_1W1A))
def test_zoo_1w1a_converts_strictly(name):
    model = ZOO_1W1A[name]()
    report = convert(model, strict=True).report
    quant_convs = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(report.layers) == len(quant_convs) > 0
    assert all(layer.binary and layer.ops == ("LceBconv2d",) for layer in report.layers)
    assert report.op_histogram["LceBconv2d"] == len(quant_convs)
    assert report.binary_macs == sum(keras_macs(layer) for layer in quant_convs)
    float_layers = [layer for layer in compute_layers(model) if layer not in quant_convs]
    assert report.float_macs == sum(keras_macs(layer) for layer in float_layers)


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


# --- a model trained on real Fashion-MNIST: evaluate, int8, CLI ------------------------------


@pytest.fixture(scope="module")
def trained(fashion_mnist, tmp_path_factory):
    (x_train, y_train), _ = fashion_mnist
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = Hardtanh()(x)  # as in the zoo: the stem's int8 output range is [-1, 1]
    x = lq.layers.QuantConv2D(32, 3, strides=2, **BINARY)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = lq.layers.QuantConv2D(64, 3, strides=2, **BINARY)(x)
    x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(10)(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("softmax")(x))
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x_train[:6000], y_train[:6000], batch_size=64, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("trained") / "fmnist.h5"
    model.save(path)
    return model, path


def test_cli_convert_h5_and_evaluate_real_slice(trained, fashion_mnist, tmp_path, capsys):
    model, h5 = trained
    _, (x_test, y_test) = fashion_mnist
    out = tmp_path / "model.tflite"
    assert cli.main(["convert", str(h5), "-o", str(out), "--strict"]) == 0
    assert "2 of 2 1w1a layers became LceBconv2d" in capsys.readouterr().out
    flatbuffer = out.read_bytes()
    assert op_histogram(flatbuffer)["LceBconv2d"] == 2
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0600
    # The .h5 round trip is the same function as the model in memory.
    x = x_test[:64].astype(np.float32)
    np.testing.assert_allclose(
        Interpreter(flatbuffer).predict(x), model.predict(x, verbose=0), atol=1e-4
    )

    argv = ["evaluate", str(out), "--dataset", "fashion_mnist", "--limit", "1000"]
    assert cli.main(argv + ["--keras", str(h5), "--no-progress", "--json"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed.strip().splitlines()[-1])
    keras_accuracy = np.mean(model.predict(x_test[:1000], verbose=0).argmax(-1) == y_test[:1000])
    assert result["examples"] == 1000
    assert result["keras_accuracy"] == pytest.approx(keras_accuracy)
    assert result["agreement"] >= 0.995
    assert result["accuracy"] > 0.4  # briefly trained, but far above chance (0.1)
    assert "top-1 agreement LCE vs Keras" in printed


def test_int8_quantizes_the_float_layers(trained, fashion_mnist):
    model, _ = trained
    (x_train, _), (x_test, y_test) = fashion_mnist
    x, y = x_test[:1000], y_test[:1000]
    float_result = convert(model)
    int8_result = convert(model, int8=True, representative_data=x_train[-256:])
    report = int8_result.report
    assert report.int8 and all(layer.binary for layer in report.layers)
    assert report.float_macs == 0 and report.int8_macs == float_result.report.float_macs
    graph = read_graph(int8_result.flatbuffer)
    dtypes = {op.name: op.compute_dtype for op in graph.operators}
    assert dtypes["CONV_2D"] == dtypes["FULLY_CONNECTED"] == "int8"
    # Binary convolutions keep float (or bitpacked) outputs: no sign flips from rounding.
    bconv_outputs = {op.outputs[0].dtype for op in graph.operators if op.name == "LceBconv2d"}
    assert bconv_outputs <= {"float32", "int32"}
    assert report.size_bytes < float_result.report.size_bytes
    f32 = evaluate_tflite(float_result.flatbuffer, x, y, keras_model=model, progress=False)
    i8 = evaluate_tflite(int8_result.flatbuffer, x, y, keras_model=model, progress=False)
    assert f32.agreement >= 0.995, f32
    # int8 rounding of the stem's output flips some signs of the first binary layer:
    # measured 94% agreement and -0.4 points on this briefly trained model.
    assert i8.accuracy >= f32.accuracy - 0.02, (i8, f32)
    assert i8.agreement >= 0.9, i8


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
        load_keras_model(path)
    assert isinstance(load_keras_model(path, safe_mode=False), tf.keras.Model)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(ValueError, match="expected a .keras or .h5 file"):
        load_keras_model(onnx)


def test_graphdef_route_matches_lce_saved_model_route(trained):
    model, _ = trained
    fast = convert(model).flatbuffer
    saved = convert(model, saved_model=True).flatbuffer
    assert op_names(fast) == op_names(saved)
    x = np.random.default_rng(4).uniform(0, 255, (8, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(Interpreter(fast).predict(x), Interpreter(saved).predict(x))


# --- benchmark ---------------------------------------------------------------------------


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
