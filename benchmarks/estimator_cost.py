"""Forward and backward time of one binary activation's sign, per estimator.

Each input quantizer (`--quantizers`, default Larq's `ste_sign`, IR-Net's `ede_sign`,
DIR-Net's `dte_sign`) binarizes one tensor of `--shape` (default 128x28x28x16: a batch
of the zoo ResNet-20's first-stage activations on Fashion-MNIST) inside a `tf.function`
that returns the gradient. The quantizers run interleaved: a round times `--calls`
calls of each, in an order that rotates every round, so that load from other processes
hits all alike. Prints and writes the median over rounds of the time per call.

    TF_NUM_INTRAOP_THREADS=1 python benchmarks/estimator_cost.py --rounds 21 \\
        --output benchmarks/results/estimator_cost.json

`dte_sign` runs in stage 2 (band on, t = 5), where its backward pass is complete; the
band's floor does not bind there, so it is skipped as in training
(`larq_irnet.estimators.dte_gradient`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import larq_irnet  # noqa: E402  (first: selects Keras 2, registers the quantizers)
from larq_irnet.io import atomic_write  # noqa: E402

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

QUANTIZERS = ("ste_sign", "ede_sign", "dte_sign")
#: State set before timing, per quantizer (the others keep their initial state).
STATE = {"dte_sign": {"band": 1.0, "t": 5.0, "k": 1.0}}


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 128,28,28,16, got {text!r}")
    return shape


def gradient_function(name: str, x: tf.Variable):
    """A `tf.function` that binarizes `x` with quantizer `name` and returns the gradient."""
    quantizer = lq.quantizers.get(name)
    quantizer(x)  # builds its state outside the function
    if name in STATE:
        quantizer.set_state(**STATE[name])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = quantizer(x)
        return tape.gradient(y, x)

    step()
    return step


def run(args: argparse.Namespace) -> dict:
    x = tf.Variable(np.random.default_rng(0).standard_normal(args.shape).astype(np.float32))
    steps = {name: gradient_function(name, x) for name in args.quantizers}
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            for _ in range(args.calls):
                steps[name]()
            rounds[name].append((time.perf_counter() - start) / args.calls * 1000)
    median = {name: statistics.median(times) for name, times in rounds.items()}
    return {
        "benchmark": "estimator_cost",
        "config": {"shape": list(args.shape), "rounds": args.rounds, "calls": args.calls},
        "environment": {
            "tensorflow": tf.__version__,
            "larq_irnet": larq_irnet.__version__,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            # tf.config reports 0 when the environment sets the count: record that too.
            "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
        },
        "median_ms": median,
        "round_ms": rounds,
        "ratio_to_ste_sign": {name: value / median["ste_sign"] for name, value in median.items()}
        if "ste_sign" in median
        else {},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quantizers",
        type=lambda text: tuple(text.split(",")),
        default=QUANTIZERS,
        help=f"comma-separated input quantizers (default {','.join(QUANTIZERS)})",
    )
    parser.add_argument("--shape", type=parse_shape, default=(128, 28, 28, 16))
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    for name in args.quantizers:
        try:
            lq.quantizers.get(name)
        except ValueError:
            parser.error(f"--quantizers: unknown quantizer {name!r}")
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be >= 1")
    results = run(args)
    for name, value in results["median_ms"].items():
        print(f"{name:>10}: {value:7.2f} ms per forward + backward")
    if args.output:
        atomic_write(args.output, json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
