"""The model zoo's table: parameters, binary and float MACs, FP32 and LCE sizes.

    .venv/bin/python benchmarks/model_table.py [--output docs/models.md] [--models NAME ...]

For each zoo model at its default input size, builds the 1w1a IR-Net variant and the
full-precision (`binarization="fp"`) twin, counts trainable parameters, converts both
with LCE's default route (`convert(..., saved_model=True)`, i.e.
`larq_compute_engine.convert_keras_model`) and measures the flatbuffers. MACs per image
are counted on the IR-Net flatbuffer's operators (the conversion report), with the
project's one MAC formula (`larq_irnet.converters.flatbuffer.conv_macs`). Prints the
Markdown table and writes it (atomically) to `--output`.
"""

import argparse
import sys
import time
from importlib import metadata
from pathlib import Path

import larq_irnet  # noqa: F401  (first: selects Keras 2)
from larq_irnet.converters import convert
from larq_irnet.io import atomic_write
from larq_irnet.zoo import IRNetResNet18, IRNetResNet20, IRNetResNet34, IRNetVGGSmall

import larq as lq
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/model_table.py"

# name: (model function, kwargs, data set the input size and classes are for)
MODELS = {
    "resnet20": (IRNetResNet20, {}, "CIFAR-10"),
    "vgg_small": (IRNetVGGSmall, {}, "CIFAR-10"),
    "resnet18_cifar": (IRNetResNet18, {"stem": "cifar"}, "CIFAR-10"),
    "resnet18": (IRNetResNet18, {"stem": "imagenet"}, "ImageNet"),
    "resnet34": (IRNetResNet34, {}, "ImageNet"),
}


def trainable_parameters(model: tf.keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def measure(name: str) -> dict:
    fn, kwargs, dataset = MODELS[name]
    row = {"name": name, "function": fn.__name__, "kwargs": kwargs, "dataset": dataset}
    binary = fn(**kwargs)
    row["input"] = "x".join(str(d) for d in binary.input_shape[1:3])
    row["classes"] = binary.output_shape[-1]
    row["params"] = trainable_parameters(binary)
    row["binary_params"] = lq.models.ModelProfile(binary).weight_count(bitwidth=1)
    start = time.perf_counter()
    report = convert(binary, saved_model=True).report
    row["binary_macs"], row["float_macs"] = report.binary_macs, report.float_macs
    row["lce_bytes"] = report.size_bytes
    tf.keras.backend.clear_session()
    row["fp_bytes"] = convert(fn(**kwargs, binarization="fp"), saved_model=True).report.size_bytes
    tf.keras.backend.clear_session()
    print(f"{name}: converted in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return row


def _mega(n: float) -> str:
    return f"{n / 1e6:,.2f} M"


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def render(rows: list[dict]) -> str:
    lines = [
        "| model | data, input | parameters (binary) | binary MACs | float MACs "
        "| FP32 size | LCE size | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        args = ", ".join(f"{k}={v!r}" for k, v in row["kwargs"].items())
        lines.append(
            f"| `{row['function']}({args})` | {row['dataset']}, {row['input']}, "
            f"{row['classes']} classes | {row['params']:,} ({row['binary_params']:,}) "
            f"| {_mega(row['binary_macs'])} | {_mega(row['float_macs'])} "
            f"| {_size(row['fp_bytes'])} | {_size(row['lce_bytes'])} "
            f"| {row['fp_bytes'] / row['lce_bytes']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def document(table: str) -> str:
    versions = ", ".join(
        f"{package} {metadata.version(package)}"
        for package in ("tensorflow", "larq", "larq-compute-engine")
    )
    return (
        "# Model zoo: sizes and operation counts\n\n"
        f"Produced by `{COMMAND}` ({versions}).\n\n"
        'Each model is the 1w1a IR-Net variant (`binarization="irnet"`, the default) at '
        "its default input size. *Parameters*: trainable parameters (BatchNorm counts "
        "gamma and beta), binary ones in brackets. *MACs* per image, counted on the "
        "converted IR-Net model's operators: binary = `LceBconv2d`, float = the "
        "full-precision stem, downsampling convolutions and classifier. "
        '*FP32 size*: the `binarization="fp"` twin converted with '
        "`larq_compute_engine.convert_keras_model`; *LCE size*: the IR-Net model "
        "converted the same way (binary convolutions as `LceBconv2d` with bit-packed "
        "weights); ratio = FP32 / LCE.\n\n" + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "models.md")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args(argv)
    table = render([measure(name) for name in args.models])
    print(table, end="")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.output, document(table))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
