"""IMB's scale under BatchNorm (issue 26): where its scale matters, and where it does not.

IMB (`IMB(gradient="ede")`, the `imb` preset) and Libra-PB (`libra_pb`, IR-Net) binarize
the same standardized weights to the same signs; they differ only in the positive
per-output-channel scale, which carries no gradient: IMB's mean |w_std| against Libra-PB's
power of two. A per-channel BatchNormalization right after the binary convolution divides
that scale out in training and folds it in at inference, so the two compute the same
function, forward and backward. Without a normalization after it, the scale is visible.
"""

import larq_irnet  # noqa: F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet.converters import convert

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

KERNEL_QUANTIZERS = {
    "libra_pb": "libra_pb",
    "imb": {"class_name": "IMB", "config": {"gradient": "ede"}},
}


def conv_bn(kernel_quantizer, *, batch_norm: bool = True) -> tf.keras.Model:
    """A binary convolution (+ BatchNormalization, with momentum 0: its moving statistics
    become the last training batch's)."""
    inputs = tf.keras.Input((8, 8, 16))
    x = lq.layers.QuantConv2D(
        32,
        3,
        padding="same",
        pad_values=1.0,
        use_bias=False,
        input_quantizer="ste_sign",
        kernel_quantizer=kernel_quantizer,
    )(inputs)
    if batch_norm:
        x = tf.keras.layers.BatchNormalization(momentum=0.0, epsilon=1e-5)(x)
    return tf.keras.Model(inputs, x)


def twins(batch_norm: bool = True) -> dict[str, tf.keras.Model]:
    """The two models with the same latent weights."""
    tf.keras.utils.set_random_seed(0)
    models = {name: conv_bn(q, batch_norm=batch_norm) for name, q in KERNEL_QUANTIZERS.items()}
    weights = models["libra_pb"].get_weights()
    models["imb"].set_weights(weights)
    return models


@pytest.fixture(scope="module")
def batch():
    # Odd-valued inputs: no activation is exactly 0, so no sign tie separates the two.
    rng = np.random.default_rng(0)
    return (rng.integers(-4, 4, size=(16, 8, 8, 16)) * 2 + 1).astype(np.float32)


def test_the_scales_really_differ(batch):
    """Without BatchNorm the two rows compute different outputs: the test below is not
    comparing a function with itself."""
    models = twins(batch_norm=False)
    imb, libra_pb = (models[name](batch).numpy().reshape(-1, 32) for name in ("imb", "libra_pb"))
    per_channel = np.abs(imb).sum(axis=0) / np.abs(libra_pb).sum(axis=0)
    # IMB's scale is mean |w_std| (about sqrt(2/pi) = 0.8 for Gaussian latent weights),
    # Libra-PB's the power of two nearest it (1).
    np.testing.assert_allclose(per_channel, 0.8, atol=0.1)


def test_training_mode_outputs_and_gradients_agree(batch):
    models = twins()
    # Per-element weights: a loss linear in each channel of BatchNorm's output with one
    # weight per channel has zero gradient through it (the normalized channel's sum is
    # fixed), which would compare rounding noise.
    loss_weights = np.random.default_rng(1).normal(size=(16, 8, 8, 32)).astype(np.float32)
    outputs, gradients = {}, {}
    for name, model in models.items():
        with tf.GradientTape() as tape:
            y = model(batch, training=True)
            loss = tf.reduce_sum(y * loss_weights)
        outputs[name] = y.numpy()
        kernel = model.layers[1].kernel
        gradients[name] = tape.gradient(loss, kernel).numpy()
    np.testing.assert_allclose(outputs["imb"], outputs["libra_pb"], atol=1e-4)
    scale = np.abs(gradients["libra_pb"]).max()
    np.testing.assert_allclose(gradients["imb"], gradients["libra_pb"], atol=1e-4 * scale)


@pytest.mark.slow
def test_converted_outputs_agree(batch):
    """After a training step sets BatchNorm's statistics, both convert to the same
    function: LCE folds either scale into the binary convolution's output multiplier."""
    outputs = {}
    for name, model in twins().items():
        model(batch, training=True)  # momentum 0: moving statistics = this batch's
        result = convert(model, strict=True)
        outputs[name] = Interpreter(result.flatbuffer).predict(batch)
        np.testing.assert_allclose(outputs[name], model.predict(batch, verbose=0), atol=1e-3)
    np.testing.assert_allclose(outputs["imb"], outputs["libra_pb"], atol=1e-3)
