"""The main job, end to end: train, convert, evaluate, report (`larq-irnet demo`).

Trains IR-Net ResNet-20 (Bi-Real, 1w1a) on Fashion-MNIST with the
`fashion_mnist-resnet20-1w1a` recipe (shortened, so it runs in minutes on a laptop CPU),
converts it through Larq Compute Engine with `strict=True` (every binary convolution must
become an `LceBconv2d`), scores the `.tflite` model with LCE's interpreter on the full
10,000-image test set beside the Keras model, times it against its FP32 twin, writes the
training report with plots, and prints the headline figures. Rerunning the command
resumes an interrupted run and skips a finished training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from larq_irnet import run_directory
from larq_irnet._validation import is_integer, non_negative_int_argument, positive_int_argument
from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.converters import convert, load_keras_model
from larq_irnet.converters.benchmark import interleaved_latency, runner_for
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.data import load_arrays
from larq_irnet.io import atomic_write
from larq_irnet.recipes import get_recipe
from larq_irnet.report import write_report
from larq_irnet.run_directory import RunDirectoryInUse
from larq_irnet.training import INTERRUPTED, train
from larq_irnet.zoo import IRNetResNet20

import numpy as np

__all__ = ["DEMO_RECIPE", "run_demo"]

DEMO_RECIPE = "fashion_mnist-resnet20-1w1a"


def run_demo(
    output_dir: str | os.PathLike,
    *,
    epochs: int = 2,
    train_limit: int | None = 30000,
    data_dir: str | os.PathLike | None = None,
    repeats: int = 20,
) -> dict[str, Any]:
    """Train, convert, evaluate and report; returns the headline figures (also `demo.json`).

    # Arguments
        output_dir: the run directory (training run, `model.tflite`, `report/`,
            `demo.json`).
        epochs: training epochs (the recipe's full budget is its `epochs`).
        train_limit: train on the first this many training images (None: all 60,000).
        data_dir: directory of the Fashion-MNIST IDX files (default: the Debian
            package's, else a tensorflow-datasets download).
        repeats: single-image latency measurements per model (medians are reported).

    # Raises
        ValueError: `epochs`, `train_limit` or `repeats` is not a positive integer (or
            None for `train_limit`), `output_dir` is not a writable directory, or a
            dataset file is corrupt; all checked before the first step is printed.
        FileNotFoundError: the Fashion-MNIST files are missing.
    """
    for value, name in ((epochs, "epochs"), (train_limit, "train_limit"), (repeats, "repeats")):
        if value is None and name == "train_limit":
            continue
        if not (is_integer(value) and value > 0):
            raise ValueError(f"`{name}` must be a positive integer, got {name}={value!r}.")
    run_dir = Path(output_dir)
    # The demo writes its files into the run directory, finished run or not.
    run_directory.check_writable(run_dir, "--output-dir")
    # The dataset too: a missing file is an error before "[1/5] training ..." (cached,
    # so training and scoring do not read the files again).
    load_arrays("fashion_mnist", data_dir)
    say = _Story(steps=5)
    say(f"training IR-Net ResNet-20 on Fashion-MNIST ({_epochs(epochs)}) into {run_dir}")
    summary = train(
        DEMO_RECIPE,
        output_dir=run_dir,
        epochs=epochs,
        train_limit=train_limit,
        data_dir=data_dir,
        extra_callbacks=[InformationDiagnostics()],
        verbose=2,
    )
    say("converting with Larq Compute Engine (every binary convolution an LceBconv2d)")
    model = load_keras_model(run_dir / run_directory.MODEL)
    irnet = convert(model, strict=True)
    irnet.save(run_dir / "model.tflite")
    recipe = get_recipe(DEMO_RECIPE)
    fp32_twin = IRNetResNet20(
        input_shape=model.input_shape[1:],
        num_classes=10,
        **{**recipe.model_kwargs, "binarization": "fp"},
    )
    fp32 = convert(fp32_twin)

    _, (x_test, y_test) = load_arrays("fashion_mnist", data_dir)
    say(f"scoring the .tflite model on all {len(x_test):,} test images beside Keras")
    evaluation = evaluate_tflite(
        irnet.flatbuffer, x_test, y_test, keras_model=model, progress=False
    )
    say(f"timing it against its FP32 twin ({repeats} single-image runs each)")
    image = x_test[:1].astype(np.float32)
    latency = interleaved_latency(
        {
            "irnet_lce": runner_for(irnet.flatbuffer, image, binary=True),
            "fp32_tflite": runner_for(fp32.flatbuffer, image, binary=False),
        },
        repeats=repeats,
    )
    say(f"writing the training report into {run_dir / run_directory.REPORT}")
    report = write_report(run_dir)
    demo = {
        "run_dir": str(run_dir),
        "recipe": DEMO_RECIPE,
        "epochs": summary["epochs"],
        "train_examples": summary["train_examples"],
        "keras_test_accuracy": summary["final_test_accuracy"],
        "tflite_test_accuracy": evaluation.accuracy,
        "keras_tflite_top1_agreement": evaluation.agreement,
        "test_examples": evaluation.examples,
        "size_bytes": {"fp32": len(fp32.flatbuffer), "irnet_lce": len(irnet.flatbuffer)},
        "size_fp32_over_irnet": len(fp32.flatbuffer) / len(irnet.flatbuffer),
        "latency_ms_median": {k: v["median_ms"] for k, v in latency.items()},
        "interpreters": {k: v["interpreter"] for k, v in latency.items()},
        "lce_binary_convolutions": irnet.report.op_histogram.get("LceBconv2d", 0),
        "report": str(report.markdown),
    }
    atomic_write(run_dir / "demo.json", json.dumps(demo, indent=1) + "\n")
    return demo


class _Story:
    """Prints the demo's steps as `[i/n] what`, so that a reader knows how far along it is."""

    def __init__(self, steps: int):
        self.steps = steps
        self.done = 0

    def __call__(self, what: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.steps}] {what}", flush=True)


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def _print_headline(demo: dict[str, Any]) -> None:
    size, latency = demo["size_bytes"], demo["latency_ms_median"]
    print(
        f"\nRun directory: {demo['run_dir']}\n"
        f"IR-Net ResNet-20 on Fashion-MNIST, {_epochs(demo['epochs'])} on "
        f"{demo['train_examples']} images:\n"
        f"  test accuracy (full {demo['test_examples']} images): "
        f"Keras {100 * demo['keras_test_accuracy']:.2f}%, "
        f"TFLite/LCE {100 * demo['tflite_test_accuracy']:.2f}% "
        f"(top-1 agreement {100 * demo['keras_tflite_top1_agreement']:.2f}%)\n"
        f"  size: FP32 {size['fp32'] / 1024:.0f} KiB, LCE {size['irnet_lce'] / 1024:.0f} KiB "
        f"({demo['size_fp32_over_irnet']:.1f}x smaller; "
        f"{demo['lce_binary_convolutions']} LceBconv2d)\n"
        f"  latency, 1 image, 1 thread, this CPU: FP32 {latency['fp32_tflite']:.2f} ms, "
        f"IR-Net {latency['irnet_lce']:.2f} ms\n"
        f"  report: {demo['report']}"
    )


def _run(args: argparse.Namespace) -> int:
    try:
        demo = run_demo(
            args.output_dir,
            epochs=args.epochs,
            train_limit=args.train_limit or None,
            data_dir=args.data_dir,
            repeats=args.repeats,
        )
    except (ValueError, OSError, RunDirectoryInUse) as error:
        print(f"larq-irnet demo: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"larq-irnet demo: interrupted; the same command resumes the training in "
            f"{args.output_dir}.",
            file=sys.stderr,
        )
        return INTERRUPTED
    _print_headline(demo)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `larq-irnet demo`."""
    parser = subparsers.add_parser(
        "demo",
        help="train IR-Net ResNet-20 on Fashion-MNIST, convert with LCE, evaluate, report",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument(
        "--epochs", type=positive_int_argument, default=2, help="training epochs (default 2)"
    )
    parser.add_argument(
        "--train-limit",
        type=non_negative_int_argument,
        default=30000,
        help="training images used (default 30000; 0: all 60,000)",
    )
    parser.add_argument("--data-dir", default=None, help="directory of the IDX files")
    parser.add_argument(
        "--repeats",
        type=positive_int_argument,
        default=20,
        help="latency measurements (default 20)",
    )
    parser.set_defaults(func=_run)
    return parser
