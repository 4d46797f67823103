"""The shipped Fashion-MNIST weights: the accuracy the docs state, in Keras and through LCE."""

from larq_irnet.converters import convert
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.io import estimator_state_entries
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import get_entry, verified_path

import pytest

STATED_ACCURACY = 0.8784  # README, IRNetResNet20's docstring, the registry entry


@pytest.mark.slow  # the full test set, in Keras and through LCE
def test_fashion_mnist_weights_reach_the_stated_accuracy(fashion_mnist):
    _, (x_test, y_test) = fashion_mnist
    assert "87.84%" in get_entry("fashion_mnist", "irnet").description
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
    result = convert(model, strict=True)
    evaluation = evaluate_tflite(
        result.flatbuffer, x_test, y_test, keras_model=model, progress=False
    )
    assert evaluation.examples == 10000
    assert evaluation.keras_accuracy == pytest.approx(STATED_ACCURACY, abs=5e-4)
    assert abs(evaluation.accuracy - evaluation.keras_accuracy) <= 0.003
    assert evaluation.agreement >= 0.995


def test_shipped_weights_classify_the_first_test_images(fashion_mnist):
    # The fast tier's check of the shipped file (the test above scores all 10,000): it
    # passes its sha256 check, holds no estimator state (rewritten without EDE's t and k,
    # issue #13 item 7) and classifies 449 of the first 500 test images.
    _, (x_test, y_test) = fashion_mnist
    assert estimator_state_entries(verified_path("fashion_mnist")) == []
    model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights="fashion_mnist")
    predicted = model.predict(x_test[:500], batch_size=250, verbose=0).argmax(-1)
    assert abs(int((predicted == y_test[:500]).sum()) - 449) <= 1
