"""Turn a finished training run into shipped zoo weights, and measure what they reach.

The zoo's weight files (`larq_irnet/zoo/weights/`, registered in
`larq_irnet.zoo.registry.WEIGHTS`) are the weights alone of a run's final model, without
estimator state. This script writes that file from a run directory, loads it back the way
a user does (the zoo model built from the run's recipe, `load_weights` of the file) and
scores it on the full Fashion-MNIST test set in Keras and, converted, in LCE's
interpreter. It prints the sha256 and the figures a registry entry and
`tests/test_shipped_weights.py` state:

    python benchmarks/ship_weights.py /root/larq-irnet-runs/tuned/fp-seed0 \
        --output zoo/weights/fp_resnet20_fashion_mnist.h5 --report /tmp/fp.json

The registry entry itself (file name, sha256, description) is written by hand: which run
is shipped is a decision, recorded with its reasons in docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_irnet  # noqa: E402, F401  (first: selects Keras 2, registers the quantizers)
from larq_irnet._validation import first_line  # noqa: E402
from larq_irnet.io import atomic_path, atomic_write  # noqa: E402
from larq_irnet.legacy_h5 import estimator_state_entries  # noqa: E402
from larq_irnet.training import run_directory  # noqa: E402
from larq_irnet.training.recipes import Recipe, model_function  # noqa: E402

#: Test images whose correct count the fast test tier checks (`STATED` in
#: tests/test_shipped_weights.py).
FIRST_IMAGES = 500


def run_recipe(config: dict[str, Any], where: Path) -> Recipe:
    """The `Recipe` a run's `config.json` holds (as `Recipe.to_dict` wrote it).

    # Raises
        ValueError: `config` holds no recipe, or one `Recipe` does not accept.
    """
    try:
        fields = dict(config["recipe"])
        fields["decay_epochs"] = tuple(fields.get("decay_epochs", ()))
        return Recipe(**fields)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{where}: no recipe larq-irnet reads ({first_line(error)}); expected a run's"
        ) from None


def _check_same_model(trained, shipped, images):
    """Refuse a reloaded model that differs from the trained one in weights or outputs.

    Returns the reloaded model's outputs on `images`.
    """
    import numpy as np

    if len(trained.weights) != len(shipped.weights) or any(
        a.shape != b.shape or not np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(trained.weights, shipped.weights, strict=True)
    ):
        raise ValueError(
            "the recipe's model holds other weights than the trained model after loading "
            "the file; expected the run's own architecture"
        )
    a = trained.predict(images, batch_size=250, verbose=0)
    b = shipped.predict(images, batch_size=250, verbose=0)
    if not np.allclose(a, b, rtol=1e-5, atol=1e-5):
        raise ValueError(
            "the recipe's model, with the trained weights, computes other outputs than the "
            "trained model; expected the run's own architecture (bits, structure)"
        )
    return b


def ship(run_dir: Path, output: Path, *, data_dir: str | None = None) -> dict[str, Any]:
    """Write `run_dir`'s final weights to `output` and score them, in Keras and LCE.

    Everything is checked before `output` is replaced: the file is written to a
    temporary beside it, reloaded into the recipe's model, compared with the trained
    model (same weights, same outputs on the first `FIRST_IMAGES` test images) and
    scored; only then is it moved into place. On any error `output` is left untouched.

    # Arguments
        run_dir: a finished `larq-irnet train` run on Fashion-MNIST (`config.json`,
            `summary.json`, `model.h5`; a distilled run's `model.h5` is the student).
        output: the weights file to write (`.h5`).
        data_dir: Fashion-MNIST's directory (default: the Debian package's).

    # Returns
        The report: run, file, sha256, binarization, the run's own final test accuracy,
        Keras and LCE accuracy of the reloaded file over all 10,000 test images, top-1
        agreement, the count of `LceBconv2d` ops, and the correct count of the first
        `FIRST_IMAGES` test images.

    # Raises
        ValueError: (one line) a missing or unreadable run directory or file, a run not
            on Fashion-MNIST or not finished, unreadable data, or weights that do not
            reload into the recipe's model as the trained model computes.
    """
    from larq_irnet.converters import convert
    from larq_irnet.converters.evaluate import evaluate_tflite
    from larq_irnet.converters.flatbuffer import op_histogram
    from larq_irnet.training.data import dataset_info, load_fashion_mnist
    from larq_irnet.zoo.loading import load_model
    from larq_irnet.zoo.registry import sha256sum

    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a directory; expected a finished larq-irnet train run")
    config = run_directory.read_config(run_dir)
    if config is None:
        raise ValueError(
            f"{run_dir / run_directory.CONFIG}: missing; expected the config.json of a finished run"
        )
    summary = run_directory.read_summary(run_dir)
    if isinstance(summary, str):
        raise ValueError(f"{summary}; expected the summary.json of a finished run")
    if summary.get("dataset") != "fashion_mnist":
        raise ValueError(
            f"{run_dir}: trained on {summary.get('dataset')!r}; expected a Fashion-MNIST run"
        )
    recipe = run_recipe(config, run_dir / run_directory.CONFIG)
    model_file = run_dir / summary.get("model_file", run_directory.MODEL)
    if not model_file.is_file():
        raise ValueError(f"{model_file}: missing; expected the run's final model")
    try:
        _, (x_test, y_test) = load_fashion_mnist(data_dir)
    except (OSError, ValueError) as error:
        raise ValueError(f"Fashion-MNIST: {first_line(error)}") from None
    try:
        trained = load_model(model_file)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{model_file}: cannot be loaded ({first_line(error)})") from None
    # `train` writes a binarization into the recipe only when one was passed; the
    # summary always names the one trained.
    binarization = summary.get("binarization")
    overrides = {} if binarization is None else {"binarization": binarization}
    info = dataset_info("fashion_mnist")
    images = x_test.astype("float32")
    with atomic_path(output) as temporary:
        trained.save_weights(str(temporary), save_format="h5")
        if estimator_state_entries(temporary):
            raise ValueError(f"{output}: still holds estimator state; expected weights alone")
        model = model_function(recipe)(
            input_shape=info.input_shape,
            num_classes=info.num_classes,
            **{**recipe.model_kwargs, **overrides},
        )
        try:
            model.load_weights(str(temporary))
        except ValueError as error:
            raise ValueError(
                f"{model_file}: its weights do not load into the recipe's model "
                f"({first_line(error)})"
            ) from None
        outputs = _check_same_model(trained, model, images[:FIRST_IMAGES])
        result = convert(model, strict=True)
        evaluation = evaluate_tflite(
            result.flatbuffer, images, y_test, keras_model=model, progress=False
        )
        sha256 = sha256sum(temporary)
    predicted = outputs.argmax(-1)
    return {
        "run": str(run_dir),
        "file": str(output),
        "sha256": sha256,
        "binarization": binarization,
        "epochs": summary.get("epochs"),
        "seed": summary.get("seed"),
        "run_final_test_accuracy": summary.get("final_test_accuracy"),
        "keras_accuracy": evaluation.keras_accuracy,
        "lce_accuracy": evaluation.accuracy,
        "agreement": evaluation.agreement,
        "examples": evaluation.examples,
        "lce_bconv2d": op_histogram(result.flatbuffer).get("LceBconv2d", 0),
        f"first_{FIRST_IMAGES}_correct": int((predicted == y_test[:FIRST_IMAGES]).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ship_weights.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished larq-irnet train run")
    parser.add_argument("--output", type=Path, required=True, help="weights file to write")
    parser.add_argument("--report", type=Path, help="also write the report here (JSON)")
    parser.add_argument("--data-dir", help="Fashion-MNIST directory (default: Debian's)")
    args = parser.parse_args(argv)
    if args.output.suffix != ".h5":
        parser.error(f"--output {args.output}: expected a .h5 file name")
    for option, path in (("--output", args.output), ("--report", args.report)):
        if path is not None and not path.parent.is_dir():
            parser.error(f"{option} {path}: its directory does not exist")
    try:
        report = ship(args.run_dir, args.output, data_dir=args.data_dir)
    except ValueError as error:
        parser.error(str(error))
    text = json.dumps(report, indent=2) + "\n"
    if args.report:
        atomic_write(args.report, text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
