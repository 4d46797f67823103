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
larq-irnet benchmark --models resnet18,resnet20 --repeats 15 --output benchmarks/deploy.json
python benchmarks/deploy.py --tiny   # a seconds-long smoke run
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
from collections.abc import Callable

from larq_irnet.converters._io import write_atomic
from larq_irnet.converters.flatbuffer import op_histogram
from larq_irnet.converters.lce import convert

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

__all__ = ["MODELS", "VARIANTS", "benchmark", "main", "time_once"]

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
class _Runner:
    """One interpreter setting: a callable running one inference."""

    flags: str
    run: Callable[[], None]


def _lce_runner(flatbuffer: bytes, image: np.ndarray, **flags) -> _Runner:
    interpreter = Interpreter(flatbuffer, num_threads=1, **flags)

    def run():
        interpreter.predict(image)

    label = ", ".join(f"{k}={v}" for k, v in flags.items()) or "defaults"
    return _Runner(f"larq_compute_engine Interpreter({label})", run)


def _tflite_runner(flatbuffer: bytes, image: np.ndarray) -> _Runner:
    # TFLite's Python interpreter applies its default delegate, XNNPACK, to float models.
    interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run():
        interpreter.set_tensor(input_index, image)
        interpreter.invoke()
        interpreter.get_tensor(output_index)

    return _Runner("tf.lite.Interpreter (default XNNPACK delegate)", run)


def _candidates(variant: str, flatbuffer: bytes, image: np.ndarray) -> list[_Runner]:
    if variant == "fp32":
        return [
            _lce_runner(flatbuffer, image, use_xnnpack=True),
            _tflite_runner(flatbuffer, image),
        ]
    return [
        _lce_runner(flatbuffer, image, use_indirect_bgemm=bgemm, use_xnnpack=xnnpack)
        for bgemm in (True, False)
        for xnnpack in (True, False)
    ]


def time_once(run: Callable[[], None]) -> float:
    """Wall time of one call, in milliseconds."""
    start = time.perf_counter()
    run()
    return 1000.0 * (time.perf_counter() - start)


def _fastest(candidates: list[_Runner], trials: int = 3) -> tuple[_Runner, dict]:
    timings = {}
    for runner in candidates:
        runner.run()  # warm-up: allocation, delegate set-up, caches
        timings[runner.flags] = statistics.median(time_once(runner.run) for _ in range(trials))
    best = min(candidates, key=lambda r: timings[r.flags])
    return best, timings


def _benchmark_model(name: str, repeats: int, log: Callable[[str], None]) -> dict:
    description, build = MODELS[name]
    rng = np.random.default_rng(0)
    results, runners = {}, {}
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
        best, trials = _fastest(_candidates(variant, result.flatbuffer, image))
        runners[variant] = best
        results[variant] = {
            "size_bytes": len(result.flatbuffer),
            "binary_macs": result.report.binary_macs,
            "float_macs": result.report.float_macs,
            "int8_macs": result.report.int8_macs,
            "op_histogram": op_histogram(result.flatbuffer),
            "interpreter": best.flags,
            "flag_trials_ms": trials,
        }
        del model
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(repeats):
        for variant in VARIANTS:  # interleaved: drifts in machine load hit all twins alike
            timings[variant].append(time_once(runners[variant].run))
    for variant in VARIANTS:
        results[variant]["latency_ms_median"] = statistics.median(timings[variant])
        results[variant]["latency_ms"] = timings[variant]
    irnet, bnn, fp32, int8 = (results[v] for v in ("irnet", "bnn", "fp32", "irnet_int8"))
    ratios = {
        "size_fp32_over_irnet": fp32["size_bytes"] / irnet["size_bytes"],
        "size_fp32_over_irnet_int8": fp32["size_bytes"] / int8["size_bytes"],
        "latency_fp32_over_irnet": fp32["latency_ms_median"] / irnet["latency_ms_median"],
        "latency_fp32_over_irnet_int8": fp32["latency_ms_median"] / int8["latency_ms_median"],
        "latency_irnet_over_bnn": irnet["latency_ms_median"] / bnn["latency_ms_median"],
    }
    return {
        "description": description,
        "variants": results,
        "ratios": ratios,
        "irnet_and_bnn_same_operators": irnet["op_histogram"] == bnn["op_histogram"],
    }


def benchmark(models: list[str], *, repeats: int = 15, log: Callable[[str], None] = print) -> dict:
    """Convert and time every twin of `models`; returns the JSON-able results.

    # Arguments
        models: names of `MODELS` (`"resnet18"`, `"resnet20"`, `"tiny"`).
        repeats: interleaved timed inferences per twin (medians are reported).
        log: where progress lines go.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"benchmark: unknown model(s) {unknown}; expected some of {list(MODELS)}")
    if repeats < 1:
        raise ValueError(f"benchmark: `repeats` must be >= 1, got {repeats}")
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
        "models": {},
    }
    for name in models:
        log(f"{name}: {MODELS[name][0]}")
        results["models"][name] = _benchmark_model(name, repeats, log)
    return results


def format_table(results: dict) -> str:
    """The results as a plain-text table with the ratios."""
    lines = []
    for model in results["models"].values():
        lines.append(f"{model['description']}  (median of {results['repeats']}, 1 thread)")
        lines.append(f"  {'twin':<11} {'size KiB':>10} {'latency ms':>11}  interpreter")
        for variant, v in model["variants"].items():
            lines.append(
                f"  {variant:<11} {v['size_bytes'] / 1024:>10.1f} "
                f"{v['latency_ms_median']:>11.2f}  {v['interpreter']}"
            )
        r = model["ratios"]
        lines.append(
            f"  size FP32/IR-Net {r['size_fp32_over_irnet']:.1f}x "
            f"(int8: {r['size_fp32_over_irnet_int8']:.1f}x); "
            f"speed-up FP32/IR-Net {r['latency_fp32_over_irnet']:.2f}x "
            f"(int8: {r['latency_fp32_over_irnet_int8']:.2f}x); "
            f"IR-Net/ste_sign latency {r['latency_irnet_over_bnn']:.3f} "
            f"(same operators: {model['irnet_and_bnn_same_operators']})"
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
        "--output", default="deploy_benchmark.json", help="JSON results (written atomically)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="benchmark only the tiny network (smoke run)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; returns the exit code."""
    models = ["tiny"] if args.tiny else [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        results = benchmark(models, repeats=args.repeats, log=lambda s: print(s, file=sys.stderr))
    except ValueError as e:
        print(f"larq-irnet benchmark: error: {e}", file=sys.stderr)
        return 2
    write_atomic(args.output, json.dumps(results, indent=2) + "\n")
    print(format_table(results))
    print(f"results written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python benchmarks/deploy.py [--models ...] [--repeats N] [--output F] [--tiny]`."""
    parser = argparse.ArgumentParser(prog="deploy.py", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
