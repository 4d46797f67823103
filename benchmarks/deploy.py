"""Size and latency through LCE: IR-Net's twins, and the chart against larq-zoo's networks.

Twins (the same as `larq-irnet benchmark`; see larq_irnet/converters/benchmark.py and
docs/deploy.md): IR-Net vs FP32 vs plain ste_sign, one thread.

    python benchmarks/deploy.py --models resnet18,resnet20 --repeats 15 \
        --output benchmarks/deploy.json
    python benchmarks/deploy.py --tiny --repeats 10 --output /tmp/tiny.json

Chart (`--chart`): the zoo's IR-Net ResNet-18 and larq-zoo's networks at 224x224x3
(untrained: size and latency do not depend on the values), converted with
`larq_irnet.converters.convert`, all timed in one interleaved run (`interleaved_latency`)
with LCE's interpreter (`use_indirect_bgemm=True`) at 1 and 2 threads. Written under
`"chart"` in the results file (other keys are kept), with a PNG of published ImageNet
top-1 against the measured 1-thread latency:

    nice python benchmarks/deploy.py --chart --repeats 15 --output benchmarks/deploy.json \
        --plot docs/deploy_chart.png
    python benchmarks/deploy.py --chart --plot docs/deploy_chart.png --plot-only  # replot
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_irnet  # noqa: E402, F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet.converters.benchmark import (  # noqa: E402
    Runner,
    add_arguments,
    interleaved_latency,
    run,
)
from larq_irnet.converters.lce import convert  # noqa: E402
from larq_irnet.io import atomic_write  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter  # noqa: E402

SIZE = 224
THREADS = (1, 2)


def _irnet_resnet18() -> tf.keras.Model:
    from larq_irnet.zoo import IRNetResNet18

    return IRNetResNet18(input_shape=(SIZE, SIZE, 3), stem="imagenet", binarization="irnet")


def _larq_zoo(module: str, name: str) -> Callable[[], tf.keras.Model]:
    def build() -> tf.keras.Model:
        import larq_zoo as lqz

        return getattr(getattr(lqz, module), name)(input_shape=(SIZE, SIZE, 3), weights=None)

    return build


#: Charted networks: name -> (builder, published ImageNet top-1 % or None, its source).
CHART: dict[str, tuple[Callable[[], tf.keras.Model], float | None, str]] = {
    "IRNetResNet18": (_irnet_resnet18, 58.1, "IR-Net paper (CVPR 2020), ResNet-18 1/1"),
    "BiRealNet": (_larq_zoo("literature", "BiRealNet"), 57.47, "larq-zoo"),
    "BinaryResNetE18": (_larq_zoo("literature", "BinaryResNetE18"), 58.32, "larq-zoo"),
    "RealToBinaryNet": (_larq_zoo("literature", "RealToBinaryNet"), 65.01, "larq-zoo"),
    "QuickNetSmall": (_larq_zoo("sota", "QuickNetSmall"), None, "not in our references"),
    "QuickNet": (_larq_zoo("sota", "QuickNet"), 63.3, "larq-zoo (sota)"),
}


def _runner(flatbuffer: bytes, image: np.ndarray, threads: int) -> Runner:
    interpreter = Interpreter(flatbuffer, num_threads=threads, use_indirect_bgemm=True)
    interpreter.predict(image)  # warm-up: allocation, caches

    def run_once() -> None:
        interpreter.predict(image)

    return Runner(
        f"larq_compute_engine Interpreter(num_threads={threads}, use_indirect_bgemm=True)",
        run_once,
        ("lce", (("num_threads", threads), ("use_indirect_bgemm", True))),
    )


def chart_benchmark(
    names: list[str], *, repeats: int, instances: int, log: Callable[[str], None] = print
) -> dict:
    """Convert every network of `names` (keys of `CHART`), then time all of them, at
    every thread count of `THREADS`, in one interleaved run; the JSON-able results."""
    image = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    networks, runners = {}, {}
    for name in names:
        build, top1, source = CHART[name]
        tf.keras.backend.clear_session()
        model = build()
        start = time.perf_counter()
        result = convert(model)
        seconds = time.perf_counter() - start
        report = result.report
        total = report.binary_macs + report.float_macs + report.int8_macs
        networks[name] = {
            "published_top1": top1,
            "source": source,
            "size_bytes": report.size_bytes,
            "binary_macs": report.binary_macs,
            "float_macs": report.float_macs,
            "binary_mac_share": report.binary_macs / total,
            "binary_layers": sum(layer.binary for layer in report.layers),
            "fully_binary_layers": sum(layer.fully_binary for layer in report.layers),
            "op_histogram": report.op_histogram,
            "convert_seconds": seconds,
        }
        log(f"  {name}: converted in {seconds:.0f} s, {report.size_bytes / 2**20:.2f} MiB")
        for threads in THREADS:
            for k in range(instances):
                runners[f"{name}@{threads}#{k}"] = _runner(result.flatbuffer, image, threads)
        del model
    latency = interleaved_latency(runners, repeats=repeats)
    for name, entry in networks.items():
        for threads in THREADS:
            pooled = [
                t for k in range(instances) for t in latency[f"{name}@{threads}#{k}"]["latency_ms"]
            ]
            entry[f"latency_ms_{threads}_threads"] = statistics.median(pooled)
            entry[f"interpreter_{threads}_threads"] = latency[f"{name}@{threads}#0"]["interpreter"]
    return {
        "input": [SIZE, SIZE, 3],
        "threads": list(THREADS),
        "repeats": repeats,
        "instances": instances,
        "networks": networks,
    }


def chart_table(chart: dict) -> str:
    """The chart's results as a markdown table."""
    lines = [
        "| network | size MiB | latency 1 thread ms | latency 2 threads ms | binary MACs "
        "| published ImageNet top-1 % (source) |",
        "|---|---|---|---|---|---|",
    ]
    for name, n in sorted(chart["networks"].items(), key=lambda i: i[1]["latency_ms_1_threads"]):
        top1 = "-" if n["published_top1"] is None else f"{n['published_top1']:.2f}"
        lines.append(
            f"| {name} | {n['size_bytes'] / 2**20:.2f} | {n['latency_ms_1_threads']:.1f} "
            f"| {n['latency_ms_2_threads']:.1f} | {100 * n['binary_mac_share']:.1f}% "
            f"| {top1} ({n['source']}) |"
        )
    return "\n".join(lines)


def plot_chart(chart: dict, path: Path) -> None:
    """Published ImageNet top-1 against measured 1-thread latency, points labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    points = sorted(
        (n["published_top1"], n["latency_ms_1_threads"], name, n["source"])
        for name, n in chart["networks"].items()
        if n["published_top1"] is not None
    )
    # Labels to the right of their points, moved up where they would overlap (networks
    # of the same shape sit within a fraction of a millisecond and a point of top-1).
    label_y = []
    for y, _, _, _ in points:
        label_y.append(max(y, label_y[-1] + 1.1) if label_y else y)
    for (y, x, name, source), text_y in zip(points, label_y, strict=True):
        axes.scatter(x, y, color="tab:red" if name.startswith("IRNet") else "tab:blue")
        axes.annotate(
            f"{name} ({source})",
            (x, y),
            (x + 0.15, text_y),
            fontsize=8,
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
        )
    axes.set_xlabel(
        "measured latency, ms (x86-64, 1 thread, LCE 0.16 interpreter, "
        f"use_indirect_bgemm, {SIZE}x{SIZE})"
    )
    axes.set_ylabel("published ImageNet top-1, %")
    axes.set_title("Binary networks through LCE: accuracy (published) vs latency (measured)")
    axes.margins(x=0.25, y=0.15)
    right = max(x for _, x, _, _ in points) if points else 0.0
    axes.set_xlim(right=right + 0.4 * (right - axes.get_xlim()[0]) + 1.0)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_chart(args: argparse.Namespace) -> int:
    """`--chart`: measure (unless `--plot-only`), write under "chart", print, plot."""
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    if not args.plot_only:
        names = [n.strip() for n in args.networks.split(",")] if args.networks else list(CHART)
        unknown = [n for n in names if n not in CHART]
        if unknown:
            print(f"deploy.py: unknown networks {unknown}; known: {list(CHART)}", file=sys.stderr)
            return 2
        results["chart"] = chart_benchmark(
            names,
            repeats=args.repeats,
            instances=args.instances,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        atomic_write(output, json.dumps(results, indent=2) + "\n")
    print(chart_table(results["chart"]))
    if args.plot:
        plot_chart(results["chart"], Path(args.plot))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python benchmarks/deploy.py [--chart] [--models ...] [--repeats N] [--output F]`."""
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--chart", action="store_true", help="the chart run (see above)")
    parser.add_argument("--networks", default="", help=f"--chart: some of {', '.join(CHART)}")
    parser.add_argument("--plot", default="", help="--chart: write the PNG here")
    parser.add_argument("--plot-only", action="store_true", help="--chart: replot --output")
    args = parser.parse_args(argv)
    return run_chart(args) if args.chart else run(args)


if __name__ == "__main__":
    sys.exit(main())
