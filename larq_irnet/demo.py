"""The main job, end to end: train, convert, evaluate, report (`larq-irnet demo`).

Trains IR-Net ResNet-20 (Bi-Real, 1w1a) on Fashion-MNIST with the project's recommended
recipe, `fashion_mnist-resnet20-1w1a-tuned` (Adam 2.5e-2 with cosine decay, the recipe of
the shipped IR-Net weights; shortened, so it runs in minutes on a laptop CPU), validating
each epoch on 5,000 training images held out from training. It converts the model
through Larq Compute Engine with `strict=True` (every binary convolution must become an
`LceBconv2d`), scores the `.tflite` model with LCE's interpreter on the full 10,000-image
test set beside the Keras model, times it against its FP32 twin, writes the training
report with plots, and prints the headline figures. Rerunning the command resumes an
interrupted run and skips a finished training.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from larq_irnet._validation import is_integer, non_negative_int_argument, positive_int_argument
from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.converters import convert
from larq_irnet.converters.benchmark import interleaved_latency, runner_for
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.io import atomic_write
from larq_irnet.report import write_report
from larq_irnet.training import INTERRUPTED, TrainOptions, run_directory, train
from larq_irnet.training.data import load_arrays
from larq_irnet.training.recipes import get_recipe
from larq_irnet.training.run_directory import RunDirectoryInUse
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.loading import load_model

import numpy as np

__all__ = ["DEMO_RECIPE", "DEMO_VALIDATION_SIZE", "native_log_captured", "run_demo"]

#: The recommended recipe: IR-Net's best in the tuned protocol's search (docs/results.md).
DEMO_RECIPE = "fashion_mnist-resnet20-1w1a-tuned"
#: Training images held out to validate each epoch on (the test set scores the final
#: model only), as the recipe search held them out.
DEMO_VALIDATION_SIZE = 5000


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
        train_limit: train on the first this many training images (None: all 55,000
            that the validation split leaves).
        data_dir: directory of the Fashion-MNIST IDX files (default: the Debian
            package's, else a tensorflow-datasets download).
        repeats: single-image latency measurements per model (medians are reported).

    # Raises
        ValueError: `epochs`, `train_limit` or `repeats` is not a positive integer (or
            None for `train_limit`), `output_dir` is not a writable directory, or a
            dataset file is corrupt; all checked before the first step is printed.
        FileNotFoundError: the Fashion-MNIST files are missing.
    """
    run_dir = Path(output_dir)
    _check(run_dir, epochs=epochs, train_limit=train_limit, repeats=repeats, data_dir=data_dir)
    say = _Story(steps=5)
    say(f"training IR-Net ResNet-20 on Fashion-MNIST into {run_dir}")
    print(
        f"      {_epochs(epochs)} of {DEMO_RECIPE} (Adam 2.5e-2, cosine decay); val_ is "
        f"{DEMO_VALIDATION_SIZE:,} training images held out, the test set scores the end",
        flush=True,
    )
    summary = _train(run_dir, epochs, train_limit, data_dir)
    say("converting with Larq Compute Engine (every binary convolution an LceBconv2d)")
    model = load_model(run_dir / run_directory.MODEL)
    with native_log_captured():
        irnet = convert(model, strict=True)
        fp32 = convert(_fp32_twin(model))
    irnet.save(run_dir / "model.tflite")
    _, (x_test, y_test) = load_arrays("fashion_mnist", data_dir)
    say(f"scoring the .tflite model on all {len(x_test):,} test images beside Keras")
    with native_log_captured():
        evaluation = evaluate_tflite(
            irnet.flatbuffer, x_test, y_test, keras_model=model, progress=False
        )
    say(f"timing it against its FP32 twin ({repeats} single-image runs each)")
    with native_log_captured():
        latency = _latency(irnet.flatbuffer, fp32.flatbuffer, x_test[:1], repeats)
    say(f"writing the training report into {run_dir / run_directory.REPORT}")
    report = write_report(run_dir)
    demo = _record(run_dir, summary, irnet, fp32, evaluation, latency, report.markdown)
    atomic_write(run_dir / "demo.json", json.dumps(demo, indent=1) + "\n")
    return demo


def _check(run_dir: Path, *, epochs, train_limit, repeats, data_dir) -> None:
    """`run_demo`'s arguments, output directory and dataset, before anything is printed."""
    for value, name in ((epochs, "epochs"), (train_limit, "train_limit"), (repeats, "repeats")):
        if value is None and name == "train_limit":
            continue
        if not (is_integer(value) and value > 0):
            raise ValueError(f"`{name}` must be a positive integer, got {name}={value!r}.")
    # The demo writes its files into the run directory, finished run or not.
    run_directory.check_writable(run_dir, "--output-dir")
    # The dataset too: a missing file is an error before "[1/5] training ..." (cached,
    # so training and scoring do not read the files again).
    load_arrays("fashion_mnist", data_dir)


def _train(run_dir: Path, epochs: int, train_limit: int | None, data_dir) -> dict[str, Any]:
    """Train (or resume, or read the finished run) with one line per epoch."""
    return train(
        DEMO_RECIPE,
        run_dir,
        TrainOptions(
            epochs=epochs,
            train_limit=train_limit,
            validation_size=DEMO_VALIDATION_SIZE,
            data_dir=data_dir,
            extra_callbacks=[InformationDiagnostics()],
            verbose=2,
        ),
    )


@contextlib.contextmanager
def native_log_captured() -> Iterator[None]:
    """Send what is written to file descriptor 2 (standard error) to a temporary file.

    TensorFlow's and LCE's converters and TFLite's interpreter log from C++ (absl's
    "All log messages before absl::InitializeLog() is called", `devices.cc`,
    `single_machine.cc`, `mlir_graph_optimization_pass.cc`, "Created TensorFlow Lite
    XNNPACK delegate for CPU"), past Python's `sys.stderr` and `TF_CPP_MIN_LOG_LEVEL`:
    only swapping the descriptor itself keeps them off the terminal. Python's own
    writes to `sys.stderr` inside the block are captured too. If the block raises an
    `Exception`, what was captured is written to `sys.stderr` before it propagates, so a
    failure still shows the messages that explain it; otherwise it is discarded.

    ```python
    with native_log_captured():
        result = convert(model, strict=True)
    ```
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as capture:
            try:
                os.dup2(capture.fileno(), 2)
                try:
                    yield
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
            except Exception:
                capture.seek(0)
                sys.stderr.write(capture.read().decode("utf-8", errors="replace"))
                sys.stderr.flush()
                raise
    finally:
        os.close(saved)


def _fp32_twin(model) -> Any:
    """The trained model's architecture with `binarization="fp"` (untrained: for timing)."""
    return IRNetResNet20(
        input_shape=model.input_shape[1:],
        num_classes=10,
        **{**get_recipe(DEMO_RECIPE).model_kwargs, "binarization": "fp"},
    )


def _latency(irnet: bytes, fp32: bytes, image: np.ndarray, repeats: int) -> dict[str, Any]:
    """Median single-image latency of both flatbuffers, interleaved."""
    image = image.astype(np.float32)
    runners = {
        "irnet_lce": runner_for(irnet, image, binary=True),
        "fp32_tflite": runner_for(fp32, image, binary=False),
    }
    return interleaved_latency(runners, repeats=repeats)


def _record(run_dir, summary, irnet, fp32, evaluation, latency, report) -> dict[str, Any]:
    """The headline figures, as `demo.json` holds them."""
    return {
        "run_dir": str(run_dir),
        "recipe": DEMO_RECIPE,
        "epochs": summary["epochs"],
        "train_examples": summary["train_examples"],
        "validation_examples": summary["validation_size"],
        "final_validation_accuracy": summary["final_validation_accuracy"],
        "keras_test_accuracy": summary["final_test_accuracy"],
        "tflite_test_accuracy": evaluation.accuracy,
        "keras_tflite_top1_agreement": evaluation.agreement,
        "test_examples": evaluation.examples,
        "size_bytes": {"fp32": len(fp32.flatbuffer), "irnet_lce": len(irnet.flatbuffer)},
        "size_fp32_over_irnet": len(fp32.flatbuffer) / len(irnet.flatbuffer),
        "latency_ms_median": {k: v["median_ms"] for k, v in latency.items()},
        "interpreters": {k: v["interpreter"] for k, v in latency.items()},
        "lce_binary_convolutions": irnet.report.op_histogram.get("LceBconv2d", 0),
        "report": str(report),
    }


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
        help="training images used (default 30000; 0: all 55,000 outside the validation split)",
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
