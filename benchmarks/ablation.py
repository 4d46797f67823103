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
recipe from one small fixed grid (`SEARCH_GRID`: the paper's SGD and Adam, both with
cosine decay, each at two learning rates, times weight decay on or off for the latent
binary weights) at a short budget (`SEARCH_EPOCHS`), scored on a validation split of the
last `VALIDATION_SIZE` training images, which those runs do not train on. The test set
plays no part in the choice: the search's results file holds validation scores only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.io import atomic_path, atomic_write, file_lock
from larq_irnet.quantizers import ede_default_k
from larq_irnet.run_directory import HISTORY, RunDirectoryInUse, read_history
from larq_irnet.training import train

RECIPE = "fashion_mnist-resnet20-1w1a"

#: The search: rows that get their own recipe, and the grid each row is searched over.
SEARCH_ROWS = ("fp", "bnn", "irnet")
SEARCH_EPOCHS = 2
VALIDATION_SIZE = 5000
#: (optimizer, learning rate): the paper's SGD (momentum 0.9, its lr 0.1 and a third of it)
#: and Adam at the rates larq-zoo's binary networks train with, all with cosine decay.
SEARCH_OPTIMIZERS = (("sgd", 0.1), ("sgd", 0.03), ("adam", 1e-3), ("adam", 4e-3))
#: The recipe's coupled L2 (1e-4) always decays the float weights; on or off for latent ones.
SEARCH_LATENT_DECAY = (True, False)

#: The paper's Table 2 rows: binarization, label, CIFAR-10 ResNet-20 1/1 top-1 (%).
ROWS = {
    "fp": ("Full precision", 90.8),
    "bnn": ("Plain binary (sign + STE)", 83.8),
    "libra_pb_no_std": ("Libra-PB w/o standardization", 84.3),
    "libra_pb_no_scale": ("Libra-PB w/o bit-shift scale", 84.6),
    "libra_pb": ("Libra-PB", 84.9),
    "ede": ("EDE", 85.2),
    "irnet": ("IR-Net (Libra-PB + EDE)", 86.5),
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
]

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
_HISTORY_KEYS = ("accuracy", "val_accuracy", "loss", "val_loss", "ede_t", "entropy_mean")


def run_name(binarization: str, seed: int) -> str:
    """The name of a row's run directory and results entry."""
    return f"{binarization}-seed{seed}"


def history_columns(path: Path) -> dict[str, list[float]]:
    """Per-epoch columns of a run's history.csv: the headline ones and per-layer entropy."""
    history = read_history(path)
    columns = [k for k in history if k in _HISTORY_KEYS or k.startswith("entropy/")]
    return {k: [float(v) for v in history[k] if math.isfinite(v)] for k in columns}


def load_results(path: Path) -> dict:
    """The results file, or an empty one."""
    if not path.is_file():
        return {"recipe": RECIPE, "runs": {}}
    return json.loads(path.read_text())


def search_name(binarization: str, overrides: dict) -> str:
    """The name of a search run: row, optimizer, learning rate, latent weight decay."""
    latent = "wd" if overrides["decay_latent_weights"] else "nowd"
    return f"{binarization}-{overrides['optimizer']}{overrides['learning_rate']:g}-{latent}"


def search_grid() -> list[tuple[str, str, dict]]:
    """Every search run: (name, binarization, recipe overrides), the rows interleaved.

    Full precision has no latent binary weights, so it is searched over the optimizers only.
    """
    runs = []
    for optimizer, learning_rate in SEARCH_OPTIMIZERS:
        for latent in SEARCH_LATENT_DECAY:
            for binarization in SEARCH_ROWS:
                if binarization == "fp" and not latent:
                    continue
                overrides = {
                    "optimizer": optimizer,
                    "learning_rate": learning_rate,
                    "decay_latent_weights": latent,
                }
                runs.append((search_name(binarization, overrides), binarization, overrides))
    return runs


def best_recipes(search: dict) -> dict[str, dict]:
    """Per searched row, the overrides of its run with the best final validation accuracy."""
    best: dict[str, dict] = {}
    for run in search["runs"].values():
        current = best.get(run["binarization"])
        if current is None or run["final_validation_accuracy"] > current["score"]:
            best[run["binarization"]] = {
                "score": run["final_validation_accuracy"],
                "overrides": run["overrides"],
            }
    return {row: entry["overrides"] for row, entry in best.items()}


def search_table(search: dict) -> str:
    """The search as a markdown table: final validation accuracy per row and grid point."""
    columns = [(o, lr, latent) for o, lr in SEARCH_OPTIMIZERS for latent in SEARCH_LATENT_DECAY]
    header = " | ".join(
        f"{o} {lr:g}, latent wd {'on' if latent else 'off'}" for o, lr, latent in columns
    )
    lines = [f"| row | {header} |", "|---" * (len(columns) + 1) + "|"]
    best = best_recipes(search)
    for binarization in SEARCH_ROWS:
        cells = []
        for o, lr, latent in columns:
            overrides = {"optimizer": o, "learning_rate": lr, "decay_latent_weights": latent}
            run = search["runs"].get(search_name(binarization, overrides))
            if run is None:
                cells.append("n/a" if binarization == "fp" and not latent else "")
                continue
            cell = f"{100 * run['final_validation_accuracy']:.2f}"
            cells.append(f"**{cell}**" if best.get(binarization) == overrides else cell)
        lines.append(f"| {ROWS[binarization][0]} | {' | '.join(cells)} |")
    return "\n".join(lines)


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
        for name, binarization, overrides in search_grid()
    ]

    def entry(summary: dict, run_dir: Path, kwargs: dict) -> dict:
        # Validation scores only: the test set plays no part in choosing a recipe.
        history = history_columns(run_dir / HISTORY)
        return {
            "binarization": kwargs["binarization"],
            "overrides": kwargs["overrides"],
            "epochs": summary["epochs"],
            "validation_size": summary["validation_size"],
            "final_validation_accuracy": summary["final_validation_accuracy"],
            "final_validation_loss": summary["final_validation_loss"],
            "train_seconds": summary["train_seconds"],
            "history": {
                "val_accuracy": history.get("val_accuracy", []),
                "accuracy": history.get("accuracy", []),
            },
        }

    return train_rows(rows, args, entry, score="final_validation_accuracy")


def run_rows(args: argparse.Namespace) -> dict:
    """Train every selected row that is not finished yet, saving results after each."""
    selected = [r for r in RUNS if not args.only or run_name(*r) in args.only]
    unknown = set(args.only or ()) - {run_name(*r) for r in RUNS}
    if unknown:
        raise SystemExit(
            f"--only: unknown rows {sorted(unknown)}; known: {[run_name(*r) for r in RUNS]}"
        )
    rows = [
        (run_name(binarization, seed), {"binarization": binarization, "seed": seed})
        for binarization, seed in selected
    ]

    def entry(summary: dict, run_dir: Path, kwargs: dict) -> dict:
        out = {k: summary.get(k) for k in _SUMMARY_KEYS}
        out["history"] = history_columns(run_dir / HISTORY)
        return out

    return train_rows(rows, args, entry, score="final_test_accuracy")


def train_rows(rows: list[tuple[str, dict]], args: argparse.Namespace, entry, score: str) -> dict:
    """Train each (name, `train` keywords) row not in the results file yet; save after each.

    Rows run in `args.output_dir / name`; `entry(summary, run_dir, kwargs)` makes a row's
    results entry, written to `args.results` under its lock as soon as the row finishes.
    """
    for name, kwargs in rows:
        run_dir = args.output_dir / name
        if name in load_results(args.results)["runs"] and not run_dir.exists():
            # Run directories are scratch (e.g. lost with a machine); the results file is kept.
            print(
                f"== {name}: finished in {args.results}, {run_dir} is gone; not retraining "
                "(delete its entry there to run it again)",
                flush=True,
            )
            continue
        print(f"== {name} -> {run_dir}", flush=True)
        try:
            summary = train(
                RECIPE,
                output_dir=run_dir,
                **{"epochs": args.epochs, **kwargs},
                steps_per_epoch=args.steps_per_epoch,
                train_limit=args.train_limit,
                data_dir=args.data_dir,
                extra_callbacks=[InformationDiagnostics()],
                verbose=2,
            )
        except RunDirectoryInUse as error:
            # Several ablation processes share out the rows: each trains the next free one.
            print(f"== {name}: skipped, {error}", flush=True)
            continue
        row = entry(summary, run_dir, kwargs)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        # Another ablation process may write its row meanwhile: re-read under its lock.
        with file_lock(args.results.parent / f".{args.results.name}.lock"):
            results = load_results(args.results)
            results["runs"][name] = row
            atomic_write(args.results, json.dumps(results, indent=1) + "\n")
        print(f"== {name}: {score} {summary[score]:.4f}", flush=True)
    return load_results(args.results)


def _runs(results: dict, binarization: str) -> list[dict]:
    """A row's finished runs, by seed."""
    runs = [r for r in results["runs"].values() if r["binarization"] == binarization]
    return sorted(runs, key=lambda r: r["seed"])


def table(results: dict) -> str:
    """The ablation as a markdown table: Fashion-MNIST beside the paper's CIFAR-10."""
    lines = [
        "| row | Fashion-MNIST top-1 % (final epoch, per seed) | mean | paper CIFAR-10 % |",
        "|---|---|---|---|",
    ]
    for binarization, (label, paper) in ROWS.items():
        runs = _runs(results, binarization)
        if runs:
            per_seed = ", ".join(
                f"{100 * r['final_test_accuracy']:.2f} (s{r['seed']})" for r in runs
            )
            mean = sum(r["final_test_accuracy"] for r in runs) / len(runs)
            lines.append(f"| {label} | {per_seed} | {100 * mean:.2f} | {paper} |")
        else:
            lines.append(f"| {label} | not run yet | | {paper} |")
    return "\n".join(lines)


def comparisons(results: dict) -> list[str]:
    """The issue's targets, in points of final-epoch test accuracy, for the rows that ran.

    IR-Net against plain binary is compared with the seed-to-seed spread (max - min over
    seeds) once both rows have two seeds or more; Libra-PB and EDE against plain binary,
    and full precision against IR-Net, on their means. A row below plain binary by no
    more than the largest seed spread of any row is said to be so: that is noise-sized.
    """
    stats = {}
    for binarization in ROWS:
        accuracies = [100 * r["final_test_accuracy"] for r in _runs(results, binarization)]
        if accuracies:
            mean = sum(accuracies) / len(accuracies)
            stats[binarization] = (mean, max(accuracies) - min(accuracies), len(accuracies))
    spreads = [spread for _, spread, n in stats.values() if n >= 2]
    noise = max(spreads) if spreads else None
    lines = []
    if "irnet" in stats and "bnn" in stats:
        (irnet, irnet_spread, n_irnet), (bnn, bnn_spread, n_bnn) = stats["irnet"], stats["bnn"]
        line = (
            f"IR-Net - plain binary: {irnet - bnn:+.2f} points "
            f"(means of {n_irnet} and {n_bnn} seeds)"
        )
        if min(n_irnet, n_bnn) >= 2:
            spread = max(irnet_spread, bnn_spread)
            verdict = "more" if irnet - bnn > spread else "not more"
            line += f"; seed spread {spread:.2f} points: {verdict} than the spread"
        else:
            line += "; seed spread unknown until both rows have two seeds"
        lines.append(line)
    for row in ("libra_pb", "ede"):
        if row in stats and "bnn" in stats:
            difference = stats[row][0] - stats["bnn"][0]
            if difference >= 0:
                verdict = "not worse"
            elif noise is not None and -difference <= noise:
                verdict = f"worse, by no more than the largest seed spread, {noise:.2f} points"
            else:
                verdict = "worse"
            lines.append(f"{ROWS[row][0]} - plain binary: {difference:+.2f} points ({verdict})")
    if "fp" in stats and "irnet" in stats:
        lines.append(f"Full precision - IR-Net: {stats['fp'][0] - stats['irnet'][0]:+.2f} points")
    return lines


def plot(results: dict, out_dir: Path) -> list[Path]:
    """Accuracy curves of all rows, Libra-PB vs plain-binary weight entropy, EDE's t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    written = []

    def save(fig, name):
        with atomic_path(out_dir / name) as temp:
            fig.savefig(temp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(out_dir / name)

    colors = {b: f"C{i}" for i, b in enumerate(ROWS)}

    def style(run):
        """One colour per row, solid for seed 0 and dashed for the other seeds."""
        return {"color": colors[run["binarization"]], "ls": "--" if run["seed"] else "-"}

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
    fig.suptitle("Fashion-MNIST, ResNet-20 1w1a: final-epoch test accuracy per row")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=None, help="default runs/<mode>")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="default benchmarks/results/ablation.json (search.json with --search)",
    )
    parser.add_argument(
        "--search",
        action="store_true",
        help="run the recipe search on the validation split instead of the ablation rows",
    )
    parser.add_argument("--only", nargs="+", metavar="ROW", help="e.g. irnet-seed0 bnn-seed1")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="only draw the figures from the results file into DIR",
    )
    args = parser.parse_args(argv)
    mode = "search" if args.search else "ablation"
    args.output_dir = args.output_dir or Path("runs") / mode
    args.results = args.results or Path(f"benchmarks/results/{mode}.json")
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
        for path in plot(results, args.plots):
            print(path)
    else:
        results = run_rows(args)
    print(table(results))
    for line in comparisons(results):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
