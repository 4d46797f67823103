"""What `--int8` costs in accuracy: the shipped weights converted float, int8 with the
stem float (the default) and int8 with the stem too, scored on all 10,000 test images.

Each conversion is scored by LCE's interpreter against the Keras model it came from
(top-1 accuracy and top-1 agreement); int8 ranges are calibrated on the first
`CALIBRATION` training images. docs/deploy.md's int8 table is this file's content.

    python benchmarks/int8_accuracy.py     # writes benchmarks/results/int8_accuracy.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from larq_irnet.converters import convert  # noqa: E402
from larq_irnet.converters.evaluate import evaluate_tflite  # noqa: E402
from larq_irnet.io import atomic_write  # noqa: E402
from larq_irnet.training.data import load_fashion_mnist  # noqa: E402
from larq_irnet.zoo import IRNetResNet20  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "int8_accuracy.json"
CALIBRATION = 512
#: The shipped weights measured: the tuned IR-Net (`fashion_mnist`) and the paper
#: protocol's (`fashion_mnist_paper`).
WEIGHTS = ("fashion_mnist", "fashion_mnist_paper")
#: conversion name -> `convert` keywords beyond the model.
CONVERSIONS = {
    "float": {},
    "int8, stem float": {"int8": True},
    "int8, stem int8": {"int8": True, "int8_sign_inputs": True},
}


def measure(weights: str, data) -> dict[str, dict]:
    """{conversion: size, accuracy, Keras accuracy, agreement, float and int8 MACs}."""
    (x_train, _), (x_test, y_test) = data
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights=weights)
    out = {}
    for name, options in CONVERSIONS.items():
        calibration = {"representative_data": x_train[:CALIBRATION]} if options else {}
        result = convert(model, **options, **calibration)
        scored = evaluate_tflite(
            result.flatbuffer, x_test, y_test, keras_model=model, progress=False
        )
        out[name] = {
            "bytes": len(result.flatbuffer),
            "accuracy": scored.accuracy,
            "keras_accuracy": scored.keras_accuracy,
            "agreement": scored.agreement,
            "float_macs": result.report.float_macs,
            "int8_macs": result.report.int8_macs,
        }
        print(f"{weights}, {name}: {100 * scored.accuracy:.2f}% ({100 * scored.agreement:.2f}%)")
    return out


def main() -> int:
    data = load_fashion_mnist()
    results = {"calibration_images": CALIBRATION, "weights": {}}
    for weights in WEIGHTS:
        results["weights"][weights] = measure(weights, data)
    atomic_write(RESULTS, json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
