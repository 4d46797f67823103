"""The tests' stand-in for the zoo models: raw pixels in, the zoo's presets on one binary conv.

Building and tracing a ResNet-20 costs tens of seconds here, so tests that exercise training,
benchmarks or distribution use this model; it takes the zoo's `binarization=` rows, so the
ablation rows differ in it exactly as they do in ResNet-20. `TINY` is the Fashion-MNIST
recipe with this model.
"""

import dataclasses

from larq_irnet.training.recipes import get_recipe
from larq_irnet.zoo.presets import conv_settings

import larq as lq
import tensorflow as tf


def tiny_model(*, input_shape, num_classes=10, binarization="irnet"):
    """Rescaling, a float conv, one binary conv with the `binarization` preset, a classifier."""
    settings = conv_settings(binarization=binarization, bits="1w1a", pad_values=1.0)
    inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        use_bias=False,
        kernel_quantizer=settings.kernel_quantizer,
        input_quantizer=settings.input_quantizer,
        kernel_constraint=settings.kernel_constraint,
        pad_values=settings.pad_values,
    )(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


TINY = dataclasses.replace(
    get_recipe("fashion_mnist-resnet20-1w1a"), name="tiny", model=tiny_model, model_kwargs={}
)
