"""The shipped Fashion-MNIST weights: the accuracy the docs state, in Keras and through LCE.

Three variants under one name (`larq_irnet.zoo.registry.WEIGHTS["fashion_mnist"]`): IR-Net's
binary ResNet-20 (the default; the tuned protocol's row), its full-precision twin (RBD's
teacher) and DIR-Net's binary ResNet-20 distilled from that twin (the dirnet+rbd row). A
second name, `fashion_mnist_paper`, keeps the paper protocol's IR-Net.
"""

import json
from pathlib import Path

from larq_irnet.converters import convert
from larq_irnet.converters.evaluate import evaluate_tflite
from larq_irnet.converters.flatbuffer import op_histogram
from larq_irnet.legacy_h5 import estimator_state_entries
from larq_irnet.training import TrainOptions
from larq_irnet.training import trainer as training
from larq_irnet.zoo import IRNetResNet20
from larq_irnet.zoo.registry import get_entry, verified_path

import pytest

# (name, binarization): (final-epoch test top-1 as the README and results page state it,
# as printed there; correct of the first 500 test images)
STATED = {
    ("fashion_mnist", "irnet"): (0.9002, "90.02%", 454),
    ("fashion_mnist", "fp"): (0.9166, "91.66%", 470),
    ("fashion_mnist", "dirnet"): (0.9005, "90.05%", 458),
    ("fashion_mnist_paper", "irnet"): (0.8784, "87.84%", 449),
}
SHIPPED_NOW = [key for key in STATED if key[0] == "fashion_mnist"]
SHIPPED = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "shipped_weights.json"
SHAPE = dict(input_shape=(28, 28, 1), num_classes=10)


@pytest.mark.slow  # the full test set, in Keras and through LCE
@pytest.mark.parametrize("name, binarization", sorted(STATED))
def test_fashion_mnist_weights_reach_the_stated_accuracy(fashion_mnist, name, binarization):
    _, (x_test, y_test) = fashion_mnist
    accuracy, _, _ = STATED[name, binarization]
    model = IRNetResNet20(binarization=binarization, weights=name, **SHAPE)
    result = convert(model, strict=True)
    binary_convs = op_histogram(result.flatbuffer).get("LceBconv2d", 0)
    assert binary_convs == (0 if binarization == "fp" else 18)
    evaluation = evaluate_tflite(
        result.flatbuffer, x_test, y_test, keras_model=model, progress=False
    )
    assert evaluation.examples == 10000
    assert evaluation.keras_accuracy == pytest.approx(accuracy, abs=5e-4)
    assert abs(evaluation.accuracy - evaluation.keras_accuracy) <= 0.003
    assert evaluation.agreement >= 0.995


@pytest.mark.parametrize("name, binarization", sorted(STATED))
def test_shipped_weights_classify_the_first_test_images(fashion_mnist, name, binarization):
    # The fast tier's check of each shipped file (the test above scores all 10,000): it
    # passes its sha256 check, holds no estimator state (rewritten without EDE's t and k,
    # issue #13 item 7) and classifies the stated count of the first 500 test images.
    _, (x_test, y_test) = fashion_mnist
    assert estimator_state_entries(verified_path(name, binarization)) == []
    model = IRNetResNet20(binarization=binarization, weights=name, **SHAPE)
    predicted = model.predict(x_test[:500], batch_size=250, verbose=0).argmax(-1)
    assert abs(int((predicted == y_test[:500]).sum()) - STATED[name, binarization][2]) <= 1


def test_the_default_variant_is_irnet_and_the_teacher_by_name_is_fp():
    # `weights="fashion_mnist"` without a binarization is IR-Net's (the model's default);
    # `--distill-from fashion_mnist` resolves to the fp file, checked by sha256.
    assert get_entry("fashion_mnist").binarization == "irnet"
    teacher = training._resolve_teacher("fashion_mnist", 1.0, 0.0, 4.0)
    assert teacher.zoo_weights and teacher.source == "fashion_mnist"
    assert teacher.sha256 == get_entry("fashion_mnist", "fp").sha256


@pytest.mark.slow  # trains a few steps of the real ResNet-20 against the real teacher
def test_a_student_distils_from_the_shipped_teacher(tmp_path, fashion_mnist):
    run_dir = tmp_path / "run"
    summary = training.train(
        "fashion_mnist-resnet20-1w1a",
        run_dir,
        TrainOptions(
            distill_from="fashion_mnist",
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            train_limit=64,
            verbose=0,
        ),
    )
    assert summary["distill_from"] == "fashion_mnist"
    # Attention maps are L2-normalised per sample: the distance lies in [0, 2] per point.
    assert 0 < summary["final_test_alignment_loss"] <= 2
    config = json.loads((run_dir / "config.json").read_text())
    assert config["distillation"]["teacher_sha256"] == get_entry("fashion_mnist", "fp").sha256


@pytest.mark.parametrize("name, binarization", SHIPPED_NOW)
def test_the_registry_states_what_shipping_measured(name, binarization):
    # benchmarks/ship_weights.py's report of each shipped file: the registry entry (file,
    # sha256) and this file's STATED follow it.
    report = json.loads(SHIPPED.read_text())[name][binarization]
    entry = get_entry(name, binarization)
    assert (entry.filename, entry.sha256) == (Path(report["file"]).name, report["sha256"])
    assert f"{100 * report['keras_accuracy']:.2f}%" == STATED[name, binarization][1]
    assert report["first_500_correct"] == STATED[name, binarization][2]
    assert report["examples"] == 10000 and report["agreement"] >= 0.995
    assert abs(report["lce_accuracy"] - report["keras_accuracy"]) <= 0.003
    assert report["lce_bconv2d"] == (0 if binarization == "fp" else 18)
