"""IR-Net's information measures (larq_irnet.information) against hand-made kernels and NumPy."""

import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

from larq_irnet.callbacks import EDECallback, InformationDiagnostics, ede_quantizers
from larq_irnet.information import (
    binarized_kernels,
    binary_entropy,
    flip_ratio,
    quantization_error,
    sign_entropy,
)
from larq_irnet.quantizers import LibraPB

import larq as lq
import numpy as np
import pytest
import tensorflow as tf


def _single_conv(kernel: np.ndarray, quantizer) -> tf.keras.Model:
    """A model holding one binarized conv whose kernel is `kernel` (HWIO)."""
    h, w, i, o = kernel.shape
    inputs = tf.keras.Input((6, 6, i))
    conv = lq.layers.QuantConv2D(
        o, (h, w), kernel_quantizer=quantizer, use_bias=False, name="bconv"
    )
    model = tf.keras.Model(inputs, conv(inputs))
    conv.kernel.assign(kernel.astype(np.float32))
    return model


def _diagnose(model: tf.keras.Model, per_layer: bool = True) -> InformationDiagnostics:
    callback = InformationDiagnostics(per_layer=per_layer)
    callback.set_model(model)
    callback.on_train_begin()
    return callback


def _epoch_end(callback: InformationDiagnostics) -> dict:
    logs: dict = {}
    callback.on_epoch_end(0, logs)
    return logs


def _kernel_with_positive_counts(counts, n=18, seed=0):
    """A (3, 3, 2, C) kernel whose channel o has exactly counts[o] positive entries of n."""
    rng = np.random.default_rng(seed)
    columns = []
    for count in counts:
        magnitudes = rng.uniform(0.05, 1.0, n)
        signs = np.array([1.0] * count + [-1.0] * (n - count))
        columns.append(rng.permutation(magnitudes * signs))
    return np.stack(columns, axis=-1).reshape(3, 3, 2, len(counts))


def test_binary_entropy_known_values():
    # Closed forms: H(1/4) = 2 - (3/4) log2 3, H(1/3) = log2 3 - 2/3.
    expected = [1.0, 0.0, 0.0, 2 - 0.75 * math.log2(3), math.log2(3) - 2 / 3]
    np.testing.assert_allclose(binary_entropy([0.5, 0.0, 1.0, 0.25, 1 / 3]), expected)
    # Symmetric in p and 1 - p.
    np.testing.assert_allclose(binary_entropy(0.1), binary_entropy(0.9))
    with pytest.raises(ValueError, match="p"):
        binary_entropy(1.5)


def test_entropy_of_a_hand_made_kernel_with_known_fractions():
    counts = [9, 18, 6, 0]  # p = 1/2, 1, 1/3, 0 per output channel, n = 18
    kernel = _kernel_with_positive_counts(counts)
    model = _single_conv(kernel, "ste_sign")
    logs = _epoch_end(_diagnose(model))

    per_channel = [1.0, 0.0, math.log2(3) - 2 / 3, 0.0]
    assert logs["entropy/bconv"] == pytest.approx(np.mean(per_channel), abs=1e-9)
    # Whole kernel: 33 of 72 positive.
    p = 33 / 72
    whole = -p * math.log2(p) - (1 - p) * math.log2(1 - p)
    assert logs["kernel_entropy/bconv"] == pytest.approx(whole, abs=1e-9)
    assert sign_entropy(np.sign(kernel), per_channel=True) == pytest.approx(np.mean(per_channel))


def test_qerror_of_ste_sign_is_distance_to_sign_of_raw_weights():
    kernel = _kernel_with_positive_counts([3, 10, 12], seed=1)
    logs = _epoch_end(_diagnose(_single_conv(kernel, "ste_sign")))
    binary = np.where(kernel >= 0, 1.0, -1.0)
    assert logs["qerror/bconv"] == pytest.approx(np.mean((kernel - binary) ** 2), rel=1e-6)


def test_qerror_of_libra_pb_on_a_kernel_with_known_w_std_and_q():
    # Each output channel holds (-3, -1, 1, 3) times a channel factor plus an offset:
    # balanced, its unbiased std is a * sqrt(20 / 3), so w_std = (-3, -1, 1, 3) * c with
    # c = sqrt(3 / 20) for every channel; mean |w_std| = 2c = 0.77 rounds to the scale
    # 2**0 = 1, so Q = (-1, -1, 1, 1) and the error is ((3c - 1)^2 + (c - 1)^2) / 2.
    base = np.array([-3.0, -1.0, 1.0, 3.0]).reshape(2, 2, 1, 1)
    kernel = np.concatenate([base * 0.5 + 4.0, base * 0.02 - 1.0, base * 3.0], axis=-1)
    model = _single_conv(kernel, LibraPB())
    c = math.sqrt(3 / 20)
    expected = ((3 * c - 1) ** 2 + (c - 1) ** 2) / 2
    logs = _epoch_end(_diagnose(model))
    assert logs["qerror/bconv"] == pytest.approx(expected, rel=1e-5)
    assert logs["entropy/bconv"] == pytest.approx(1.0)


def test_qerror_of_libra_pb_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(2)
    kernel = rng.normal(0.2, 0.3, (3, 3, 8, 6)) * rng.uniform(0.1, 2.0, 6)
    for quantizer in (LibraPB(), LibraPB(standardize=False), LibraPB(bit_shift=False)):
        model = _single_conv(kernel, quantizer)
        w_std = kernel - kernel.mean(axis=(0, 1, 2), keepdims=True)
        if quantizer.standardize:
            w_std = w_std / np.sqrt(w_std.var(axis=(0, 1, 2), ddof=1, keepdims=True) + 1e-8)
        scale = 1.0
        if quantizer.bit_shift:
            scale = 2.0 ** np.round(np.log2(np.abs(w_std).mean(axis=(0, 1, 2))))
        binary = np.where(w_std >= 0, 1.0, -1.0) * scale
        logs = _epoch_end(_diagnose(model))
        assert logs["qerror/bconv"] == pytest.approx(np.mean((w_std - binary) ** 2), rel=1e-4)
        assert quantization_error(w_std, binary) == pytest.approx(np.mean((w_std - binary) ** 2))


def test_flip_ratio_counts_sign_changes_since_the_last_epoch():
    kernel = _kernel_with_positive_counts([9, 9, 9, 9], seed=3)  # 72 weights
    model = _single_conv(kernel, "ste_sign")
    callback = _diagnose(model)
    flipped = kernel.copy().reshape(-1)
    flipped[[0, 5, 17, 40, 71]] *= -1  # 5 of 72 signs
    model.get_layer("bconv").kernel.assign(flipped.reshape(kernel.shape).astype(np.float32))
    assert _epoch_end(callback)["flip_ratio/bconv"] == pytest.approx(5 / 72)
    # Nothing changed since that epoch end.
    assert _epoch_end(callback)["flip_ratio/bconv"] == 0.0
    # Magnitudes alone do not flip signs.
    model.get_layer("bconv").kernel.assign(flipped.reshape(kernel.shape).astype(np.float32) * 3)
    assert _epoch_end(callback)["flip_ratio/bconv"] == 0.0
    assert flip_ratio(np.array([1.0, -1.0, 1.0, 1.0]), np.array([1.0, 1.0, -1.0, 1.0])) == 0.5


def test_libra_pb_balances_a_skewed_kernel_where_plain_sign_does_not():
    rng = np.random.default_rng(4)
    kernel = rng.normal(0.3, 0.15, (3, 3, 16, 8))  # ~98% positive
    sign_logs = _epoch_end(_diagnose(_single_conv(kernel, "ste_sign")))
    libra_logs = _epoch_end(_diagnose(_single_conv(kernel, "libra_pb")))
    assert sign_logs["entropy/bconv"] < 0.3
    assert libra_logs["entropy/bconv"] > 0.99
    assert libra_logs["kernel_entropy/bconv"] > 0.99
    # Raw weights ~0.3 are far from +-1; standardized ones are not.
    assert libra_logs["qerror/bconv"] < sign_logs["qerror/bconv"]


def test_binarized_kernels_finds_only_precision_one_weights():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(4, 3, name="float_conv")(inputs)
    x = lq.layers.QuantConv2D(4, 3, kernel_quantizer="libra_pb", name="libra")(x)
    x = lq.layers.QuantConv2D(
        4, 1, kernel_quantizer=lq.quantizers.NoOp(precision=1), name="tagged"
    )(x)
    x = lq.layers.QuantDepthwiseConv2D(3, depthwise_quantizer="ste_sign", name="depthwise")(x)
    x = lq.layers.QuantConv2D(4, 1, input_quantizer="ste_sign", name="binary_input_only")(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = lq.layers.QuantDense(3, kernel_quantizer="ede_sign", name="dense")(x)
    model = tf.keras.Model(inputs, outputs)
    kernels = binarized_kernels(model)
    assert [(k.name, k.weight) for k in kernels] == [
        ("libra", "kernel"),
        ("depthwise", "depthwise_kernel"),
        ("dense", "kernel"),
    ]


def test_depthwise_entropy_is_per_filter_as_libra_pb_balances():
    # The depthwise kernel: channel 0 about +1.1, channel 1 about -1.1. With
    # ste_sign each (channel, multiplier) filter is all +1 or all -1: entropy 0, not the
    # 1.0 that the last-axis rule reported. Libra-PB balances each filter.
    rng = np.random.default_rng(9)
    kernel = np.stack([1.1 + rng.normal(0, 0.01, (3, 3)), -1.1 + rng.normal(0, 0.01, (3, 3))], -1)
    for quantizer, low, high in (("ste_sign", 0.0, 0.0), ("libra_pb", 0.9, 1.0)):
        tf.keras.backend.clear_session()
        inputs = tf.keras.Input((6, 6, 2))
        layer = lq.layers.QuantDepthwiseConv2D(
            3,
            depthwise_quantizer=quantizer,
            depthwise_initializer=tf.constant_initializer(kernel[..., None]),
            name="dw",
        )
        model = tf.keras.Model(inputs, layer(inputs))
        (found,) = binarized_kernels(model)
        assert found.channel_axes == (-2, -1)
        logs = _epoch_end(_diagnose(model))
        assert low <= logs["entropy/dw"] <= high, (quantizer, logs["entropy/dw"])
        w, w_std, binary = found.arrays()
        p = (binary > 0).reshape(9, 2).mean(axis=0)
        assert logs["entropy/dw"] == pytest.approx(float(np.mean(binary_entropy(p))))
        if quantizer == "libra_pb":
            expected = w - w.mean(axis=(0, 1), keepdims=True)
            expected /= np.sqrt(expected.var(axis=(0, 1), ddof=1, keepdims=True) + 1e-8)
            np.testing.assert_allclose(w_std, expected, rtol=1e-5, atol=1e-6)


def test_binarized_kernels_walks_nested_models_and_every_layer_kind():
    inner_in = tf.keras.Input((8, 8, 2))
    x = lq.layers.QuantSeparableConv2D(
        4, 3, depthwise_quantizer="libra_pb", pointwise_quantizer="ste_sign", name="sep"
    )(inner_in)
    x = lq.layers.QuantConv2DTranspose(3, 2, kernel_quantizer="libra_pb", name="up")(x)
    inner = tf.keras.Model(inner_in, x, name="backbone")
    outer_in = tf.keras.Input((8, 8, 2))
    y = tf.keras.layers.Flatten()(inner(outer_in))
    outer = tf.keras.Model(outer_in, lq.layers.QuantDense(2, kernel_quantizer="libra_pb")(y))
    found = [(k.name, k.weight, k.channel_axes) for k in binarized_kernels(outer)]
    assert found == [
        ("sep/depthwise_kernel", "depthwise_kernel", (-2, -1)),
        ("sep/pointwise_kernel", "pointwise_kernel", (-1,)),
        ("up", "kernel", (-2,)),
        ("quant_dense", "kernel", (-1,)),
    ]
    assert [type(q).__name__ for q in ede_quantizers(outer)] == ["LibraPB"] * 3


def test_binarized_kernels_refuses_disagreeing_channel_axes():
    inputs = tf.keras.Input((6, 6, 2))
    layer = lq.layers.QuantDepthwiseConv2D(
        2, depthwise_quantizer=LibraPB(channel_axes=(-1,)), name="wrong_axes"
    )
    model = tf.keras.Model(inputs, layer(inputs))
    with pytest.raises(ValueError, match="'wrong_axes'"):
        binarized_kernels(model)


def _tiny_binary_model(seed: int = 0) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    binary = dict(
        input_quantizer="ede_sign", kernel_quantizer="libra_pb", padding="same", use_bias=False
    )
    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(8, 3, name="b1", **binary)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(8, 3, name="b2", **binary)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile(tf.keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_logs_reach_history_and_csv_logger(tmp_path):
    model = _tiny_binary_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8, 8, 1)), rng.integers(0, 3, 64)
    csv_path = tmp_path / "history.csv"
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[
            EDECallback(),
            InformationDiagnostics(),
            tf.keras.callbacks.CSVLogger(str(csv_path)),
        ],
    )
    logged = history.history
    for measure in ("entropy", "kernel_entropy", "qerror", "flip_ratio"):
        assert {f"{measure}/b1", f"{measure}/b2", f"{measure}_mean"} <= set(logged)
        assert f"{measure}/stem" not in logged
        np.testing.assert_allclose(
            logged[f"{measure}_mean"],
            (np.array(logged[f"{measure}/b1"]) + logged[f"{measure}/b2"]) / 2,
        )
    assert all(0.9 < h <= 1.0 for h in logged["entropy/b1"])
    # lr 0.5 on a fresh model: some signs flip every epoch, never most of them.
    assert all(0.0 < f < 0.5 for f in logged["flip_ratio_mean"])
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {"entropy/b1", "qerror/b2", "flip_ratio_mean", "ede_t"} <= set(header)
    # The logged values are those of the final weights.
    final = InformationDiagnostics()
    final.set_model(model)
    final.on_train_begin()
    final.on_epoch_end(0)
    assert final.latest["entropy/b2"] == pytest.approx(logged["entropy/b2"][-1])
    assert final.latest["qerror/b1"] == pytest.approx(logged["qerror/b1"][-1])
    assert final.latest["flip_ratio/b1"] == 0.0


def test_per_layer_false_logs_only_the_means():
    kernel = _kernel_with_positive_counts([9, 3], seed=5)
    logs = _epoch_end(_diagnose(_single_conv(kernel, "ste_sign"), per_layer=False))
    assert sorted(logs) == ["entropy_mean", "flip_ratio_mean", "kernel_entropy_mean", "qerror_mean"]


def test_full_precision_model_logs_nothing_and_warns():
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback = _diagnose(model)
    assert any("no binarized weights" in str(w.message) for w in caught)
    assert _epoch_end(callback) == {}


@pytest.mark.slow
def test_diagnostics_under_mirrored_strategy_with_two_replicas():
    # Two logical CPU devices must be configured before TensorFlow starts: a subprocess.
    script = textwrap.dedent(
        """
        import json
        import larq_irnet
        from larq_irnet.callbacks import EDECallback, InformationDiagnostics, ede_quantizers
        import larq as lq, numpy as np, tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        tf.keras.utils.set_random_seed(0)
        with strategy.scope():
            inputs = tf.keras.Input((6, 6, 2))
            x = lq.layers.QuantConv2D(
                4, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign", name="b1"
            )(inputs)
            x = tf.keras.layers.GlobalAveragePooling2D()(x)
            model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(x))
            model.compile(tf.keras.optimizers.SGD(0.5), "mse")
        diagnostics = InformationDiagnostics()
        rng = np.random.default_rng(0)
        history = model.fit(
            rng.normal(size=(32, 6, 6, 2)), rng.normal(size=(32, 2)), batch_size=8,
            epochs=2, verbose=0, callbacks=[EDECallback(), diagnostics],
        )
        kernel = model.get_layer("b1").kernel.numpy()
        print(json.dumps({
            "replicas": strategy.num_replicas_in_sync,
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "kernel": kernel.tolist(),
        }))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    history = out["history"]
    assert len(history["entropy/b1"]) == 2 and len(history["flip_ratio/b1"]) == 2
    # Recompute the last epoch's values from the final weights, in NumPy.
    w = np.array(out["kernel"])
    w_std = w - w.mean(axis=(0, 1, 2), keepdims=True)
    w_std /= np.sqrt(w_std.var(axis=(0, 1, 2), ddof=1, keepdims=True) + 1e-8)
    binary = np.where(w_std >= 0, 1.0, -1.0) * 2.0 ** np.round(
        np.log2(np.abs(w_std).mean(axis=(0, 1, 2)))
    )
    p = (w_std >= 0).reshape(-1, 4).mean(axis=0)
    assert history["entropy/b1"][-1] == pytest.approx(np.mean(binary_entropy(p)), abs=1e-6)
    assert history["qerror/b1"][-1] == pytest.approx(np.mean((w_std - binary) ** 2), rel=1e-4)
