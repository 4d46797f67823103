"""`larq-irnet train`: the command line of `larq_irnet.training.train`."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from larq_irnet._validation import (
    int_argument,
    non_negative_int_argument,
    positive_int_argument,
)
from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.training import run_directory
from larq_irnet.training.recipes import OPTIMIZERS, RECIPES
from larq_irnet.training.run_directory import RunDirectoryInUse
from larq_irnet.training.trainer import (
    DISTILLATION_DEFAULTS,
    INTERRUPTED,
    MAX_SEED,
    STRATEGIES,
    TrainOptions,
    train,
)
from larq_irnet.zoo import BINARIZATIONS

__all__ = ["add_parser"]


def _recipe_table() -> str:
    header = ("recipe", "dataset", "model", "epochs", "batch", "optimizer", "lr", "wd", "EDE T")
    rows = [header]
    for name in sorted(RECIPES):
        r = RECIPES[name]
        optimizer = f"{r.optimizer}{' nesterov' if r.nesterov else ''}, {r.schedule}"
        model = f"{r.model}({', '.join(f'{k}={v}' for k, v in r.model_kwargs.items())})"
        rows.append(
            (
                name,
                r.dataset,
                model,
                str(r.epochs),
                str(r.batch_size),
                optimizer,
                f"{r.learning_rate:g}",
                f"{r.weight_decay:g}",
                f"{r.ede_t_min:g}..{r.ede_t_max:g}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _seed(text: str) -> int:
    return int_argument(text, minimum=0, maximum=MAX_SEED)


def _default_output_dir(args: argparse.Namespace) -> Path:
    parts = [args.recipe]
    if args.binarization:
        parts.append(args.binarization)
    parts.append(f"seed{args.seed}")
    return Path("runs") / "-".join(parts)


def _run(args: argparse.Namespace) -> int:
    if args.list_recipes:
        print(_recipe_table())
        return 0
    if not args.recipe:
        print("larq-irnet train: error: pass --recipe NAME (see --list-recipes)", file=sys.stderr)
        return 2
    distillation = {
        "--alignment-weight": args.alignment_weight,
        "--logits-weight": args.logits_weight,
        "--distill-temperature": args.distill_temperature,
    }
    given = [flag for flag, value in distillation.items() if value is not None]
    if given and args.distill_from is None:
        print(
            f"larq-irnet train: error: {', '.join(given)} only "
            f"{'applies' if len(given) == 1 else 'apply'} with --distill-from "
            "(a teacher); pass one or drop them",
            file=sys.stderr,
        )
        return 2
    weights = {
        name: value if value is not None else DISTILLATION_DEFAULTS[name]
        for name, value in zip(DISTILLATION_DEFAULTS, distillation.values(), strict=True)
    }
    extra = [InformationDiagnostics()] if args.diagnostics else []
    output_dir = Path(args.output_dir) if args.output_dir else _default_output_dir(args)
    try:
        with one_line_warnings("larq-irnet train"):
            summary = _train(args, output_dir, extra, weights)
    except (ValueError, OSError, RunDirectoryInUse) as error:
        print(f"larq-irnet train: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"larq-irnet train: interrupted; {output_dir} keeps every finished epoch, and "
            "the same command resumes the run.",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(_summary_line(summary, output_dir))
    return 0


def _summary_line(summary: dict[str, Any], output_dir: Path) -> str:
    """The line `train` ends with; epochs counted from 1, as the epoch lines ("epoch 1/10").

    `summary.json` and `history.csv` keep Keras' 0-based epoch numbers (`best_epoch`).
    """
    epochs = summary["epochs"]
    if summary.get("validation_size"):
        scores = (
            f"final validation accuracy {summary['final_validation_accuracy']:.4f} on "
            f"{summary['validation_size']} held-out training images; "
        )
    elif summary.get("best_epoch") is not None:
        scores = (
            f"best epoch {summary['best_epoch'] + 1}/{epochs}: "
            f"{summary['best_epoch_test_accuracy']:.4f}; "
        )
    else:
        scores = ""
    return (
        f"final test accuracy {summary['final_test_accuracy']:.4f} on "
        f"{summary['test_examples']} test images after {epochs} "
        f"epoch{'' if epochs == 1 else 's'} ({scores}{output_dir / run_directory.SUMMARY})"
    )


def _recipe_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe fields that `--optimizer`, `--learning-rate`, ... change."""
    overrides: dict[str, Any] = {}
    for field in ("optimizer", "learning_rate", "weight_decay", "dte_epsilon", "dte_band_fraction"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    if args.no_latent_weight_decay:
        overrides["decay_latent_weights"] = False
    return overrides


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _open_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # nan too
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `larq-irnet train`."""
    parser = subparsers.add_parser(
        "train",
        help="train a recipe of the paper (resumable, tf.distribute)",
        description=(
            "Train a recipe into a run directory (history.csv, tensorboard/, "
            "checkpoints/, model.h5, summary.json). Re-running the same command after "
            "an interruption continues from the last finished epoch."
        ),
    )
    parser.add_argument("--recipe", metavar="NAME", help="a recipe name (see --list-recipes)")
    parser.add_argument("--list-recipes", action="store_true", help="print the recipes and exit")
    parser.add_argument(
        "--binarization",
        metavar="VARIANT",
        help="the model's binarization, a row of the ablation tables: "
        f"{', '.join(BINARIZATIONS)}; default the recipe's",
    )
    parser.add_argument("--epochs", type=positive_int_argument, metavar="N", help="override epochs")
    parser.add_argument(
        "--steps-per-epoch",
        type=positive_int_argument,
        metavar="N",
        help="optimizer steps per epoch (default: one pass over the training data)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int_argument,
        metavar="B",
        help="override the global batch size",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute: none, all local GPUs, or the workers of TF_CONFIG",
    )
    _add_run_arguments(parser)
    _add_protocol_arguments(parser.add_argument_group("recipe overrides and validation"))
    _add_distillation_arguments(parser.add_argument_group("distillation (RBD)"))
    parser.set_defaults(func=_run)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the run writes and reads, its seed, its share of the data, its diagnostics."""
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="run directory (default runs/<recipe>[-<binarization>]-seed<seed>)",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="where the dataset is")
    parser.add_argument(
        "--seed", type=_seed, default=0, help=f"random seed, 0 to {MAX_SEED} (default 0)"
    )
    parser.add_argument(
        "--train-limit",
        type=positive_int_argument,
        metavar="N",
        help="train on the first N training examples only",
    )
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="log per-layer entropy, quantization error and flip ratio "
        "(larq_irnet.callbacks.InformationDiagnostics)",
    )


def _add_protocol_arguments(group: argparse._ArgumentGroup) -> None:
    """The options of the tuned protocol: a validation split and recipe overrides."""
    group.add_argument(
        "--validation-size",
        type=non_negative_int_argument,
        default=0,
        metavar="N",
        help="validate every epoch on the last N training images, held out from training, "
        "instead of on the test set (the test set then scores only the final model)",
    )
    group.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="override the recipe's optimizer",
    )
    group.add_argument(
        "--learning-rate",
        type=_positive_float,
        metavar="LR",
        help="override the recipe's peak learning rate",
    )
    group.add_argument(
        "--weight-decay",
        type=_non_negative_float,
        metavar="L2",
        help="override the recipe's (coupled L2) weight decay",
    )
    group.add_argument(
        "--no-latent-weight-decay",
        action="store_true",
        help="do not decay the latent weights of binarized kernels (float weights still are)",
    )
    group.add_argument(
        "--dte-epsilon",
        type=_non_negative_float,
        metavar="EPS",
        help="DIR-Net's DTE: the minimum gradient inside its band in stage 2, in units of the "
        "standardized input (default 0.1; docs/dirnet.md)",
    )
    group.add_argument(
        "--dte-band-fraction",
        type=_open_fraction,
        metavar="F",
        help="DIR-Net's DTE: the fraction of a standardized Gaussian input inside its band "
        "(default 0.25)",
    )


def _add_distillation_arguments(group: argparse._ArgumentGroup) -> None:
    """`--distill-from` and the weights of its loss terms (`larq_irnet.distillation`)."""
    group.add_argument(
        "--distill-from",
        metavar="RUN_DIR_OR_WEIGHTS",
        help="train with RBD representation distillation (our design of DIR-Net's) from "
        "this full-precision teacher: a run directory, a .h5/.keras model, a weights-only "
        ".h5 of the recipe's model with binarization=fp, or a zoo weights NAME, which needs "
        "a registered binarization=fp variant of NAME (e.g. fashion_mnist)",
    )
    group.add_argument(
        "--alignment-weight",
        type=_non_negative_float,
        default=None,
        metavar="LAMBDA",
        help="weight of the attention-map alignment term (default 1.0; with --distill-from)",
    )
    group.add_argument(
        "--logits-weight",
        type=_non_negative_float,
        default=None,
        metavar="MU",
        help="weight of the temperature-scaled KL on the logits (default 0: none)",
    )
    group.add_argument(
        "--distill-temperature",
        type=_positive_float,
        default=None,
        metavar="T",
        help="temperature of the KL term (default 4.0)",
    )


def _train(args: argparse.Namespace, output_dir: Path, extra: list, weights: dict) -> dict:
    """`larq_irnet.training.train` with the command line's options."""
    options = TrainOptions(
        binarization=args.binarization,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        strategy=args.strategy,
        data_dir=args.data_dir,
        seed=args.seed,
        train_limit=args.train_limit,
        validation_size=args.validation_size,
        overrides=_recipe_overrides(args),
        extra_callbacks=extra,
        distill_from=args.distill_from,
        **weights,
        # Progress bars on a terminal, one line per epoch in a log file.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return train(args.recipe, output_dir, options)


@contextlib.contextmanager
def one_line_warnings(program: str) -> Iterator[None]:
    """Show Python warnings as `PROGRAM: warning: MESSAGE`, one line each, for the block.

    A command-line user needs the message, not the source line that raised it (Python's
    default shows both, on two lines).
    """

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{program}: warning: {text}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
