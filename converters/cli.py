"""`larq-irnet convert`, `larq-irnet evaluate` and `larq-irnet benchmark`.

The converters read no datasets themselves (they sit below `larq_irnet.training.data`): the
commands that need images (`evaluate`, `convert --int8`) call the `load_split`
function the top-level command line hands to `add_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from larq_irnet._validation import check_output_path

#: What `convert` takes (`larq_irnet.zoo.loading.load_model`).
_MODEL = (
    "a .keras or .h5 file, a SavedModel directory, a run directory of `larq-irnet train` "
    "(its model.h5) or a name of shipped zoo weights"
)

__all__ = ["LoadSplit", "add_parser"]

#: `load_split(dataset, data_dir, split)` -> (images, labels): uint8 NHWC images and
#: integer labels of `split` ("train" or "test") of `dataset` ("fashion_mnist", "cifar10").
LoadSplit = Callable[[str, "str | None", str], tuple]

_TRUST = (
    ".h5 files and SavedModel directories can carry code that runs when they are loaded: "
    "convert them only from a trusted source. .keras files are loaded in Keras' safe mode "
    "(no deserialized Python code) unless --unsafe is given."
)
_DATASETS = ("fashion_mnist", "cifar10")


def _error(command: str, message: str) -> int:
    print(f"larq-irnet {command}: error: {message}", file=sys.stderr)
    return 1


def _load(args: argparse.Namespace, name: str, split: str) -> tuple:
    if name == "cifar10" and args.data_dir is None:
        raise ValueError(
            "cifar10 needs --data-dir: the cifar-10-batches-py directory of the extracted "
            "cifar-10-python.tar.gz (nothing is downloaded)"
        )
    return args.load_split(name, args.data_dir, split)


def _convert(args: argparse.Namespace) -> int:
    from larq_irnet.converters.lce import ConversionError, convert
    from larq_irnet.io import atomic_write
    from larq_irnet.zoo.loading import load_model

    import numpy as np

    try:
        check_output_path(args.output, "--output")
        if args.report:
            check_output_path(args.report, "--report")
            if Path(args.report).resolve() == Path(args.output).resolve():
                raise ValueError(f"--report {args.report}: the same file as --output")
        if args.calibration_size < 1:
            raise ValueError(f"--calibration-size must be >= 1, got {args.calibration_size}")
    except ValueError as e:
        return _error("convert", f"{e} (nothing written)")
    try:
        model = load_model(args.model, safe_mode=not args.unsafe)
        representative = None
        if args.int8:
            images, _ = _load(args, args.calibration_dataset, "train")
            rng = np.random.default_rng(0)
            size = min(args.calibration_size, len(images))
            pick = rng.choice(len(images), size=size, replace=False)
            representative = images[pick]
        result = convert(
            model, strict=args.strict, int8=args.int8, representative_data=representative
        )
    except ConversionError as e:
        print(e.report, file=sys.stderr)
        return _error("convert", f"{e} (nothing written to {args.output})")
    except (OSError, ValueError, TypeError) as e:
        return _error("convert", f"{e} (nothing written to {args.output})")
    try:
        result.save(args.output)
    except OSError as e:
        return _error("convert", f"cannot write {args.output}: {e}")
    print(result.report)
    if args.report:
        try:
            atomic_write(args.report, result.report.to_json() + "\n")
        except OSError as e:
            return _error("convert", f"cannot write --report {args.report}: {e}")
    print(f"wrote {args.output} ({len(result.flatbuffer):,} bytes)")
    return 0


def _read_tflite(path: str) -> bytes:
    """The bytes of a `.tflite` file; a one-line ValueError naming it otherwise."""
    expected = "expected a .tflite model written by `larq-irnet convert`"
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{path}: is a directory; {expected}")
    if not file.exists():
        raise ValueError(f"{path}: no such file; {expected}")
    try:
        flatbuffer = file.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e}); {expected}") from e
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4-8.
    if flatbuffer[4:8] != b"TFL3":
        raise ValueError(
            f"{path}: not a TFLite model ({len(flatbuffer)} bytes, no TFL3 identifier); {expected}"
        )
    return flatbuffer


def _evaluate(args: argparse.Namespace) -> int:
    from larq_irnet.converters.evaluate import AGREEMENT_THRESHOLD, evaluate_tflite
    from larq_irnet.zoo.loading import load_model

    # Each error names what it is about: the .tflite file, --keras, or the dataset.
    try:
        flatbuffer = _read_tflite(args.tflite)
    except ValueError as e:
        return _error("evaluate", str(e))
    keras_model = None
    if args.keras:
        try:
            keras_model = load_model(args.keras, safe_mode=not args.unsafe)
        except (OSError, ValueError) as e:
            return _error("evaluate", f"--keras: {e}")
    try:
        images, labels = _load(args, args.dataset, "test")
    except (OSError, ValueError) as e:
        where = f"--data-dir {args.data_dir}" if args.data_dir else f"--dataset {args.dataset}"
        return _error("evaluate", f"{where}: {e}")
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    try:
        result = evaluate_tflite(
            flatbuffer, images, labels, keras_model=keras_model, progress=not args.no_progress
        )
    except (OSError, ValueError) as e:
        return _error("evaluate", f"{args.tflite}: {e}")
    print(
        f"{args.tflite}: top-1 accuracy {result.accuracy:.4f} on {result.examples} "
        f"{args.dataset} test images ({result.seconds:.1f} s in LCE's interpreter)"
    )
    status = 0
    if result.agreement is not None:
        print(f"{args.keras}: Keras top-1 accuracy {result.keras_accuracy:.4f}")
        print(f"top-1 agreement LCE vs Keras: {result.agreement:.4f}")
        if result.agreement < AGREEMENT_THRESHOLD:
            print(
                f"warning: agreement below {AGREEMENT_THRESHOLD:.1%}: the conversion changed "
                "the model's decisions (an int8 model, or a bug to explain)",
                file=sys.stderr,
            )
            status = 3
    if args.json:
        print(json.dumps(result.to_dict()))
    return status


def _benchmark(args: argparse.Namespace) -> int:
    from larq_irnet.converters import benchmark

    return benchmark.run(args)


def add_parser(subparsers: argparse._SubParsersAction, *, load_split: LoadSplit) -> None:
    """Register `convert`, `evaluate` and `benchmark` with the `larq-irnet` command.

    # Arguments
        subparsers: the `larq-irnet` parser's subparsers.
        load_split: `load_split(dataset, data_dir, split) -> (images, labels)`, the
            images `evaluate` scores and `convert --int8` calibrates on (the top layer
            passes `larq_irnet.training.data`'s; see `LoadSplit`).
    """
    from larq_irnet._validation import positive_int_argument
    from larq_irnet.converters.benchmark import add_arguments

    convert = subparsers.add_parser(
        "convert",
        help="convert a Keras model with LCE and report what each binary layer became",
        description=f"Convert a Keras model ({_MODEL}) to an LCE flatbuffer, and report "
        "for every binarized layer whether it became LceBconv2d "
        "(or which float op, and why). The output is written atomically: a failed "
        "conversion leaves no file and an existing file untouched. " + _TRUST,
    )
    convert.add_argument("model", help=_MODEL)
    convert.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    convert.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1, nothing written) if a 1w1a layer did not become LceBconv2d",
    )
    convert.add_argument(
        "--int8",
        action="store_true",
        help="quantize the layers that stay float (stem, shortcuts, classifier) to int8, "
        "with ranges calibrated on training images (--calibration-dataset)",
    )
    convert.add_argument(
        "--calibration-dataset",
        choices=_DATASETS,
        default="fashion_mnist",
        help="training images to calibrate --int8 on (default fashion_mnist)",
    )
    convert.add_argument(
        "--calibration-size",
        type=int,
        default=512,
        help="number of calibration images (default 512)",
    )
    convert.add_argument("--data-dir", help="dataset directory (required for cifar10)")
    convert.add_argument(
        "--unsafe", action="store_true", help="allow Python code in .keras files (trusted only)"
    )
    convert.add_argument("--report", help="also write the conversion report as JSON here")
    convert.set_defaults(func=_convert, load_split=load_split)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="accuracy of a .tflite model in LCE's interpreter on a real test set",
        description="Run LCE's interpreter over the whole test set (float32 raw pixels "
        "0..255: the models normalize inside) and report top-1 accuracy; with --keras, "
        "also the Keras model's accuracy and the top-1 agreement between the two (below "
        "99.5% exits with status 3). " + _TRUST,
    )
    evaluate.add_argument("tflite", help="the .tflite model")
    evaluate.add_argument("--dataset", required=True, choices=_DATASETS)
    evaluate.add_argument(
        "--data-dir",
        help="dataset directory (Fashion-MNIST default: /usr/share/datasets/fashion-mnist; "
        "cifar10: required, the cifar-10-batches-py directory)",
    )
    evaluate.add_argument("--keras", help="the Keras model the .tflite was converted from")
    evaluate.add_argument(
        "--limit",
        type=positive_int_argument,
        metavar="N",
        help="score only the first N test images (for quick checks)",
    )
    evaluate.add_argument(
        "--unsafe", action="store_true", help="allow Python code in .keras files (trusted only)"
    )
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--json", action="store_true", help="also print the result as JSON")
    evaluate.set_defaults(func=_evaluate, load_split=load_split)

    bench = subparsers.add_parser(
        "benchmark",
        help="size and single-thread latency: IR-Net (LCE) vs FP32 (XNNPACK) vs ste_sign",
        description="Convert IR-Net ResNet-18 (224x224) and ResNet-20 (32x32) and their "
        "FP32 and plain ste_sign twins, choose the fastest interpreter flags for each, "
        "time them interleaved on one thread, and print medians and ratios (JSON "
        "written atomically to --output).",
    )
    add_arguments(bench)
    bench.set_defaults(func=_benchmark)
