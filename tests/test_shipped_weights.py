"""The shipped Fashion-MNIST weights: the accuracy the docs state, in Keras and through LCE."""

from larq_irnet.converters import convert
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import WEIGHTS

import pytest

STATED_ACCURACY = 0.8784  # README, IRNetResNet20's docstring, the registry entry


@pytest.mark.slow  # the full test set, in Keras and through LCE
def test_fashion_mnist_weights_reach_the_stated_accuracy(fashion_mnist):
    _, (x_test, y_test) = fashion_mnist
    assert "87.84%" in WEIGHTS["fashion_mnist"].description
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
    result = convert(model, strict=True)
    evaluation = evaluate_tflite(
        result.flatbuffer, x_test, y_test, keras_model=model, progress=False
    )
    assert evaluation.examples == 10000
    assert evaluation.keras_accuracy == pytest.approx(STATED_ACCURACY, abs=5e-4)
    assert abs(evaluation.accuracy - evaluation.keras_accuracy) <= 0.003
    assert evaluation.agreement >= 0.995
