"""Training step time of IR-Net ResNet-20 against plain ste_sign, full precision and DIR-Net.

Builds `IRNetResNet20(binarization=b)` for each configuration (`--set irnet`, the
default: `irnet`, `bnn`, `fp`; `--set dirnet`: `irnet`, `dirnet`, `dirnet+rbd`; or any
list of zoo binarizations, each optionally with `+rbd`: the model trained as the student
of `larq_irnet.distillation.Distiller` with its `binarization="fp"` twin as teacher),
warms each up, then times single training steps (Keras' own `train_function`, as `fit`
runs it). The models are interleaved step by step (a cycle = one step of each, in an order
that rotates every round), so that load from other processes hits all of them alike.
Prints the median step time of each model, their ratios, and the median of the
per-cycle ratios (robust to slowly drifting load), and writes them as JSON.

    python benchmarks/train_overhead.py --batch-size 128 --steps 20 --rounds 6 \
        --output benchmarks/results/train_overhead.json

    python benchmarks/train_overhead.py --set dirnet --batch-size 128 --steps 20 \
        --rounds 6 --output benchmarks/results/train_overhead_dirnet.json

Targets (`TARGETS`): IR-Net within 10% of plain ste_sign (issue 4, `irnet / bnn <= 1.10`);
DTE within 5% of IR-Net's step (`dirnet / irnet <= 1.05`) and RBD, one extra forward of
the teacher, at most 1.6x the step it distils (`dirnet+rbd / dirnet <= 1.6`) (issue 11).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import larq_irnet  # noqa: E402  (first: selects Keras 2)
from larq_irnet.converters.benchmark import interleaved_cycles  # noqa: E402
from larq_irnet.distillation import Distiller  # noqa: E402
from larq_irnet.io import atomic_write  # noqa: E402
from larq_irnet.zoo import BINARIZATIONS, IRNetResNet20  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

#: The configurations `--set` names.
SETS = {"irnet": ["irnet", "bnn", "fp"], "dirnet": ["irnet", "dirnet", "dirnet+rbd"]}
#: A configuration name's suffix for training with RBD from the fp twin.
RBD = "+rbd"
#: (a, b): the most a's step may take relative to b's.
TARGETS = {("irnet", "bnn"): 1.10, ("dirnet", "irnet"): 1.05, ("dirnet+rbd", "dirnet"): 1.6}
#: Ratios reported when both configurations ran (besides the targets, and the others vs bnn).
RATIOS = (("irnet", "fp"), ("bnn", "fp"), ("dirnet+rbd", "irnet"))


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"--input-shape must be three positive integers H,W,C, got {text!r}"
        )
    return shape


def parse_binarizations(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n.removesuffix(RBD) not in BINARIZATIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"--binarizations must be comma-separated names of {BINARIZATIONS}, each "
            f"optionally with {RBD!r}, got {text!r}"
        )
    return names


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_step(name: str, input_shape, batch_size: int, seed: int):
    """A compiled IRNetResNet20 (the `Distiller` around it for `b+rbd`) and a function
    running one training step on a fixed batch."""
    tf.keras.utils.set_random_seed(seed)
    model = IRNetResNet20(input_shape=input_shape, binarization=name.removesuffix(RBD))
    if name.endswith(RBD):
        # The teacher's weights do not change the cost of its forward pass.
        teacher = IRNetResNet20(input_shape=input_shape, binarization="fp")
        model = Distiller(model, teacher)
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, 10, batch_size).astype(np.int32)
    iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    train_function = model.make_train_function()

    def step() -> None:
        logs = train_function(iterator)
        float(logs["loss"])  # wait for the step to finish

    return model, step


def run(args: argparse.Namespace) -> dict:
    steps = {}
    params = {}
    for i, name in enumerate(args.binarizations):
        model, step = build_step(name, args.input_shape, args.batch_size, args.seed + i)
        params[name] = int(getattr(model, "student", model).count_params())
        for _ in range(args.warmup):
            step()
        steps[name] = step
        print(f"built and warmed up {name} ({params[name]:,} parameters)", flush=True)

    # A cycle runs one step of every model back to back; the order rotates every round.
    names = list(steps)
    cycles: list[dict[str, float]] = []  # seconds
    round_medians: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        # The order rotates every round, continuing from the previous round's order.
        rotated = names[r % len(names) :] + names[: r % len(names)]
        this_round = interleaved_cycles(
            {n: steps[n] for n in rotated}, args.steps, rotate_every=args.steps
        )
        this_round = [{n: ms / 1e3 for n, ms in cycle.items()} for cycle in this_round]
        cycles.extend(this_round)
        for name in names:
            round_medians[name].append(statistics.median(c[name] for c in this_round))
        summary = ", ".join(f"{n} {1e3 * round_medians[n][-1]:.1f} ms" for n in names)
        print(f"round {r + 1}/{args.rounds}: {summary}", flush=True)

    medians = {name: statistics.median(c[name] for c in cycles) for name in names}
    pairs = [*TARGETS, *RATIOS]
    # Each distilled configuration against the same network trained alone: RBD's cost.
    pairs += [(n, n.removesuffix(RBD)) for n in names if n.endswith(RBD)]
    pairs += [(name, "bnn") for name in names if not any(name in pair for pair in pairs)]
    pairs = [(a, b) for a, b in pairs if a in medians and b in medians]
    ratios = {f"{a}/{b}": medians[a] / medians[b] for a, b in pairs}
    # The median over cycles of the per-cycle ratio: robust to load that drifts slowly.
    paired = {f"{a}/{b}": statistics.median(c[a] / c[b] for c in cycles) for a, b in pairs}
    result = {
        "benchmark": "train_overhead",
        "model": "IRNetResNet20",
        "config": {
            "batch_size": args.batch_size,
            "input_shape": list(args.input_shape),
            "steps_per_round": args.steps,
            "rounds": args.rounds,
            "warmup_steps": args.warmup,
            "binarizations": names,
        },
        "environment": {
            "tensorflow": tf.__version__,
            "larq_irnet": larq_irnet.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "devices": [d.device_type for d in tf.config.list_logical_devices()],
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            # tf.config reports 0 when the environment sets the count: record that too.
            "TF_NUM_INTRAOP_THREADS": os.environ.get("TF_NUM_INTRAOP_THREADS"),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "parameters": params,
        "median_step_ms": {n: 1e3 * m for n, m in medians.items()},
        "round_median_step_ms": {n: [1e3 * t for t in v] for n, v in round_medians.items()},
        "ratios": ratios,
        "paired_ratios": paired,
    }
    result["targets"] = {
        f"{a}/{b}": {"max": limit, "met": ratios[f"{a}/{b}"] <= limit}
        for (a, b), limit in TARGETS.items()
        if f"{a}/{b}" in ratios
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument(
        "--steps", type=positive_int, default=20, help="timed steps of each model per round"
    )
    parser.add_argument("--rounds", type=positive_int, default=6)
    parser.add_argument("--warmup", type=positive_int, default=3, help="untimed first steps")
    parser.add_argument("--input-shape", type=parse_shape, default=(32, 32, 3), help="H,W,C")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--binarizations",
        type=parse_binarizations,
        default=None,
        help=f"comma-separated zoo binarizations to time, each optionally with {RBD!r} "
        "(distilled from its fp twin); default: --set irnet",
    )
    choice.add_argument(
        "--set",
        choices=tuple(SETS),
        default="irnet",
        help=", ".join(f"{name}: {','.join(names)}" for name, names in SETS.items()),
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    args.binarizations = args.binarizations or SETS[args.set]

    result = run(args)
    print()
    for name, ms in result["median_step_ms"].items():
        print(f"{name:>18}: median step {ms:8.1f} ms")
    for name, ratio in result["ratios"].items():
        paired = result["paired_ratios"][name]
        print(f"{name:>18}: {ratio:.3f}x (median of per-cycle ratios {paired:.3f}x)")
    for name, target in result["targets"].items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"target {name} <= {target['max']:.2f}: {verdict}")
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
