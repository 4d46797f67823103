"""Inference cost of `imb_sign`'s per-channel threshold: DIR-Net ResNet-20 with and without it.

Converts `IRNetResNet20(binarization="dirnet")` and its `"dirnet_act"` twin (the same
network plus one learnable threshold per input channel of every binary convolution, set
to nonzero values as after training;
our design following the DIR-Net paper's description) with LCE, gives both the same
interpreter flags (the fastest for `dirnet`, `runner_for`), and times them interleaved
(`interleaved_latency`), several interpreters per model. Prints the op histograms, the
median latencies and their ratio, and writes them as JSON.

    python benchmarks/imb_sign_latency.py --repeats 300 --instances 2 \
        --output benchmarks/results/imb_sign_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import larq_irnet  # noqa: E402, F401  (first: selects Keras 2)
from larq_irnet import IMBSign  # noqa: E402
from larq_irnet.converters import convert  # noqa: E402
from larq_irnet.converters.benchmark import interleaved_latency, runner_for  # noqa: E402
from larq_irnet.io import atomic_write  # noqa: E402
from larq_irnet.zoo import IRNetResNet20  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TWINS = ("dirnet", "dirnet_act")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--repeats", type=int, default=300, help="timed inferences per runner")
    parser.add_argument("--instances", type=int, default=2, help="interpreters per model")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, args.size, args.size, 3))
    runners, histograms, first = {}, {}, None
    for binarization in TWINS:
        tf.keras.backend.clear_session()
        model = IRNetResNet20(input_shape=(args.size, args.size, 3), binarization=binarization)
        # Trained thresholds are not 0 (a threshold of exactly 0 is folded away).
        for layer in model.layers:
            quantizer = getattr(layer, "input_quantizer", None)
            if isinstance(quantizer, IMBSign):
                quantizer.threshold.assign(rng.normal(0.0, 0.1, quantizer.threshold.shape))
        result = convert(model, strict=True)
        histograms[binarization] = result.report.op_histogram
        for k in range(args.instances):
            runner = runner_for(result.flatbuffer, image, binary=True, same_as=first)
            first = first or runner
            runners[f"{binarization}#{k}"] = runner
    latency = interleaved_latency(runners, repeats=args.repeats)
    medians = {
        b: statistics.median(
            t for k in range(args.instances) for t in latency[f"{b}#{k}"]["latency_ms"]
        )
        for b in TWINS
    }
    results = {
        "input": [args.size, args.size, 3],
        "repeats": args.repeats,
        "instances": args.instances,
        "interpreter": first.interpreter,
        "op_histograms": histograms,
        "median_ms": medians,
        "dirnet_act_over_dirnet": medians["dirnet_act"] / medians["dirnet"],
        "instance_medians_ms": {n: r["median_ms"] for n, r in latency.items()},
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        atomic_write(args.output, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
