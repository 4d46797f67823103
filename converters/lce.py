"""Converting a Keras model with Larq Compute Engine, with a report that proves the result.

```python
import larq_irnet
from larq_irnet.converters import convert

result = convert(model, strict=True)  # raises if a 1w1a layer stayed float
print(result.report)                  # per layer: LceBconv2d or float op + reason
result.save("model.tflite")           # atomic
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

from larq_irnet.converters import int8 as _int8
from larq_irnet.converters.flatbuffer import read_graph
from larq_irnet.converters.report import ConversionReport, binarized_layers, build_report
from larq_irnet.io import atomic_write

import larq_compute_engine as lce
import numpy as np
import tensorflow as tf

__all__ = ["LCE_OPTIONS", "ConversionError", "ConversionResult", "convert"]

#: The keyword arguments of `larq_compute_engine.convert_keras_model` (LCE 0.16).
LCE_OPTIONS = (
    "inference_input_type",
    "inference_output_type",
    "target",
    "experimental_default_int8_range",
)


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """A converted model: the flatbuffer and what it contains.

    # Arguments
        flatbuffer: the `.tflite` model, for LCE's interpreter or `lce_benchmark_model`.
        report: per binarized layer what it became, MACs, operators, size.
    """

    flatbuffer: bytes
    report: ConversionReport

    def save(self, path: str | os.PathLike) -> Path:
        """Write the flatbuffer to `path` atomically (an existing file is replaced whole)."""
        return atomic_write(path, self.flatbuffer)


class ConversionError(ValueError):
    """A strict conversion left binarized layers in float; `.report` says what happened."""

    def __init__(self, message: str, report: ConversionReport):
        super().__init__(message)
        self.report = report


_FALLBACK_WARNING = "Saved-model conversion failed, falling back to graphdef-based conversion."


class _SkipSavedModel(Exception):
    pass


@contextlib.contextmanager
def _without_saved_model_export(model: tf.keras.Model):
    """Make LCE take its graphdef route for `model` (the route it falls back to).

    `convert_keras_model` first exports a SavedModel, which traces every layer's call
    function again: minutes for an 80-layer zoo ResNet. Its fallback freezes the
    model's concrete function instead, several times faster, and yields the same
    operators and outputs (checked in tests/test_converters.py). The export is skipped
    by failing this model's `save` for the duration of the call.
    """

    def skip(*args, **kwargs):
        raise _SkipSavedModel("larq-irnet: use LCE's graphdef conversion")

    model.save = skip
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_FALLBACK_WARNING)
            yield
    finally:
        del model.save


def _lce_convert(model: tf.keras.Model, saved_model: bool, options: dict) -> bytes:
    if not saved_model:
        try:
            with _without_saved_model_export(model):
                return lce.convert_keras_model(model, **options)
        except Exception:  # noqa: BLE001 (any failure: retry on LCE's default route)
            pass
    return lce.convert_keras_model(model, **options)


def _strict_message(report: ConversionReport) -> str:
    details = "; ".join(
        f"{layer.layer!r} ({layer.layer_type} -> {', '.join(layer.ops) or 'no operator'}: "
        f"{layer.reason})"
        for layer in report.float_layers
    )
    return (
        f"strict conversion: {len(report.float_layers)} binarized (1w1a) layer(s) did not "
        f"become LceBconv2d: {details}"
    )


def convert(
    model: tf.keras.Model,
    *,
    strict: bool = False,
    int8: bool = False,
    representative_data: np.ndarray | None = None,
    saved_model: bool = False,
    **lce_options: Any,
) -> ConversionResult:
    """Convert `model` with LCE and report what each binarized layer became.

    The report lists every Keras layer with a binary quantizer and the flatbuffer
    operator it became (`LceBconv2d`, or a float operator with the likely reason:
    non-sign quantizer, reshape between quantizer and conv, dense or depthwise layer,
    ...), the binary and float MACs, the operator histogram and the size.

    With `int8=True`, the conv and dense layers LCE keeps in float (stem, downsampling
    shortcuts, classifier) run in int8 with int8 weights: LCE 0.16 has no
    representative-dataset option, so the ranges are calibrated here on
    `representative_data` and handed to LCE as fake-quantization ops (see
    `larq_irnet.converters.int8`). The residual stream and the binary convolutions'
    inputs stay float32, and so do the model's inputs and outputs.

    # Arguments
        model: a built Keras model (Larq layers included).
        strict: raise `ConversionError`, naming the layers and reasons, if any layer
            whose weights and inputs are both binary did not become `LceBconv2d`.
        int8: quantize the float layers to int8 (needs `representative_data`).
        representative_data: model inputs to calibrate the int8 ranges on, e.g. a few
            hundred training images as the model takes them (raw pixels for the zoo).
        saved_model: let LCE export a SavedModel first, as `convert_keras_model` does
            by default; otherwise LCE's graphdef route is used directly (the one it
            falls back to; same operators, several times faster for deep models).
        **lce_options: passed to `larq_compute_engine.convert_keras_model`:
            `inference_input_type`, `inference_output_type`, `target`,
            `experimental_default_int8_range` (LCE's "dummy quantization", for latency
            tests only: one fixed range for every tensor without one).

    # Returns
        A `ConversionResult` with `.flatbuffer` (bytes) and `.report`.

    # Raises
        ConversionError: `strict=True` and a binarized layer stayed float.
    """
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"convert: `model` must be a tf.keras.Model, got {type(model).__name__}")
    if not model.built:
        raise ValueError(
            f"convert: model {model.name!r} is not built; call it on an input or give it "
            "an input shape first"
        )
    unknown = sorted(set(lce_options) - set(LCE_OPTIONS))
    if unknown:
        raise TypeError(
            f"convert: unknown LCE option(s) {unknown}; LCE 0.16 accepts {list(LCE_OPTIONS)}"
        )
    if int8 and representative_data is None:
        raise ValueError(
            "convert: int8=True needs `representative_data` (e.g. a few hundred training "
            "images) to calibrate the int8 ranges. LCE's own "
            "experimental_default_int8_range=(min, max) applies one range to every "
            "tensor and is meant for latency tests only; pass it explicitly if that is "
            "what you want."
        )
    if representative_data is not None and not int8:
        raise ValueError("convert: `representative_data` is only used with int8=True")

    layers = binarized_layers(model)
    to_convert = model
    if int8:
        # Layers with sign weights and sign inputs become LceBconv2d: leave them alone.
        binary = {b.path[-1] for b in layers if b.weights == b.activations == "sign"}
        ranges = _int8.calibrate_ranges(model, representative_data, binary=binary)
        to_convert = _int8.fake_quantized_copy(model, ranges)
    flatbuffer = _lce_convert(to_convert, saved_model, lce_options)
    graph = read_graph(flatbuffer)
    histogram: dict[str, int] = {}
    for op in graph.operators:
        histogram[op.name] = histogram.get(op.name, 0) + 1
    report = build_report(graph, layers, histogram, len(flatbuffer), int8=int8)
    if strict and report.float_layers:
        raise ConversionError(_strict_message(report), report)
    return ConversionResult(flatbuffer, report)
