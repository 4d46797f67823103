"""Size and single-thread latency: IR-Net through LCE vs its FP32 twin vs plain ste_sign.

For each network, one run converts four twins of the same architecture (untrained
weights: size and latency do not depend on the values):

- `irnet`: Libra-PB weights, EDE-sign activations (`binarization="irnet"`), via LCE;
- `irnet_int8`: the same with the float layers in int8 (`convert(int8=True)`,
  calibrated on random pixels: for size and latency only);
- `bnn`: plain `ste_sign` weights and activations (`binarization="bnn"`), via LCE;
- `fp32`: the full-precision network (`binarization="fp"`), via LCE's converter (only
  builtin TFLite operators come out), run with XNNPACK.

Interpreter flags are chosen for speed per model: every candidate setting is timed
briefly and the fastest kept (on x86, LCE's `use_indirect_bgemm=True` is what makes
binary convolutions fast). Then the twins run interleaved, one inference each in turn,
`repeats` times, and medians are compared.

```bash
larq-irnet benchmark --models resnet18,resnet20 --repeats 15 --output deploy_benchmark.json
larq-irnet benchmark --tiny   # a seconds-long smoke run
```
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

from larq_irnet._validation import check_output_path
from larq_irnet.converters.flatbuffer import op_histogram, structure
from larq_irnet.converters.lce import convert
from larq_irnet.io import atomic_write

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

__all__ = [
    "MODELS",
    "VARIANTS",
    "Runner",
    "benchmark",
    "interleaved_cycles",
    "interleaved_latency",
    "main",
    "runner_for",
    "time_once",
]

#: The twins of every benchmarked network.
VARIANTS = ("irnet", "irnet_int8", "bnn", "fp32")
_BINARIZATION = {"irnet": "irnet", "irnet_int8": "irnet", "bnn": "bnn", "fp32": "fp"}


def _tiny(binarization: str) -> tf.keras.Model:
    """A four-conv network in the zoo's style, for smoke runs and tests."""
    from larq_irnet.zoo.presets import conv_settings

    settings = conv_settings(binarization=binarization, bits="1w1a", pad_values=1.0)
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    for filters, strides in ((64, 1), (64, 2), (128, 2)):
        x = lq.layers.QuantConv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            use_bias=False,
            input_quantizer=settings.input_quantizer,
            kernel_quantizer=settings.kernel_quantizer,
            pad_values=settings.pad_values if settings.binary_inputs else 0.0,
        )(x)
        x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(10)(x)
    outputs = tf.keras.layers.Activation("softmax")(x)
    return tf.keras.Model(inputs, outputs, name=f"tiny_{binarization}")


def _resnet18(binarization: str) -> tf.keras.Model:
    from larq_irnet.zoo import IRNetResNet18

    return IRNetResNet18(input_shape=(224, 224, 3), stem="imagenet", binarization=binarization)


def _resnet20(binarization: str) -> tf.keras.Model:
    from larq_irnet.zoo import IRNetResNet20

    return IRNetResNet20(input_shape=(32, 32, 3), binarization=binarization)


#: Benchmarked networks: name -> (description, builder taking `binarization=`).
MODELS: dict[str, tuple[str, Callable[[str], tf.keras.Model]]] = {
    "resnet18": ("IR-Net ResNet-18, ImageNet stem, 224x224x3, 1w1a", _resnet18),
    "resnet20": ("IR-Net ResNet-20, CIFAR, 32x32x3, 1w1a", _resnet20),
    "tiny": ("tiny 4-conv network, 32x32x3, 1w1a (smoke test)", _tiny),
}


@dataclasses.dataclass
class Runner:
    """An interpreter set up for one model; `run()` performs one inference.

    # Arguments
        interpreter: which interpreter and flags, e.g.
            `"larq_compute_engine Interpreter(use_indirect_bgemm=True, use_xnnpack=True)"`.
        run: runs one inference on the image the runner was made with.
        setting: the (interpreter, flags) pair, to build the same setting for a twin.
        trials_ms: median milliseconds of each setting tried when choosing this one.
    """

    interpreter: str
    run: Callable[[], None]
    setting: tuple
    trials_ms: dict = dataclasses.field(default_factory=dict)


def _make_runner(flatbuffer: bytes, image: np.ndarray, setting: tuple) -> Runner:
    kind, flags = setting
    if kind == "lce":
        interpreter = Interpreter(flatbuffer, num_threads=1, **dict(flags))

        def run():
            interpreter.predict(image)

        label = ", ".join(f"{k}={v}" for k, v in flags) or "defaults"
        return Runner(f"larq_compute_engine Interpreter({label})", run, setting)
    # TFLite's Python interpreter applies its default delegate, XNNPACK, to float models.
    # TF 2.19 warns that it moves to the ai_edge_litert package (not a dependency here);
    # it is the reference runtime these timings compare LCE with, so that notice is dropped.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        tflite = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    tflite.allocate_tensors()
    input_index = tflite.get_input_details()[0]["index"]
    output_index = tflite.get_output_details()[0]["index"]

    def run():
        tflite.set_tensor(input_index, image)
        tflite.invoke()
        tflite.get_tensor(output_index)

    return Runner("tf.lite.Interpreter (default XNNPACK delegate)", run, setting)


def _settings(binary: bool) -> list[tuple]:
    if not binary:  # a float model: XNNPACK, through LCE's interpreter or TFLite's
        return [("lce", (("use_xnnpack", True),)), ("tflite", ())]
    return [
        ("lce", (("use_indirect_bgemm", bgemm), ("use_xnnpack", xnnpack)))
        for bgemm in (True, False)
        for xnnpack in (True, False)
    ]


def time_once(run: Callable[[], None]) -> float:
    """Wall time of one call, in milliseconds."""
    start = time.perf_counter()
    run()
    return 1000.0 * (time.perf_counter() - start)


def runner_for(
    flatbuffer: bytes,
    image: np.ndarray,
    *,
    binary: bool,
    same_as: Runner | None = None,
    trials: int = 3,
) -> Runner:
    """The fastest single-thread interpreter setting for `flatbuffer`, ready to time.

    Binary (LCE) models try LCE's interpreter with `use_indirect_bgemm` and
    `use_xnnpack` on and off; float models try XNNPACK through LCE's interpreter and
    through `tf.lite.Interpreter`. Each setting runs once to warm up, then `trials`
    times; the lowest median wins.

    # Arguments
        flatbuffer: the `.tflite` model.
        image: one input batch, shape (1, H, W, C), float32.
        binary: whether the model holds LCE operators.
        same_as: use this runner's setting instead of searching (for twins with the
            same operators, so that a comparison measures models, not flags).
        trials: timed runs per setting.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim < 2 or image.shape[0] != 1:
        raise ValueError(
            f"runner_for: `image` must be one batch of shape (1, ...), got {image.shape}"
        )
    if same_as is not None:
        runner = _make_runner(flatbuffer, image, same_as.setting)
        runner.run()
        return runner
    timings, runners = {}, []
    for setting in _settings(binary):
        runner = _make_runner(flatbuffer, image, setting)
        runner.run()  # warm-up: allocation, delegate set-up, caches
        timings[runner.interpreter] = statistics.median(
            time_once(runner.run) for _ in range(trials)
        )
        runners.append(runner)
    best = min(runners, key=lambda r: timings[r.interpreter])
    best.trials_ms = timings
    return best


def interleaved_cycles(
    functions: dict[str, Callable[[], object]], cycles: int, *, rotate_every: int = 1
) -> list[dict[str, float]]:
    """Time functions in turn, one call each per cycle; milliseconds per call per cycle.

    The project's one timing loop (the deploy benchmark and the training-overhead
    measurements use it). Interleaving makes drifts in machine load hit
    every function alike; the order rotates every `rotate_every` cycles, so that no
    function always runs right after the same one.

    # Arguments
        functions: name -> a function to time (its return value is ignored; it must
            finish its work before returning).
        cycles: how many cycles.
        rotate_every: cycles between two rotations of the order.

    # Returns
        One dict per cycle: name -> milliseconds of that call.

    # Raises
        ValueError: `cycles` or `rotate_every` is below 1, or no functions.
    """
    if cycles < 1 or rotate_every < 1 or not functions:
        raise ValueError(
            f"interleaved_cycles: need functions, `cycles` >= 1 and `rotate_every` >= 1, got "
            f"{len(functions)} functions, cycles={cycles}, rotate_every={rotate_every}"
        )
    names = list(functions)
    timings = []
    for i in range(cycles):
        shift = (i // rotate_every) % len(names)
        order = names[shift:] + names[:shift]
        timings.append({name: time_once(functions[name]) for name in order})
    return timings


def interleaved_latency(runners: dict, *, repeats: int = 15) -> dict:
    """Time runners in turn, one inference each, `repeats` times; medians in ms.

    Interleaving makes drifts in machine load hit every model alike; the order rotates
    from one round to the next (`interleaved_cycles`).

    # Arguments
        runners: name -> `Runner` (from `runner_for`).
        repeats: timed inferences per runner.

    # Returns
        name -> {"median_ms", "latency_ms" (all runs), "interpreter", "flag_trials_ms"}.
    """
    if repeats < 1:
        raise ValueError(f"interleaved_latency: `repeats` must be >= 1, got {repeats}")
    cycles = interleaved_cycles({name: r.run for name, r in runners.items()}, repeats)
    timings = {name: [cycle[name] for cycle in cycles] for name in runners}
    return {
        name: {
            "median_ms": statistics.median(timings[name]),
            "latency_ms": timings[name],
            "interpreter": runner.interpreter,
            "flag_trials_ms": runner.trials_ms,
        }
        for name, runner in runners.items()
    }


def _benchmark_model(name: str, repeats: int, instances: int, log: Callable[[str], None]) -> dict:
    description, build = MODELS[name]
    rng = np.random.default_rng(0)
    results, runners, structures = {}, {}, {}
    for variant in VARIANTS:
        tf.keras.backend.clear_session()
        model = build(_BINARIZATION[variant])
        shape = tuple(model.input_shape[1:])
        image = rng.uniform(0, 255, (1, *shape)).astype(np.float32)
        start = time.perf_counter()
        if variant == "irnet_int8":
            calibration = rng.uniform(0, 255, (16, *shape)).astype(np.float32)
            result = convert(model, int8=True, representative_data=calibration)
        else:
            result = convert(model)
        log(f"  {name}/{variant}: converted in {time.perf_counter() - start:.0f} s")
        histogram = op_histogram(result.flatbuffer)
        structures[variant] = structure(result.flatbuffer)
        # bnn has IR-Net's graph: same flags, so the comparison measures the models.
        same_as = None
        if variant == "bnn" and structures["bnn"] == structures["irnet"]:
            same_as = runners["irnet#0"]
        binary = variant != "fp32"
        first = runner_for(result.flatbuffer, image, binary=binary, same_as=same_as)
        runners[f"{variant}#0"] = first
        # Several interpreters per model: where an interpreter's buffers land in memory
        # moves its latency by a few percent, as much as the differences measured here.
        for k in range(1, instances):
            runners[f"{variant}#{k}"] = runner_for(
                result.flatbuffer, image, binary=binary, same_as=first
            )
        results[variant] = {
            "size_bytes": len(result.flatbuffer),
            "binary_macs": result.report.binary_macs,
            "float_macs": result.report.float_macs,
            "int8_macs": result.report.int8_macs,
            "op_histogram": histogram,
            "interpreter": first.interpreter,
            "flag_trials_ms": (same_as or first).trials_ms,
        }
        del model
    latency = interleaved_latency(runners, repeats=repeats)
    for variant in VARIANTS:
        runs = [latency[f"{variant}#{k}"] for k in range(instances)]
        pooled = [t for run in runs for t in run["latency_ms"]]
        results[variant]["latency_ms_median"] = statistics.median(pooled)
        results[variant]["instance_medians_ms"] = [run["median_ms"] for run in runs]
        results[variant]["latency_ms"] = pooled
    irnet, bnn, fp32, int8 = (results[v] for v in ("irnet", "bnn", "fp32", "irnet_int8"))
    ratios = {
        "size_fp32_over_irnet": fp32["size_bytes"] / irnet["size_bytes"],
        "size_fp32_over_irnet_int8": fp32["size_bytes"] / int8["size_bytes"],
        "latency_fp32_over_irnet": fp32["latency_ms_median"] / irnet["latency_ms_median"],
        "latency_fp32_over_irnet_int8": fp32["latency_ms_median"] / int8["latency_ms_median"],
        "latency_irnet_over_bnn": irnet["latency_ms_median"] / bnn["latency_ms_median"],
    }
    spread = {
        variant: max(v["instance_medians_ms"]) / min(v["instance_medians_ms"])
        for variant, v in results.items()
    }
    return {
        "description": description,
        "variants": results,
        "ratios": ratios,
        "instance_spread": spread,
        # Same operators, shapes, dtypes and options: Libra-PB's scale and EDE leave no
        # trace in the deployed graph.
        "irnet_and_bnn_same_graph": structures["irnet"] == structures["bnn"],
    }


def benchmark(
    models: list[str],
    *,
    repeats: int = 15,
    instances: int = 3,
    log: Callable[[str], None] = print,
) -> dict:
    """Convert and time every twin of `models`; returns the JSON-able results.

    # Arguments
        models: names of `MODELS` (`"resnet18"`, `"resnet20"`, `"tiny"`).
        repeats: interleaved rounds; each round runs every interpreter once.
        instances: interpreters per twin; a twin's latency is the median over all runs
            of all its interpreters (`instance_spread` = slowest / fastest instance).
        log: where progress lines go.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"benchmark: unknown model(s) {unknown}; expected some of {list(MODELS)}")
    if repeats < 1 or instances < 1:
        raise ValueError(
            f"benchmark: `repeats` and `instances` must be >= 1, got {repeats}, {instances}"
        )
    results = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "larq_compute_engine": lce.__version__,
        },
        "threads": 1,
        "repeats": repeats,
        "instances": instances,
        "models": {},
    }
    for name in models:
        log(f"{name}: {MODELS[name][0]}")
        results["models"][name] = _benchmark_model(name, repeats, instances, log)
    return results


def format_table(results: dict) -> str:
    """The results as a plain-text table with the ratios."""
    lines = []
    for model in results["models"].values():
        lines.append(
            f"{model['description']}  (median of {results['repeats']} runs x "
            f"{results['instances']} interpreters, 1 thread)"
        )
        lines.append(f"  {'twin':<11} {'size KiB':>10} {'latency ms':>11}  interpreter")
        for variant, v in model["variants"].items():
            lines.append(
                f"  {variant:<11} {v['size_bytes'] / 1024:>10.1f} "
                f"{v['latency_ms_median']:>11.2f}  {v['interpreter']}"
            )
        r = model["ratios"]
        spread = max(model["instance_spread"].values())
        lines.append(
            f"  size FP32/IR-Net {r['size_fp32_over_irnet']:.1f}x "
            f"(int8: {r['size_fp32_over_irnet_int8']:.1f}x); "
            f"speed-up FP32/IR-Net {r['latency_fp32_over_irnet']:.2f}x "
            f"(int8: {r['latency_fp32_over_irnet_int8']:.2f}x); "
            f"IR-Net/ste_sign latency {r['latency_irnet_over_bnn']:.3f} "
            f"(same graph: {model['irnet_and_bnn_same_graph']}; interpreters of one "
            f"model differ by up to {spread:.3f}x)"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's command-line options."""
    parser.add_argument(
        "--models",
        default="resnet18,resnet20",
        help=f"comma-separated, from {', '.join(MODELS)} (default: resnet18,resnet20)",
    )
    parser.add_argument(
        "--repeats", type=int, default=15, help="interleaved timed runs per twin (default 15)"
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=3,
        help="interpreters per twin, runs pooled (default 3)",
    )
    parser.add_argument(
        "--output", default="deploy_benchmark.json", help="JSON results (written atomically)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="benchmark only the tiny network (smoke run)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; returns the exit code."""
    models = ["tiny"] if args.tiny else [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        check_output_path(args.output, "--output")
        results = benchmark(
            models,
            repeats=args.repeats,
            instances=args.instances,
            log=lambda line: print(line, file=sys.stderr),
        )
    except ValueError as e:
        print(f"larq-irnet benchmark: error: {e}", file=sys.stderr)
        return 2
    atomic_write(args.output, json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"results written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The benchmark as a script: `[--models ...] [--repeats N] [--output F] [--tiny]`."""
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
