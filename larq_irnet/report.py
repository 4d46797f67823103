"""`larq-irnet report RUN_DIR`: plots and a markdown summary of a training run.

It reads a run directory (its files are described in `larq_irnet.training.run_directory`):
`history.csv`, `summary.json` and `model.h5`. The report goes to `RUN_DIR/report/`:

| file | what |
|---|---|
| `curves.png` | loss and accuracy (train and test, or validation) and learning rate, per epoch |
| `ede.png` | EDE's t and k per epoch |
| `entropy.png` | entropy of each binarized layer's weights per epoch |
| `quantization.png` | quantization error and flip ratio of each binarized layer |
| `histograms.png` | weights of a few binarized layers before and after Libra-PB |
| `report.md` | the summary numbers, embedding the plots |

Only `history.csv` is required: a plot whose data is missing (no `ede_t` column in a
full-precision run, no `model.h5`) is skipped, and `report.md` says which and why.
`history.csv`'s `val_loss` and `val_accuracy` are shown under the name of the set they
scored: `test` (the full test set, `train`'s default), `validation` (a split held out of
the training images, `validation_size`), or `held-out` when neither `config.json` nor
`summary.json` says which.

```bash
larq-irnet report runs/cifar10-resnet20-1w1a
```

```python
from larq_irnet.report import write_report

report = write_report("runs/cifar10-resnet20-1w1a")
print(report.markdown, report.skipped)
```
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from larq_irnet._validation import is_integer, positive_int_argument
from larq_irnet.information import binarized_kernels, sign_entropy, standardized_kernel
from larq_irnet.io import atomic_path, atomic_write
from larq_irnet.quantizers import LibraPB, libra_standardize
from larq_irnet.training import run_directory
from larq_irnet.training.run_directory import EXPECTED_RUN_DIR, read_history

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["Report", "add_parser", "read_history", "write_report"]

#: The run directory's file names (`larq_irnet.training.run_directory`), kept importable here.
HISTORY_FILE = run_directory.HISTORY
SUMMARY_FILE = run_directory.SUMMARY
MODEL_FILE = run_directory.MODEL
REPORT_DIR = run_directory.REPORT

_MEASURES = ("entropy", "kernel_entropy", "qerror", "flip_ratio")
#: The columns of `history.csv` in the report's final-epoch table, when present.
_FINAL_EPOCH_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "ede_t",
    "ede_k",
    "entropy_mean",
    "qerror_mean",
    "flip_ratio_mean",
)
#: What the `val_` columns of `history.csv` scored, by the name the report gives them.
_HELD_OUT = {
    "test": "the full test set, scored after every epoch",
    "validation": "training images held out of training (`validation_size`)",
    "held-out": "the test set or a validation split (the run directory does not say which)",
}


@dataclasses.dataclass
class Report:
    """What `write_report` wrote.

    # Arguments
        markdown: path of `report.md`.
        figures: paths of the PNG files written.
        skipped: plot name -> why it was not drawn.
    """

    markdown: Path
    figures: list[Path]
    skipped: dict[str, str]


class _Skip(Exception):
    """A plot cannot be drawn from this run's files; the message says why."""


def _has(history: dict[str, np.ndarray], column: str) -> bool:
    return column in history and bool(np.isfinite(history[column]).any())


def _layer_columns(history: dict[str, np.ndarray], measure: str) -> dict[str, np.ndarray]:
    prefix = f"{measure}/"
    return {
        name[len(prefix) :]: values
        for name, values in history.items()
        if name.startswith(prefix) and np.isfinite(values).any()
    }


def _save_figure(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    for ax in figure.axes:
        if ax.get_xlabel() == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=110)
    return path


def _held_out(run_dir: Path, summary: dict | str) -> str:
    """What `history.csv`'s `val_` columns scored: "test", "validation" or "held-out"."""
    try:
        config = run_directory.read_config(run_dir)
    except ValueError:
        config = None
    for source in (config, summary):
        size = source.get("validation_size") if isinstance(source, dict) else None
        if is_integer(size):
            return "validation" if size > 0 else "test"
    return "held-out"


def _plot_curves(history: dict[str, np.ndarray], path: Path, held_out: str) -> Path:
    panels = [
        (metric, [c for c in (metric, f"val_{metric}") if _has(history, c)])
        for metric in ("loss", "accuracy")
    ]
    panels = [(metric, columns) for metric, columns in panels if columns]
    if not panels:
        raise _Skip("history.csv has no loss or accuracy column")
    if _has(history, "lr"):
        panels.append(("learning rate", ["lr"]))
    figure = Figure(figsize=(5.5 * len(panels), 4))
    epochs = history["epoch"]
    for i, (metric, columns) in enumerate(panels):
        ax = figure.add_subplot(1, len(panels), i + 1)
        for column in columns:
            label = held_out if column.startswith("val_") else "train"
            ax.plot(epochs, history[column], marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if columns != ["lr"]:
            ax.legend()
    return _save_figure(figure, path)


def _plot_ede(history: dict[str, np.ndarray], path: Path) -> Path:
    if not _has(history, "ede_t"):
        raise _Skip("history.csv has no ede_t column (a run without EDE, or no EDECallback)")
    columns = [c for c in ("ede_t", "ede_k") if _has(history, c)]
    figure = Figure(figsize=(5.5 * len(columns), 4))
    for i, column in enumerate(columns):
        ax = figure.add_subplot(1, len(columns), i + 1)
        ax.plot(history["epoch"], history[column], marker=".")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(f"EDE {column[-1]}")
        ax.grid(alpha=0.3, which="both")
    return _save_figure(figure, path)


def _plot_layers(ax, history, measure: str, ylabel: str) -> None:
    layers = _layer_columns(history, measure)
    colors = _colors(len(layers))
    for color, (name, values) in zip(colors, layers.items(), strict=True):
        ax.plot(history["epoch"], values, color=color, lw=1, label=name)
    if _has(history, f"{measure}_mean"):
        ax.plot(history["epoch"], history[f"{measure}_mean"], "k--", lw=2, label="mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(layers) <= 12:
        ax.legend(fontsize="x-small")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _no_diagnostics() -> _Skip:
    return _Skip(
        "history.csv has no InformationDiagnostics columns (entropy/<layer>, ...): a model "
        "without binarized weights, or trained without the callback "
        "(`larq-irnet train --diagnostics`)"
    )


def _plot_entropy(history: dict[str, np.ndarray], path: Path) -> Path:
    if not _layer_columns(history, "entropy") and not _has(history, "entropy_mean"):
        raise _no_diagnostics()
    figure = Figure(figsize=(7, 4.5))
    ax = figure.add_subplot(1, 1, 1)
    _plot_layers(ax, history, "entropy", "entropy of binary weights (bits)")
    ax.set_title("per-channel entropy of each binarized layer (1.0 = balanced)")
    return _save_figure(figure, path)


def _plot_quantization(history: dict[str, np.ndarray], path: Path) -> Path:
    measures = [
        (m, label)
        for m, label in (("qerror", "||w_std - Q(w)||² / n"), ("flip_ratio", "flip ratio"))
        if _layer_columns(history, m) or _has(history, f"{m}_mean")
    ]
    if not measures:
        raise _no_diagnostics()
    figure = Figure(figsize=(6 * len(measures), 4.5))
    for i, (measure, label) in enumerate(measures):
        ax = figure.add_subplot(1, len(measures), i + 1)
        _plot_layers(ax, history, measure, label)
        ax.set_title("quantization error" if measure == "qerror" else "signs flipped per epoch")
        if measure == "flip_ratio":
            ax.set_yscale("symlog", linthresh=1e-4)
    return _save_figure(figure, path)


def _load_model(path: Path):
    if not path.is_file():
        raise _Skip(f"{path} does not exist (the trained model, saved as Keras HDF5)")
    from larq_irnet.zoo.loading import load_model

    try:
        return load_model(path)
    except Exception as error:  # whatever fails to load only skips this plot
        raise _Skip(f"could not load {path}: {type(error).__name__}: {error}") from error


def _plot_histograms(model_path: Path, path: Path, n_layers: int) -> Path:
    model = _load_model(model_path)
    kernels = binarized_kernels(model)
    if not kernels:
        raise _Skip(f"{model_path} has no binarized layers (a full-precision model)")
    picks = sorted(
        {round(i) for i in np.linspace(0, len(kernels) - 1, min(n_layers, len(kernels)))}
    )
    figure = Figure(figsize=(10, 2.8 * len(picks)))
    for row, index in enumerate(picks):
        kernel = kernels[index]
        w = kernel.value()
        if isinstance(kernel.quantizer, LibraPB):
            after, note = standardized_kernel(kernel.quantizer, w, kernel.channel_axes), ""
        else:
            after = libra_standardize(w, channel_axes=kernel.channel_axes).numpy()
            note = f" (layer uses {type(kernel.quantizer).__name__}; for comparison)"
        for col, (values, title) in enumerate(
            ((w, f"{kernel.name}: w"), (after, f"{kernel.name}: Libra-PB w_std{note}"))
        ):
            ax = figure.add_subplot(len(picks), 2, 2 * row + col + 1)
            ax.hist(values.ravel(), bins=60, color="C0" if col == 0 else "C2")
            ax.axvline(0.0, color="k", lw=0.8)
            positive = float(np.mean(values > 0))
            entropy = sign_entropy(values, channel_axes=kernel.channel_axes)
            ax.set_title(
                f"{title}\n+1: {positive:.1%}, entropy {entropy:.3f} bits",
                fontsize="small",
            )
    return _save_figure(figure, path)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v) for v in value)
    return str(value)


def _flatten(summary: dict, prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in summary.items():
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _final_epoch(history: dict[str, np.ndarray], held_out: str) -> list[str]:
    """The final epoch's headline values, the `val_` columns named by the set they scored."""
    last = {name: float(values[-1]) for name, values in history.items()}
    lines = [f"## Final epoch (history.csv, {len(history['epoch'])} epochs)", ""]
    shown = [c for c in _FINAL_EPOCH_COLUMNS if c in last]
    # Epochs are counted from 1 here, as the training log prints them (history.csv: from 0).
    cells = {c: _format(last[c] + 1 if c == "epoch" else last[c]) for c in shown}
    names = [c.replace("val_", f"{held_out}_", 1) if c.startswith("val_") else c for c in shown]
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cells[c] for c in shown) + " |", ""]
    if any(c.startswith("val_") for c in shown):
        lines += [f"`{held_out}_*`: history.csv's `val_*` columns, {_HELD_OUT[held_out]}.", ""]
    if _has(history, "val_accuracy"):
        best = int(np.nanargmax(history["val_accuracy"]))
        lines += [
            f"Best epoch (for reference only; the result is the final epoch above): "
            f"{held_out} accuracy {history['val_accuracy'][best]:.4g} at epoch "
            f"{int(history['epoch'][best]) + 1} of {len(history['epoch'])}.",
            "",
        ]
    return lines


def _markdown(
    run_dir: Path,
    history: dict[str, np.ndarray],
    summary: dict | str,
    figures: dict[str, Path],
    skipped: dict[str, str],
    held_out: str,
) -> str:
    lines = [f"# Training report: {run_dir.name}", "", f"Run directory: `{run_dir}`", ""]
    lines += ["## Summary (summary.json)", ""]
    if isinstance(summary, str):
        lines += [f"Not available: {summary}.", ""]
    else:
        first = [k for k in ("recipe", "binarization", "final_test_accuracy") if k in summary]
        ordered = [(k, summary[k]) for k in first] + [
            kv for kv in _flatten(summary) if kv[0] not in first
        ]
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| {k} | {_format(v)} |" for k, v in ordered]
        lines.append("")

    lines += _final_epoch(history, held_out)

    sections = [
        ("Loss and accuracy", "curves"),
        ("EDE schedule", "ede"),
        ("Entropy of the binary weights", "entropy"),
        ("Quantization error and sign flips", "quantization"),
        ("Weights before and after Libra-PB", "histograms"),
    ]
    for title, name in sections:
        lines += [f"## {title}", ""]
        if name in figures:
            lines += [f"![{title}]({figures[name].name})", ""]
        else:
            lines += [f"Skipped: {skipped[name]}.", ""]
        if name == "entropy" and _layer_columns(history, "entropy"):
            lines += _layer_table(history)

    if skipped:
        lines += ["## Skipped plots", ""]
        lines += [f"- `{name}.png`: {reason}." for name, reason in skipped.items()]
        lines.append("")
    return "\n".join(lines)


def _layer_table(history: dict[str, np.ndarray]) -> list[str]:
    per_measure = {m: _layer_columns(history, m) for m in _MEASURES}
    lines = [
        "Final epoch, per binarized layer:",
        "",
        "| layer | entropy | kernel entropy | qerror | flip ratio |",
        "|---|---|---|---|---|",
    ]
    for layer in per_measure["entropy"]:
        cells = [
            _format(float(per_measure[m][layer][-1])) if layer in per_measure[m] else "n/a"
            for m in _MEASURES
        ]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def write_report(
    run_dir: str | os.PathLike,
    *,
    output_dir: str | os.PathLike | None = None,
    histogram_layers: int = 4,
) -> Report:
    """Write the PNG plots and `report.md` of a training run.

    # Arguments
        run_dir: the run directory: `history.csv` (required), `summary.json` and
            `model.h5` (optional).
        output_dir: where to write; default `run_dir/report`.
        histogram_layers: how many binarized layers (evenly spread from first to last)
            get weight histograms.

    # Returns
        A `Report`: the markdown path, the figures written, the plots skipped and why.

    # Raises
        FileNotFoundError: `run_dir` or its `history.csv` does not exist.
        ValueError: `history.csv` is empty or not a CSV of numbers; a bad argument;
            the output directory is a file, under a file or not writable
            (`larq_irnet.training.run_directory.UnusableDirectory`).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        problem = "is not a directory" if run_dir.exists() else "does not exist"
        raise FileNotFoundError(f"run directory {run_dir} {problem}: expected {EXPECTED_RUN_DIR}.")
    if not (is_integer(histogram_layers) and histogram_layers >= 1):
        raise ValueError(
            f"`histogram_layers` must be a positive integer, got {histogram_layers!r}."
        )
    history = read_history(run_dir / HISTORY_FILE)
    output = Path(output_dir) if output_dir is not None else run_dir / REPORT_DIR
    run_directory.check_writable(output, "report directory")
    output.mkdir(parents=True, exist_ok=True)

    summary = run_directory.read_summary(run_dir)
    held_out = _held_out(run_dir, summary)
    plots: list[tuple[str, Callable[[Path], Path]]] = [
        ("curves", lambda p: _plot_curves(history, p, held_out)),
        ("ede", lambda p: _plot_ede(history, p)),
        ("entropy", lambda p: _plot_entropy(history, p)),
        ("quantization", lambda p: _plot_quantization(history, p)),
        ("histograms", lambda p: _plot_histograms(run_dir / MODEL_FILE, p, histogram_layers)),
    ]
    figures: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    for name, plot in plots:
        try:
            figures[name] = plot(output / f"{name}.png")
        except _Skip as reason:
            skipped[name] = str(reason)

    text = _markdown(run_dir.resolve(), history, summary, figures, skipped, held_out)
    markdown = output / "report.md"
    atomic_write(markdown, text + "\n")
    return Report(markdown=markdown, figures=list(figures.values()), skipped=skipped)


def _run(args: argparse.Namespace) -> int:
    try:
        report = write_report(
            args.run_dir, output_dir=args.output_dir, histogram_layers=args.layers
        )
    except (OSError, ValueError) as error:
        print(f"larq-irnet report: error: {error}", file=sys.stderr)
        return 1
    for path in report.figures:
        print(f"wrote {path}")
    for name, reason in report.skipped.items():
        print(f"skipped {name}.png: {reason}")
    print(f"wrote {report.markdown}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `report` subcommand to the `larq-irnet` command line."""
    parser = subparsers.add_parser(
        "report",
        help="plot a training run and summarize it in markdown",
        description=(
            "Write PNG plots (loss/accuracy, EDE t and k, per-layer entropy, quantization "
            "error and flip ratio, weight histograms before/after Libra-PB) and report.md "
            "for a run directory written by `larq-irnet train`."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (with history.csv)")
    parser.add_argument(
        "--output-dir", default=None, help="where to write (default: RUN_DIR/report)"
    )
    parser.add_argument(
        "--layers",
        type=positive_int_argument,
        default=4,
        help="binarized layers to show weight histograms for (default: 4)",
    )
    parser.set_defaults(func=_run)
    return parser
