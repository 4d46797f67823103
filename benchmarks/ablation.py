"""IR-Net's ablation (paper, Table 2) on Fashion-MNIST with ResNet-20 (Bi-Real structure).

Every row trains the same recipe (`fashion_mnist-resnet20-1w1a`), with the same seed and
epochs, changing only the binarization; IR-Net and plain binary also run a second seed so
their difference can be told from seed noise. Each row is a resumable run directory
(`larq_irnet.training.train`): rerunning the command after an interruption continues the
unfinished row from its last epoch and skips finished ones. The results file is rewritten
atomically whenever a row finishes, with each row's per-epoch history, so that
`--plots` and docs/results.md can be regenerated from it alone; a row that is in the
results file but whose run directory is gone is not trained again. Several processes
may run the command at once (e.g. on a machine with more cores): a row that another
process is training is skipped, so each takes the next free row.

    python benchmarks/ablation.py                       # all rows, in the order below
    python benchmarks/ablation.py --only irnet-seed0    # one row
    python benchmarks/ablation.py --plots docs/results  # figures from the results file
    python benchmarks/ablation.py --search              # the recipe search (below)

The recipe above was written for IR-Net. `--search` gives each compared row its own best
recipe from one small grid (`SEARCH_OPTIMIZERS` x `SEARCH_LATENT_DECAY`: the paper's SGD
and Adam, both with cosine decay, SGD at two learning rates and Adam at five, times
weight decay on or off for the latent binary weights; extended at its edge whenever a
row's best landed there, `SEARCH_SKIPPED` naming the points left out) at a short budget
(`SEARCH_EPOCHS`), scored on a
validation split of the last `VALIDATION_SIZE` training images, which those runs do not
train on. The test set plays no part in the choice: the search's results file holds
validation scores only.

    python benchmarks/ablation.py --protocol tuned --epochs 30   # issue 12's tuned table
    python benchmarks/ablation.py --latent-scale                 # c of bnn_lr_scaled

Two protocols (`PROTOCOLS`), the same table and comparisons: `paper` (the rows above, one
recipe, `benchmarks/results/ablation.json`) and `tuned` (`TUNED_ROWS`: each row trains
the best recipe of its search row, `TUNED_RECIPE_OF`, read from the search's results
file; the RBD rows distil from the fp row's `model.h5`; 2 seeds where a comparison needs
the spread; `benchmarks/results/ablation_tuned.json`, which states its epoch budget). A
tuned row whose search rows have no result yet is refused. The paper protocol's
`bnn_lr_scaled` row tests whether Libra-PB's gain is a step size: plain binary with the
latent weights' learning rate times `LATENT_LR_SCALE`, the median 1/std of Libra-PB's
channels (`Recipe.latent_lr_scale`, SGD only).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.io import atomic_path
from larq_irnet.layers import binarized_weights
from larq_irnet.quantizers import ede_default_k
from larq_irnet.training.recipes import get_recipe
from larq_irnet.training.run_directory import HISTORY, read_history

import experiments
import noise
import numpy as np
from experiments import (
    Run,
    best_recipes,
    check_searched,
    check_unchanged,
    grid_edges,
    recipe_label,
    rewrite_marked_blocks,
    searched_recipes,
    train_runs,
)

RECIPE = "fashion_mnist-resnet20-1w1a"
#: The repository: default results files are found from here, not from the working directory.
ROOT = Path(__file__).resolve().parents[1]

#: The search: rows that get their own recipe, and the grid each row is searched over.
SEARCH_ROWS = ("fp", "bnn", "irnet", "dirnet")
SEARCH_EPOCHS = 2
VALIDATION_SIZE = 5000
#: (optimizer, learning rate): the paper's SGD (momentum 0.9, its lr 0.1 and a third of it)
#: and Adam at the rates larq-zoo's binary networks train with, all with cosine decay.
#: Adam 1e-2 was added after 20 runs, when every row's best so far was Adam 4e-3, the
#: grid's highest rate: a best on the grid's edge says nothing about what lies beyond it.
#: Adam 2.5e-2 was added after 30 runs, when every row's best was Adam 1e-2, and Adam
#: 5e-2 after 32, when IR-Net's best was Adam 2.5e-2 (full precision's stayed at 1e-2,
#: inside the grid: its 5e-2 point is not run).
SEARCH_OPTIMIZERS = (
    ("sgd", 0.1),
    ("sgd", 0.03),
    ("adam", 1e-3),
    ("adam", 4e-3),
    ("adam", 1e-2),
    ("adam", 2.5e-2),
    ("adam", 5e-2),
)
#: The recipe's coupled L2 (1e-4) always decays the float weights; on or off for latent ones.
SEARCH_LATENT_DECAY = (True, False)
#: Grid points left out: full precision's best (Adam 1e-2) already had a higher rate
#: searched above it (2.5e-2) when Adam 5e-2 was added for IR-Net.
SEARCH_SKIPPED = frozenset({"fp-adam0.05-wd"})


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of an ablation table.

    # Arguments
        label: the row's name in the table.
        binarization: the zoo's `binarization=` it trains.
        short: its name in the comparisons (default: `label`).
        paper: IR-Net's Table 2 top-1 (%) for the row on CIFAR-10 ResNet-20 1/1, or None
            for rows of our own (listed in the table once they have a result).
        overrides: recipe fields the row changes (`TrainOptions(overrides=...)`).
        teacher: the row whose seed-0 `model.h5` is its RBD teacher (`--distill-from`).
    """

    label: str
    binarization: str
    short: str = ""
    paper: float | None = None
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    teacher: str | None = None

    @property
    def name(self) -> str:
        return self.short or self.label


#: c of the `bnn_lr_scaled` row: the median over all binarized channels of 1/std (the
#: unbiased std of a channel's latent weights, Libra-PB's) of the paper protocol's IR-Net
#: ResNet-20 Fashion-MNIST weights (`weights="fashion_mnist_paper"`), measured with
#: `median_inverse_std`
#: (`python benchmarks/ablation.py --latent-scale`): 12.3682; a freshly initialised
#: ResNet-20 (seed 0) has 12.7436. The trained one is used, as the std Libra-PB divides
#: by at the end of training; the two differ by 3%, so the choice hardly matters.
LATENT_LR_SCALE = 12.37

#: The paper's Table 2 rows (and ours after them), by row name.
ROWS: dict[str, Row] = {
    "fp": Row("Full precision", "fp", paper=90.8),
    "bnn": Row("Plain binary (sign + STE)", "bnn", short="plain binary", paper=83.8),
    "libra_pb_no_std": Row("Libra-PB w/o standardization", "libra_pb_no_std", paper=84.3),
    "libra_pb_no_scale": Row("Libra-PB w/o bit-shift scale", "libra_pb_no_scale", paper=84.6),
    "libra_pb": Row("Libra-PB", "libra_pb", paper=84.9),
    "ede": Row("EDE", "ede", paper=85.2),
    "irnet": Row("IR-Net (Libra-PB + EDE)", "irnet", short="IR-Net", paper=86.5),
    # Ours: is Libra-PB's gain a step size? Plain binary with the latent weights' learning
    # rate multiplied by the 1/std that Libra-PB's standardization multiplies gradients by.
    "bnn_lr_scaled": Row(
        f"Plain binary, latent-weight lr x {LATENT_LR_SCALE:.1f} (median 1/std)",
        "bnn",
        short="Plain binary with latent lr x median 1/std",
        overrides={"latent_lr_scale": LATENT_LR_SCALE},
    ),
}

#: Run order: the comparisons that matter most finish first (IR-Net vs plain binary, with
#: its seed spread, then each half of IR-Net, then the float reference and the sub-ablations).
RUNS = [
    ("irnet", 0),
    ("bnn", 0),
    ("irnet", 1),
    ("bnn", 1),
    ("libra_pb", 0),
    ("ede", 0),
    ("fp", 0),
    ("libra_pb_no_std", 0),
    ("libra_pb_no_scale", 0),
    ("bnn_lr_scaled", 0),
]

#: (row a, row b, kind) of the lines `comparisons` prints, when both rows ran:
#: `"difference"` a - b against the run-to-run noise (`noise.py`); `"gap"` a - b;
#: `"closes"` the share of the gap from b to full precision that a closes.
PAPER_COMPARISONS = (
    ("irnet", "bnn", "difference"),
    ("libra_pb", "bnn", "difference"),
    ("ede", "bnn", "difference"),
    ("fp", "irnet", "gap"),
    ("bnn_lr_scaled", "bnn", "difference"),
    ("bnn_lr_scaled", "libra_pb", "difference"),
)

#: The tuned protocol's rows (issue 12): DIR-Net's parts, and RBD on its own (IR-Net + RBD).
TUNED_ROWS: dict[str, Row] = {
    **{name: ROWS[name] for name in ("fp", "bnn", "libra_pb", "ede", "irnet")},
    "imb": Row("IMB", "imb"),
    "dte": Row("DTE", "dte"),
    "dirnet": Row("DIR-Net (IMB + DTE)", "dirnet", short="DIR-Net"),
    "dirnet+rbd": Row("DIR-Net + RBD", "dirnet", teacher="fp"),
    "irnet+rbd": Row("IR-Net + RBD", "irnet", teacher="fp"),
    # DIR-Net with IMB's activation part, the per-channel learnable threshold (issue #11).
    "dirnet_act": Row("DIR-Net + IMB activations", "dirnet_act", short="DIR-Net act"),
    # IR-Net on the recipe the IMB and DIR-Net rows train (DIR-Net's searched best): the
    # IMB row led IR-Net by 0.41 on another step size; this row separates the two (#26).
    "irnet_dirnet_recipe": Row(
        "IR-Net on DIR-Net's recipe", "irnet", short="IR-Net (DIR-Net's recipe)"
    ),
}
#: Per tuned row, the search rows whose best recipe it trains with, first found first:
#: rows without a search of their own take their family's.
TUNED_RECIPE_OF: dict[str, tuple[str, ...]] = {
    "fp": ("fp",),
    "bnn": ("bnn",),
    "libra_pb": ("irnet",),
    "ede": ("irnet",),
    "irnet": ("irnet",),
    "imb": ("dirnet", "irnet"),
    "dte": ("dirnet", "irnet"),
    "dirnet": ("dirnet", "irnet"),
    "dirnet+rbd": ("dirnet", "irnet"),
    "irnet+rbd": ("irnet",),
    "dirnet_act": ("dirnet", "irnet"),
    "irnet_dirnet_recipe": ("dirnet",),
}
#: Two seeds where a comparison needs the seed spread; the teacher (fp) first.
TUNED_RUNS = [
    ("fp", 0),
    ("irnet", 0),
    ("bnn", 0),
    ("dirnet", 0),
    ("dirnet+rbd", 0),
    ("irnet", 1),
    ("bnn", 1),
    ("dirnet", 1),
    ("dirnet+rbd", 1),
    ("irnet+rbd", 0),
    ("libra_pb", 0),
    ("ede", 0),
    ("imb", 0),
    ("dte", 0),
    ("dirnet_act", 0),
    # IMB alone (IMB weights, EDE estimator) was the best binary row on one seed, 1.06
    # above DIR-Net (IMB + DTE) on the same recipe: its second seed tells that from noise.
    ("imb", 1),
    # Issue 26: IR-Net on IMB's recipe (what was IMB's lead?), and the float reference's
    # second seed (the gap shares rested on one).
    ("irnet_dirnet_recipe", 0),
    ("irnet_dirnet_recipe", 1),
    ("fp", 1),
]
TUNED_COMPARISONS = (
    ("irnet", "bnn", "difference"),
    ("dirnet", "irnet", "difference"),
    ("dirnet", "imb", "difference"),
    ("dirnet+rbd", "dirnet", "difference"),
    ("irnet+rbd", "irnet", "difference"),
    ("libra_pb", "bnn", "difference"),
    ("ede", "bnn", "difference"),
    ("imb", "libra_pb", "difference"),
    ("dte", "ede", "difference"),
    ("dirnet_act", "dirnet", "difference"),
    ("imb", "irnet_dirnet_recipe", "difference"),
    ("fp", "irnet", "gap"),
    ("fp", "dirnet+rbd", "gap"),
    ("irnet", "bnn", "closes"),
    ("dirnet+rbd", "bnn", "closes"),
)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """An ablation protocol: its rows, run order, comparisons and results file."""

    name: str
    rows: Mapping[str, Row]
    runs: Sequence[tuple[str, int]]
    comparisons: Sequence[tuple[str, str, str]]
    results: str
    description: str


PROTOCOLS = {
    "paper": Protocol(
        "paper",
        ROWS,
        RUNS,
        PAPER_COMPARISONS,
        "benchmarks/results/ablation.json",
        f"every row trains {RECIPE} (SGD, lr 0.1), written for IR-Net",
    ),
    "tuned": Protocol(
        "tuned",
        TUNED_ROWS,
        TUNED_RUNS,
        TUNED_COMPARISONS,
        "benchmarks/results/ablation_tuned.json",
        "every row trains the best recipe of its search row (`TUNED_RECIPE_OF`, "
        "benchmarks/results/search.json, scored on the validation split)",
    ),
}
PAPER = PROTOCOLS["paper"]

_SUMMARY_KEYS = (
    "binarization",
    "seed",
    "epochs",
    "batch_size",
    "final_test_accuracy",
    "final_test_loss",
    "best_epoch_test_accuracy",
    "best_epoch",
    "ede_t",
    "ede_t_min",
    "ede_t_max",
    "train_seconds",
    "train_examples",
    "test_examples",
)
#: Rows whose per-layer entropy is drawn: plain binary against the two with Libra-PB.
_ENTROPY_ROWS = ("bnn-seed0", "libra_pb-seed0", "irnet-seed0")
_HISTORY_KEYS = (
    "accuracy",
    "val_accuracy",
    "loss",
    "val_loss",
    "ede_t",
    "dte_t",
    "entropy_mean",
    "flip_ratio_mean",
)


def run_name(row: str, seed: int) -> str:
    """The name of a row's run directory and results entry."""
    return f"{row}-seed{seed}"


def median_inverse_std(model) -> float:
    """The median over all binarized output channels of 1/std of their latent weights.

    The std is Libra-PB's: unbiased, over each output channel's filter
    (`larq_irnet.layers.binarized_weights`' channel axes). Libra-PB divides the
    balanced weights by it, so its backward multiplies a channel's gradient by about
    1/std: the step-size factor the `bnn_lr_scaled` row gives plain binary networks.
    """
    inverse = []
    for weight in binarized_weights(model):
        w = np.asarray(weight.variable.latent_variable.numpy(), dtype=np.float64)
        channels = {a % w.ndim for a in weight.channel_axes}
        reduced = tuple(a for a in range(w.ndim) if a not in channels)
        inverse.append(1.0 / w.std(axis=reduced, ddof=1).ravel())
    return float(np.median(np.concatenate(inverse)))


def measure_latent_scale() -> dict[str, float]:
    """`median_inverse_std` of the paper protocol's IR-Net ResNet-20 and a fresh one.

    The trained weights are the paper protocol's IR-Net row, seed 0 (shipped as
    `weights="fashion_mnist_paper"`).
    """
    from larq_irnet.zoo import IRNetResNet20

    import tensorflow as tf

    out = {}
    for name, weights in (("trained", "fashion_mnist_paper"), ("initial", None)):
        tf.keras.utils.set_random_seed(0)
        model = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights=weights)
        out[name] = median_inverse_std(model)
    return out


def history_columns(path: Path) -> dict[str, list[float]]:
    """Per-epoch columns of a run's history.csv: the headline ones and per-layer entropy."""
    history = read_history(path)
    columns = [k for k in history if k in _HISTORY_KEYS or k.startswith("entropy/")]
    return {k: [float(v) for v in history[k] if math.isfinite(v)] for k in columns}


def load_results(path: Path) -> dict:
    """The results file, or an empty one."""
    return experiments.load_results(path, recipe=RECIPE)


def search_name(binarization: str, overrides: dict) -> str:
    """The name of a search run: row, optimizer, learning rate, latent weight decay."""
    latent = "wd" if overrides["decay_latent_weights"] else "nowd"
    return f"{binarization}-{overrides['optimizer']}{overrides['learning_rate']:g}-{latent}"


def search_points() -> list[dict]:
    """The grid's points as recipe overrides: each optimizer and rate, latent decay on/off."""
    return [
        {"optimizer": optimizer, "learning_rate": learning_rate, "decay_latent_weights": latent}
        for optimizer, learning_rate in SEARCH_OPTIMIZERS
        for latent in SEARCH_LATENT_DECAY
    ]


def point_label(overrides: Mapping[str, Any]) -> str:
    """A grid point as the search table and figure name it: `sgd 0.1, latent wd on`."""
    return recipe_label(overrides)


def search_grid() -> list[tuple[str, str, dict]]:
    """Every search run: (name, binarization, recipe overrides), the rows interleaved.

    Full precision has no latent binary weights, so it is searched over the optimizers
    only; the points of `SEARCH_SKIPPED` are left out.
    """
    grid = [
        (search_name(binarization, overrides), binarization, overrides)
        for overrides in search_points()
        for binarization in SEARCH_ROWS
        if binarization != "fp" or overrides["decay_latent_weights"]
    ]
    return [run for run in grid if run[0] not in SEARCH_SKIPPED]


def search_table(search: dict) -> str:
    """The search as a markdown table: final validation accuracy per row and grid point."""
    columns = search_points()
    header = " | ".join(point_label(overrides) for overrides in columns)
    lines = [f"| row | {header} |", "|---" * (len(columns) + 1) + "|"]
    best = best_recipes(search)
    for binarization in SEARCH_ROWS:
        cells = []
        for overrides in columns:
            run = search["runs"].get(search_name(binarization, overrides))
            if run is None:
                fp_only = binarization == "fp" and not overrides["decay_latent_weights"]
                skipped = search_name(binarization, overrides) in SEARCH_SKIPPED
                cells.append("n/a" if fp_only else "skipped" if skipped else "")
                continue
            cell = f"{100 * run['final_validation_accuracy']:.2f}"
            cells.append(f"**{cell}**" if best.get(binarization) == overrides else cell)
        lines.append(f"| {TUNED_ROWS[binarization].label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _selected_search(only: Sequence[str] | None) -> list[tuple[str, str, dict]]:
    """The search runs that `--only` names, in the grid's order (all without it)."""
    grid = search_grid()
    names = [name for name, _, _ in grid]
    unknown = set(only or ()) - set(names)
    if unknown:
        raise SystemExit(f"--only: unknown search runs {sorted(unknown)}; known: {names}")
    return [run for run in grid if not only or run[0] in only]


def run_search(args: argparse.Namespace) -> dict:
    """Train every search run that is not finished yet (see the module docstring)."""
    rows = [
        (
            name,
            {
                "binarization": binarization,
                "seed": 0,
                "epochs": args.epochs or SEARCH_EPOCHS,
                "validation_size": VALIDATION_SIZE,
                "overrides": overrides,
            },
        )
        for name, binarization, overrides in _selected_search(args.only)
    ]

    def entry(summary: dict, run_dir: Path, kwargs: dict) -> dict:
        # Validation scores only: the test set plays no part in choosing a recipe.
        history = history_columns(run_dir / HISTORY)
        return {
            "binarization": kwargs["binarization"],
            "overrides": kwargs["overrides"],
            **experiments.validation_scores(summary),
            "history": {
                "val_accuracy": history.get("val_accuracy", []),
                "accuracy": history.get("accuracy", []),
            },
        }

    return train_rows(rows, args, entry, score="final_validation_accuracy")


def _selected(protocol: Protocol, only: Sequence[str] | None) -> list[tuple[str, int]]:
    """The protocol's runs that `--only` names (all without it)."""
    names = [run_name(*r) for r in protocol.runs]
    unknown = set(only or ()) - set(names)
    if unknown:
        raise SystemExit(f"--only: unknown rows {sorted(unknown)}; known: {names}")
    return [r for r in protocol.runs if not only or run_name(*r) in only]


def _row_entry(summary: dict, run_dir: Path, kwargs: dict) -> dict:
    out = {k: summary.get(k) for k in _SUMMARY_KEYS}
    out["row"] = kwargs["row"]
    out["history"] = history_columns(run_dir / HISTORY)
    return out


def run_rows(args: argparse.Namespace) -> dict:
    """Train every selected row of the paper protocol not finished yet, saving after each."""
    rows = []
    for row, seed in _selected(PAPER, args.only):
        kwargs: dict[str, Any] = {"row": row, "binarization": ROWS[row].binarization, "seed": seed}
        if ROWS[row].overrides:
            kwargs["overrides"] = dict(ROWS[row].overrides)
        rows.append((run_name(row, seed), kwargs))
    return train_rows(rows, args, _row_entry, score="final_test_accuracy")


def tuned_recipes(search: dict) -> tuple[dict[str, tuple[str, dict]], dict[str, tuple[str, ...]]]:
    """The tuned protocol's recipes: ({row: (search row, overrides)}, {row: missing}).

    Each row takes the best recipe of the first of its `TUNED_RECIPE_OF` search rows
    that has results (`experiments.searched_recipes`).
    """
    return searched_recipes(search, TUNED_RECIPE_OF)


def recipe_table(
    recipes: Mapping[str, tuple[str, dict]], edges: Mapping[str, str] | None = None
) -> str:
    """The tuned protocol's mapping: row, the search row it takes its recipe from, recipe.

    A recipe whose search row is in `edges` (`experiments.grid_edges`) is
    marked: the tuned protocol trains it only when told to (`--allow-grid-edge`).
    """
    lines = ["| row | recipe of search row | optimizer, lr, latent weight decay |", "|---|---|---|"]
    for row, candidates in TUNED_RECIPE_OF.items():
        if row in recipes:
            source, o = recipes[row]
            latent = "on" if o["decay_latent_weights"] else "off"
            recipe = f"{o['optimizer']} {o['learning_rate']:g}, {latent}"
            if edges and source in edges:
                recipe += " (on the grid's edge: trained only with --allow-grid-edge)"
        else:
            source, recipe = " or ".join(candidates), "no search result yet"
        lines.append(f"| {TUNED_ROWS[row].label} | {source} | {recipe} |")
    return "\n".join(lines)


def run_tuned(args: argparse.Namespace) -> dict:
    """Train the tuned protocol's selected rows with their searched recipes (issue 12)."""
    selected = _selected(PROTOCOLS["tuned"], args.only)
    recipes = check_searched(
        load_results(args.search_results),
        TUNED_RECIPE_OF,
        [row for row, _ in selected],
        where=args.search_results,
        allow_grid_edge=args.allow_grid_edge,
    )
    check_unchanged(
        load_results(args.results),
        {row: recipes[row][1] for row in {row for row, _ in selected}},
        row_key="row",
        recipe_key="overrides",
        where=args.results,
    )
    epochs = args.epochs or get_recipe(RECIPE).epochs
    header = {
        "protocol": "tuned",
        "recipe": RECIPE,
        "epochs": epochs,
        "search": str(args.search_results),
        "recipes": {row: {"search_row": s, "overrides": o} for row, (s, o) in recipes.items()},
    }
    previous = load_results(args.results).get("epochs")
    if previous is not None and previous != epochs:
        raise SystemExit(
            f"--epochs {epochs}: {args.results} holds a budget of {previous} epochs; pass "
            f"--epochs {previous} or another --results"
        )
    rows = []
    for row, seed in selected:
        spec, (_, overrides) = TUNED_ROWS[row], recipes[row]
        kwargs: dict[str, Any] = {
            "row": row,
            "binarization": spec.binarization,
            "seed": seed,
            "epochs": epochs,
            "overrides": {**overrides, **spec.overrides},
        }
        if spec.teacher is not None:
            kwargs["distill_from"] = args.output_dir / run_name(spec.teacher, 0)
        rows.append((run_name(row, seed), kwargs))

    def entry(summary: dict, run_dir: Path, kwargs: dict) -> dict:
        out = _row_entry(summary, run_dir, kwargs)
        out["recipe_from"] = recipes[kwargs["row"]][0]
        out["overrides"] = kwargs["overrides"]
        out["distill_from"] = summary.get("distill_from")
        out["final_test_alignment_loss"] = summary.get("final_test_alignment_loss")
        return out

    return train_rows(rows, args, entry, score="final_test_accuracy", header=header)


def train_rows(
    rows: list[tuple[str, dict]],
    args: argparse.Namespace,
    entry,
    score: str,
    header: Mapping[str, Any] | None = None,
) -> dict:
    """Train each (name, `train` keywords) row with `experiments.train_runs`.

    Rows run in `args.output_dir / name` with `InformationDiagnostics`; `entry(summary,
    run_dir, kwargs)` makes a row's results entry in `args.results`, with the keys of
    `header` at the top. A keyword `row` names the row in the entry and is not passed
    to `train`.
    """
    runs = [
        Run(name, {k: v for k, v in kwargs.items() if k != "row"}, kwargs) for name, kwargs in rows
    ]
    return train_runs(
        runs,
        recipe=RECIPE,
        output_dir=args.output_dir,
        results=args.results,
        entry=lambda summary, run_dir, run: entry(summary, run_dir, run.info),
        header=header,
        callbacks=lambda: [InformationDiagnostics()],
        score=score,
        **experiments.budget(args),
        verbose=2,
    )


def _runs(results: dict, row: str) -> list[dict]:
    """A row's finished runs, by seed (entries written before rows had names: by binarization)."""
    runs = [r for r in results["runs"].values() if r.get("row", r["binarization"]) == row]
    return sorted(runs, key=lambda r: r["seed"])


def table(results: dict, protocol: Protocol = PAPER) -> str:
    """The ablation as a markdown table: Fashion-MNIST beside the paper's CIFAR-10.

    Rows of our own (no paper value) are listed once they have a result.
    """
    lines = [
        "| row | Fashion-MNIST top-1 % (final epoch, per seed) | mean | paper CIFAR-10 % |",
        "|---|---|---|---|",
    ]
    for name, row in protocol.rows.items():
        runs = _runs(results, name)
        paper = "" if row.paper is None else row.paper
        if runs:
            per_seed = ", ".join(
                f"{100 * r['final_test_accuracy']:.2f} (s{r['seed']})" for r in runs
            )
            mean = sum(r["final_test_accuracy"] for r in runs) / len(runs)
            lines.append(f"| {row.label} | {per_seed} | {100 * mean:.2f} | {paper} |")
        else:
            lines.append(f"| {row.label} | not run yet | | {paper} |")
    return "\n".join(lines)


def comparisons(results: dict, protocol: Protocol = PAPER, std: float | None = None) -> list[str]:
    """The protocol's comparisons (`PAPER_COMPARISONS`), in points of final-epoch test
    accuracy, for the rows that ran.

    `"difference"`: a - b on the means, against two standard errors of the difference
    from the pooled run-to-run std `std` (`noise.difference`: resolved or not resolved,
    whatever the sign; no verdict without `std`). `"gap"`: a - b on the means.
    `"closes"`: (a - b) / (full precision - b), the share of the gap from b to full
    precision that a closes.
    """
    scores = {
        name: [100 * r["final_test_accuracy"] for r in _runs(results, name)]
        for name in protocol.rows
    }
    scores = {name: values for name, values in scores.items() if values}
    lines = []
    for a, b, kind in protocol.comparisons:
        if a not in scores or b not in scores or (kind == "closes" and "fp" not in scores):
            continue
        name_a, name_b = protocol.rows[a].name, protocol.rows[b].name
        runs = f"{len(scores[a])} and {len(scores[b])}"
        delta = noise.difference(scores[a], scores[b], std or 0.0)
        if kind == "difference":
            verdict = noise.verdict(*delta) if std else f"{delta[0]:+.2f} points"
            lines.append(f"{name_a} - {name_b}: {verdict} (runs: {runs})")
        elif kind == "gap":
            lines.append(f"{name_a} - {name_b}: {delta[0]:+.2f} points (runs: {runs})")
        elif kind == "closes":
            gap = sum(scores["fp"]) / len(scores["fp"]) - sum(scores[b]) / len(scores[b])
            share = f"{100 * delta[0] / gap:.0f}%" if gap > 0 else "undefined (no gap)"
            lines.append(
                f"{name_a} closes {share} of the gap from {name_b} to full precision "
                f"({delta[0]:+.2f} of {gap:.2f} points)"
            )
    return lines


def test_noise(paper: dict, tuned: dict, others: Mapping | None = None) -> tuple[float, int] | None:
    """The pooled run-to-run std (points) and its degrees of freedom over every test-set
    run (`noise.estimate`): both protocols' and `others` ({file name: runs}; default the
    other committed test-set results files, `noise.TEST_FILES`), or None before any row
    has two runs."""
    if others is None:
        others = noise.load(name for name in noise.TEST_FILES if not name.startswith("ablation"))
    files = {**others, "ablation.json": paper["runs"], "ablation_tuned.json": tuned["runs"]}
    try:
        found = noise.estimate(files)
    except ValueError:
        return None
    return found["std"], found["dof"]


def plot(results: dict, out_dir: Path, protocol: Protocol = PAPER) -> list[Path]:
    """Accuracy curves of all rows, Libra-PB vs plain-binary weight entropy, EDE's t.

    The paper protocol's files are `accuracy.png`, `entropy.png`, `flip_ratio.png` and
    `ede_schedule.png`; another protocol's carry its name first (`tuned_accuracy.png`),
    so the two protocols' figures sit side by side.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    written = []

    def save(fig, name):
        name = name if protocol is PAPER else f"{protocol.name}_{name}"
        with atomic_path(out_dir / name) as temp:
            fig.savefig(temp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / name)

    colors = {name: f"C{i % 10}" for i, name in enumerate(protocol.rows)}

    def style(run):
        """One colour per row, solid for seed 0 and dashed for the other seeds."""
        row = run.get("row", run["binarization"])
        return {"color": colors.get(row, "k"), "ls": "--" if run["seed"] else "-"}

    # All epochs, and the second half zoomed in, where the rows' final values are told apart.
    fig, (full, late) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in sorted(runs.items()):
        accuracy = [100 * a for a in run["history"]["val_accuracy"]]
        epochs = range(1, len(accuracy) + 1)
        full.plot(epochs, accuracy, marker=".", label=name, **style(run))
        half = len(accuracy) // 2
        late.plot(epochs[half:], accuracy[half:], marker=".", label=name, **style(run))
    full.set(xlabel="epoch", ylabel="test accuracy (%)", title="all epochs")
    late.set(xlabel="epoch", ylabel="test accuracy (%)", title="second half")
    for ax in (full, late):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    late.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(
        f"Fashion-MNIST, ResNet-20 1w1a, {protocol.name} protocol: test accuracy per row"
        if protocol is not PAPER
        else "Fashion-MNIST, ResNet-20 1w1a: final-epoch test accuracy per row"
    )
    save(fig, "accuracy.png")

    pairs = [(n, r) for n, r in sorted(runs.items()) if "entropy_mean" in r["history"]]
    if pairs:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for name, run in pairs:
            entropy = run["history"]["entropy_mean"]
            left.plot(range(1, len(entropy) + 1), entropy, marker=".", label=name, **style(run))
        left.set(xlabel="epoch", ylabel="bits", title="binary weight entropy, mean of layers")
        left.legend(fontsize=8)
        for name, run in pairs:
            layers = sorted(k for k in run["history"] if k.startswith("entropy/"))
            if name in _ENTROPY_ROWS and layers:
                last = [run["history"][k][-1] for k in layers]
                right.plot(range(len(last)), last, marker="o", label=name, **style(run))
        right.set(xlabel="binarized layer", ylabel="bits", title="per-layer entropy, last epoch")
        right.grid(alpha=0.3)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.legend(fontsize=8)
        save(fig, "entropy.png")

    flips = [(n, r) for n, r in sorted(runs.items()) if r["history"].get("flip_ratio_mean")]
    if flips:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, run in flips:
            ratio = [100 * v for v in run["history"]["flip_ratio_mean"]]
            ax.semilogy(range(1, len(ratio) + 1), ratio, marker=".", label=name, **style(run))
        ax.set(
            xlabel="epoch",
            ylabel="% of binary weights",
            title="weights whose sign flipped during the epoch (mean of layers)",
        )
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
        save(fig, "flip_ratio.png")

    ede = [(n, r) for n, r in sorted(runs.items()) if "ede_t" in r["history"]]
    if ede:
        fig, ax = plt.subplots(figsize=(6, 4))
        name, run = ede[0]
        t = run["history"]["ede_t"]
        ax.semilogy(range(len(t)), t, marker="o", label="t")
        ax.semilogy(range(len(t)), [ede_default_k(v) for v in t], marker="s", label="k")
        ax.set(xlabel="epoch", title=f"EDE schedule ({name})")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        save(fig, "ede_schedule.png")
    return written


def plot_search(search: dict, out_dir: Path) -> Path:
    """The search's final validation accuracy per row and grid point, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = search_points()
    best = best_recipes(search)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(columns)

    def style(overrides: Mapping[str, Any]) -> dict:
        # One colour per optimizer and rate; latent weight decay off is hatched.
        point = (overrides["optimizer"], overrides["learning_rate"])
        color = plt.get_cmap("tab10")(SEARCH_OPTIMIZERS.index(point) % 10)
        return {"facecolor": color, "hatch": None if overrides["decay_latent_weights"] else "//"}

    for j, overrides in enumerate(columns):
        xs, ys, edges = [], [], []
        for i, row in enumerate(SEARCH_ROWS):
            run = search["runs"].get(search_name(row, overrides))
            if run is not None:
                xs.append(i - 0.4 + (j + 0.5) * width)
                ys.append(100 * run["final_validation_accuracy"])
                edges.append("k" if best.get(row) == overrides else "none")
        bars = ax.bar(xs, ys, width, **style(overrides), linewidth=1.5)
        for bar, edge in zip(bars, edges, strict=True):
            bar.set_edgecolor("k" if edge == "k" else "white")
    ax.set_xticks(range(len(SEARCH_ROWS)), [TUNED_ROWS[r].label for r in SEARCH_ROWS])
    scores = [100 * r["final_validation_accuracy"] for r in search["runs"].values()]
    if scores:
        ax.set_ylim(min(scores) - 2, max(scores) + 2)
    ax.set(
        ylabel="validation accuracy (%)",
        title=f"Recipe search: {SEARCH_EPOCHS} epochs, {VALIDATION_SIZE} validation images "
        "carved from the training set (black edge: the row's best)",
    )
    ax.grid(alpha=0.3, axis="y")
    handles = [
        Patch(**style(overrides), edgecolor="white", label=point_label(overrides))
        for overrides in columns
    ]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "search.png"
    with atomic_path(path) as temp:
        fig.savefig(temp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


#: The results page's generated blocks: name -> (results file, what goes between the markers).
DOCS_BLOCKS = ("noise", "paper", "search", "tuned")


def docs_block(name: str, search: dict, paper: dict, tuned: dict) -> str:
    """The markdown of one generated block of docs/results.md (see `update_docs`)."""
    found = test_noise(paper, tuned)
    std = found[0] if found else None
    if name == "noise":
        if found is None:
            return "- run-to-run noise: no row has two runs yet"
        return (
            f"- run-to-run noise: pooled std **{found[0]:.2f} points** of final-epoch test "
            f"accuracy ({found[1]} degrees of freedom; `python benchmarks/noise.py`)"
        )
    if name == "paper":
        lines = comparisons(paper, PAPER, std)
        return "\n".join([table(paper), "", *(f"- {line}" for line in lines)])
    if name == "search":
        best = best_recipes(search)
        lines = [search_table(search), ""]
        for row in SEARCH_ROWS:
            if row in best:
                o = best[row]
                latent = "on" if o["decay_latent_weights"] else "off"
                lines.append(
                    f"- best recipe for {TUNED_ROWS[row].label}: {o['optimizer']} "
                    f"{o['learning_rate']:g}, latent weight decay {latent}"
                )
        done, total = len(search["runs"]), len(search_grid())
        lines.append(f"- search runs finished: {done} of {total}")
        return "\n".join(lines)
    if name == "tuned":
        tuned_protocol = PROTOCOLS["tuned"]
        budget = tuned.get("epochs")
        lines = [
            recipe_table(tuned_recipes(search)[0], grid_edges(search)),
            "",
            f"Budget: {budget} epochs per row." if budget else "Budget: no row has run yet.",
            "",
            table(tuned, tuned_protocol),
            "",
            *(f"- {line}" for line in comparisons(tuned, tuned_protocol, std)),
        ]
        return "\n".join(lines)
    raise ValueError(f"unknown docs block {name!r}; expected one of {DOCS_BLOCKS}")


def update_docs(
    path: Path, search_path: Path, tuned_path: Path | None = None, paper_path: Path | None = None
) -> list[str]:
    """Rewrite the generated blocks of the results page at `path` from the results files
    (the paper protocol's from `paper_path`, default `benchmarks/results/ablation.json`).

    A block sits between `<!-- ablation:NAME -->` and `<!-- /ablation:NAME -->` (NAME in
    `DOCS_BLOCKS`); text outside the markers is kept. Returns the names rewritten.

    # Raises
        SystemExit: a block's markers are missing or out of order.
    """
    search = load_results(search_path)
    paper = load_results(paper_path or ROOT / PAPER.results)
    tuned = load_results(tuned_path or ROOT / PROTOCOLS["tuned"].results)
    return rewrite_marked_blocks(
        path,
        {f"ablation:{name}": docs_block(name, search, paper, tuned) for name in DOCS_BLOCKS},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default="paper",
        help="paper: every row on the paper's recipe; tuned: each row on its searched recipe",
    )
    parser.add_argument("--output-dir", type=Path, default=None, help="default runs/<mode>")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="default benchmarks/results/ablation.json (ablation_tuned.json with --protocol "
        "tuned, search.json with --search); with --update-docs, the paper protocol's",
    )
    parser.add_argument(
        "--search-results",
        type=Path,
        default=ROOT / "benchmarks/results/search.json",
        help="the search's results, which --protocol tuned takes its recipes from",
    )
    parser.add_argument(
        "--allow-grid-edge",
        action="store_true",
        help="--protocol tuned: train a row whose searched best rate is the highest or lowest "
        "its optimizer was searched at (refused by default: the grid is to be extended)",
    )
    parser.add_argument(
        "--tuned-results",
        type=Path,
        default=ROOT / PROTOCOLS["tuned"].results,
        help="with --update-docs: the tuned protocol's results",
    )
    parser.add_argument(
        "--search",
        action="store_true",
        help="run the recipe search on the validation split instead of the ablation rows",
    )
    parser.add_argument(
        "--latent-scale",
        action="store_true",
        help="only measure c of the bnn_lr_scaled row (median 1/std, trained and initial)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="ROW",
        help="e.g. irnet-seed0 bnn-seed1 (with --search: e.g. fp-adam0.001-wd)",
    )
    experiments.add_budget_arguments(parser)
    parser.add_argument(
        "--update-docs",
        type=Path,
        default=None,
        metavar="PAGE",
        help="only rewrite the generated tables of PAGE (docs/results.md) from the results files",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="only draw the figures from the results file into DIR",
    )
    args = parser.parse_args(argv)
    if args.update_docs:
        names = update_docs(
            args.update_docs, args.search_results, args.tuned_results, paper_path=args.results
        )
        print(f"{args.update_docs}: rewrote the {', '.join(names)} blocks")
        return 0
    if args.latent_scale:
        for name, value in measure_latent_scale().items():
            print(f"median 1/std of the latent weights, {name} ResNet-20: {value:.4f}")
        return 0
    protocol = PROTOCOLS[args.protocol]
    mode = "search" if args.search else ("ablation" if protocol is PAPER else "ablation_tuned")
    args.output_dir = args.output_dir or Path("runs") / mode
    args.results = args.results or ROOT / (
        "benchmarks/results/search.json" if args.search else protocol.results
    )
    if args.search and args.plots:
        search = load_results(args.results)
        if not search["runs"]:
            raise SystemExit(f"{args.results}: no finished search runs to plot")
        print(plot_search(search, args.plots))
        return 0
    if args.search:
        search = run_search(args)
        print(search_table(search))
        for row, overrides in best_recipes(search).items():
            print(f"- best recipe for {row}: {overrides}")
        return 0
    if args.plots:
        results = load_results(args.results)
        if not results["runs"]:
            raise SystemExit(f"{args.results}: no finished rows to plot")
        for path in plot(results, args.plots, protocol):
            print(path)
    elif protocol is PAPER:
        results = run_rows(args)
    else:
        results = run_tuned(args)
    if protocol is not PAPER:
        print(f"Protocol {protocol.name}: {protocol.description}; {results.get('epochs')} epochs")
        search = load_results(args.search_results)
        print(recipe_table(tuned_recipes(search)[0], grid_edges(search)))
    print(table(results, protocol))
    others = {PAPER.name: ROOT / PAPER.results, "tuned": ROOT / PROTOCOLS["tuned"].results}
    both = {name: load_results(path) for name, path in others.items()}
    both[protocol.name] = results
    found = test_noise(both["paper"], both["tuned"])
    for line in comparisons(results, protocol, found[0] if found else None):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(experiments.main_with_one_line_errors(main, "benchmarks/ablation.py"))
