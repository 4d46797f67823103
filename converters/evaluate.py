"""Accuracy of a converted model in LCE's interpreter, and its agreement with Keras.

```python
from larq_irnet.converters.evaluate import evaluate_tflite

result = evaluate_tflite(flatbuffer, x_test, y_test, keras_model=model)
result.accuracy, result.agreement
```
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter
from tqdm import tqdm

__all__ = ["AGREEMENT_THRESHOLD", "EvaluationResult", "evaluate_tflite", "lce_interpreter"]

#: Top-1 agreement with the Keras model below which a conversion is considered broken.
AGREEMENT_THRESHOLD = 0.995


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Accuracy of a `.tflite` model on a labelled set.

    # Arguments
        examples: how many examples were scored.
        accuracy: top-1 accuracy of the LCE interpreter's predictions.
        keras_accuracy: top-1 accuracy of the Keras model, when one was given.
        agreement: fraction of examples where LCE's and Keras' top-1 classes agree.
        seconds: wall time of the interpreter over all examples.
    """

    examples: int
    accuracy: float
    keras_accuracy: float | None = None
    agreement: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """A JSON-serializable form."""
        return dataclasses.asdict(self)


def lce_interpreter(flatbuffer: bytes, *, num_threads: int = 1) -> Interpreter:
    """LCE's interpreter with the fastest x86 settings for binary models.

    `use_indirect_bgemm=True` selects LCE's optimized indirect-BGEMM binary conv
    kernel; the default reference-style path is several times slower on x86.
    """
    return Interpreter(flatbuffer, num_threads=num_threads, use_indirect_bgemm=True)


def evaluate_tflite(
    flatbuffer: bytes,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    keras_model: tf.keras.Model | None = None,
    num_threads: int = 1,
    chunk: int = 250,
    progress: bool = True,
) -> EvaluationResult:
    """Score a converted model with LCE's interpreter, optionally against its Keras model.

    Images go in as float32 raw pixels (the project's models rescale inside).

    # Arguments
        flatbuffer: the `.tflite` model.
        images: inputs (N, H, W, C), as the Keras model takes them.
        labels: integer class labels (N,).
        keras_model: the model the flatbuffer was converted from; adds Keras' accuracy
            and the top-1 agreement.
        num_threads: interpreter threads.
        chunk: images per interpreter call (the interpreter runs them one by one).
        progress: show a progress bar on stderr.

    # Raises
        ValueError: `flatbuffer` is not a TFLite model LCE's interpreter loads, the
            labels do not match the images, or the images have the wrong shape.
    """
    import time

    images = np.asarray(images)
    labels = np.asarray(labels)
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"evaluate_tflite: need as many labels as images (> 0), got {len(images)} "
            f"images and {len(labels)} labels"
        )
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4-8.
    if bytes(flatbuffer[4:8]) != b"TFL3":
        raise ValueError(
            f"not a TFLite model ({len(flatbuffer)} bytes, no TFL3 identifier); expected a "
            ".tflite file written by `larq-irnet convert`"
        )
    try:
        interpreter = lce_interpreter(flatbuffer, num_threads=num_threads)
    except (RuntimeError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"LCE's interpreter cannot load the model: {first_line}") from e
    expected = tuple(interpreter.input_shapes[0][1:])
    if tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"evaluate_tflite: the model takes inputs of shape {expected}, the images have "
            f"shape {tuple(images.shape[1:])}"
        )
    predictions = []
    start = time.perf_counter()
    with tqdm(total=len(images), desc="LCE", unit="img", disable=not progress) as bar:
        for i in range(0, len(images), chunk):
            batch = images[i : i + chunk].astype(np.float32)
            predictions.append(np.asarray(interpreter.predict(batch)).argmax(-1))
            bar.update(len(batch))
    seconds = time.perf_counter() - start
    predicted = np.concatenate(predictions)
    accuracy = float(np.mean(predicted == labels))
    if keras_model is None:
        return EvaluationResult(len(labels), accuracy, seconds=seconds)
    keras_predicted = keras_model.predict(images.astype(np.float32), batch_size=250, verbose=0)
    keras_predicted = np.asarray(keras_predicted).argmax(-1)
    return EvaluationResult(
        examples=len(labels),
        accuracy=accuracy,
        keras_accuracy=float(np.mean(keras_predicted == labels)),
        agreement=float(np.mean(keras_predicted == predicted)),
        seconds=seconds,
    )
