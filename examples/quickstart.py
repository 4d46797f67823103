"""Quickstart: train a small IR-Net CNN on Fashion-MNIST, convert it with LCE, evaluate.

Runs in a few minutes on a laptop CPU:

    python examples/quickstart.py [--epochs 2] [--output quickstart.tflite]

The converted model is written only when `--output` names a file.
"""

import argparse
import sys
import time

import larq_irnet  # noqa: F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet._validation import check_output_path
from larq_irnet.callbacks import EDECallback
from larq_irnet.io import atomic_write
from larq_irnet.training.data import load_fashion_mnist

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter


def build_model() -> tf.keras.Model:
    binary = dict(
        input_quantizer="ede_sign",
        kernel_quantizer="libra_pb",
        padding="same",
        pad_values=1.0,
        use_bias=False,
    )
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    for filters in (64, 128):
        x = lq.layers.QuantConv2D(filters, 3, **binary)(x)
        x = tf.keras.layers.MaxPool2D()(x)
        x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def error(message: str) -> int:
    print(f"quickstart.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=2, help="default 2")
    parser.add_argument(
        "--train-images",
        type=positive_int,
        default=20000,
        help="train on the first N training images (default 20000)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the directory of Fashion-MNIST's four IDX files "
        "(default /usr/share/datasets/fashion-mnist)",
    )
    parser.add_argument("--output", default=None, help="write the converted .tflite here")
    args = parser.parse_args(argv)

    # Every argument is checked before training: a bad one is a one-line error.
    if args.output is not None:
        try:
            check_output_path(args.output, "--output")
        except ValueError as e:
            return error(str(e))
    try:
        (x_train, y_train), (x_test, y_test) = load_fashion_mnist(args.data_dir)
    except (OSError, ValueError) as e:
        return error(f"--data-dir: {e}" if args.data_dir is not None else str(e))
    x_train, y_train = x_train[: args.train_images], y_train[: args.train_images]

    model = build_model()
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=args.epochs,
        callbacks=[EDECallback(t_min=0.1, t_max=10.0)],
        verbose=2,
    )
    _, keras_accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)

    flatbuffer = lce.convert_keras_model(model)
    interpreter = Interpreter(flatbuffer, num_threads=1, use_indirect_bgemm=True)
    start = time.perf_counter()
    # Raw pixel values as float32: the model normalizes inside itself.
    predictions = interpreter.predict(x_test.astype(np.float32))
    seconds = time.perf_counter() - start
    tflite_accuracy = float(np.mean(predictions.argmax(-1) == y_test))
    print(f"Keras test accuracy:  {keras_accuracy:.4f} ({len(y_test):,} test images)")
    print(f"TFLite test accuracy: {tflite_accuracy:.4f} ({seconds:.1f} s in LCE)")
    size = f"{len(flatbuffer) / 1024:.1f} KiB"
    if args.output is None:
        print(f"LCE model: {size} (not written; pass --output FILE to keep it)")
    else:
        atomic_write(args.output, flatbuffer)
        print(f"LCE model: {size} at {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
