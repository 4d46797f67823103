"""Does IR-Net help a network it was not designed for? larq-zoo's QuickNetSmall, twice.

larq-zoo's QuickNetSmall (`larq_zoo.sota.QuickNetSmall`, `weights=None`) trains on
Fashion-MNIST twice per seed, changing only the quantizers:

- `zoo`: the network as larq-zoo builds it (`ste_sign` inputs and kernels,
  `weight_clip`);
- `irnet`: `larq_irnet.irnetify(network)` (Libra-PB kernels with their filter axes, EDE
  sign inputs, no `weight_clip`); `train` adds `EDECallback` because the model has EDE
  quantizers.

Recipe: `fashion_mnist-resnet20-1w1a` (cosine decay, coupled L2 1e-4 on the float
weights, EDE T 1e-3 -> 10, 10 epochs) with, by default (`--protocol tuned`), each
method's optimizer, learning rate and latent-weight decay from the recipe search of
`benchmarks/ablation.py --search` (issue 12's tuned protocol): the best of plain
binary's search runs for `zoo`, the best of IR-Net's for `irnet` (`SEARCH_ROW`), as
chosen on the validation split. `--protocol paper` trains both on the recipe as
written (SGD 0.1).

Input: QuickNet needs at least 32x32, so the 28x28x1 images are padded by 2 pixels of 0
(black, Fashion-MNIST's background) on every side, *before* the rescaling to [-1, 1]
that the model does itself; the network is built with `input_shape=(32, 32, 1)`,
`num_classes=10` and sits inside a small wrapper model (padding, rescaling, network),
which `irnetify` opens as a nested model.

Every run is a resumable run directory (`larq_irnet.training.train`): rerunning the
command continues an interrupted run from its last epoch and skips finished ones. The
results file is rewritten atomically after each run with the final-epoch accuracy on
the full test set (all 10,000 images) and the per-epoch history.

    python benchmarks/irnetify_zoo.py                      # 2 methods x 2 seeds
    python benchmarks/irnetify_zoo.py --only irnet-seed0   # one run
    python benchmarks/irnetify_zoo.py --epochs 1 --steps-per-epoch 20 --output-dir /tmp/x
    python benchmarks/irnetify_zoo.py --update-docs docs/results.md   # its block there
    python benchmarks/irnetify_zoo.py --only irnet-seed0 --recipe-row irnet=bnn \
        --results benchmarks/results/irnetify_zoo_same_recipe.json   # IR-Net, bnn's recipe
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq_irnet  # noqa: E402  (first: selects Keras 2, registers the quantizers)
from larq_irnet.training.run_directory import HISTORY, read_history  # noqa: E402

import experiments  # noqa: E402
import tensorflow as tf  # noqa: E402
from experiments import rewrite_marked_blocks  # noqa: E402

RECIPE = "fashion_mnist-resnet20-1w1a"
METHODS = ("zoo", "irnet")
SEEDS = (0, 1)
RESULTS = Path(__file__).resolve().parent / "results" / "irnetify_zoo.json"
#: IR-Net on plain binary's recipe (`--recipe-row irnet=bnn`): rate and quantizers apart.
SAME_RECIPE_RESULTS = RESULTS.with_name("irnetify_zoo_same_recipe.json")
SEARCH_RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
#: The search row whose best recipe each method trains with `--protocol tuned`: the
#: network's own quantizers are plain binary's (sign + STE), irnetify's are IR-Net's.
SEARCH_ROW = {"zoo": "bnn", "irnet": "irnet"}
PADDED = 32


def quicknet_small(input_shape: tuple[int, ...], num_classes: int) -> tf.keras.Model:
    """larq-zoo's QuickNetSmall, untrained, for `input_shape` padded to 32x32."""
    import larq_zoo as lqz

    return lqz.sota.QuickNetSmall(
        input_shape=(PADDED, PADDED, input_shape[-1]), weights=None, num_classes=num_classes
    )


#: The networks the script can train: name -> builder(input_shape, num_classes).
NETWORKS: dict[str, Callable[..., tf.keras.Model]] = {"QuickNetSmall": quicknet_small}


def padded_network(*, input_shape, num_classes, network="QuickNetSmall", method="zoo"):
    """Raw 28x28 pixels, padded with 0 to 32x32, rescaled to [-1, 1], then the network;
    with `method="irnet"` (or `"dirnet"`) the whole model goes through `irnetify`."""
    height, width = input_shape[:2]
    inputs = tf.keras.Input(input_shape)
    x = (
        tf.keras.layers.ZeroPadding2D(
            ((PADDED - height) // 2, (PADDED - height + 1) // 2),
        )(inputs)
        if (height, width) != (PADDED, PADDED)
        else inputs
    )
    x = tf.keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    outputs = NETWORKS[network](input_shape, num_classes)(x)
    model = tf.keras.Model(inputs, outputs, name=f"{network.lower()}_{method}")
    if method != "zoo":
        model, _ = larq_irnet.irnetify(model, method=method)
    return model


def run_name(method: str, seed: int) -> str:
    """The run's name: `<method>-seed<seed>`."""
    return f"{method}-seed{seed}"


def load_results(path: Path) -> dict:
    """The results file, or an empty one."""
    return experiments.load_results(path, recipe=RECIPE)


def tuned_overrides(
    search_results: Path,
    allow_grid_edge: bool = False,
    methods: Sequence[str] = METHODS,
    rows: Mapping[str, str] = SEARCH_ROW,
) -> dict[str, dict]:
    """Each method's recipe overrides: the best search run of its row in `rows`
    (default `SEARCH_ROW`).

    # Raises
        SystemExit: the search has no result for one of `methods`' rows yet, or (unless
            `allow_grid_edge`) such a row's best is on the grid's edge
            (`experiments.check_searched`).
    """
    recipes = experiments.check_searched(
        experiments.load_results(search_results),
        {method: (row,) for method, row in rows.items()},
        list(methods),
        where=search_results,
        allow_grid_edge=allow_grid_edge,
        hint="run `python benchmarks/ablation.py --search` first or pass --protocol paper",
    )
    return {method: overrides for method, (_, overrides) in recipes.items()}


def run(args: argparse.Namespace) -> dict:
    """Train every selected run not finished yet; save results after each."""
    selected = [
        method
        for method in METHODS
        if not args.only or any(run_name(method, seed) in args.only for seed in SEEDS)
    ]
    recipes = (
        tuned_overrides(args.search_results, args.allow_grid_edge, selected, args.recipe_row)
        if args.protocol == "tuned"
        else {}
    )
    header = {"protocol": args.protocol, "recipes": recipes, "search_rows": args.recipe_row}
    previous = load_results(args.results).get("protocol")
    if previous not in (None, args.protocol):
        raise SystemExit(
            f"--protocol {args.protocol}: {args.results} holds {previous}-protocol runs; "
            "pass another --results"
        )
    experiments.check_unchanged(
        load_results(args.results),
        {method: recipes[method] for method in selected if method in recipes},
        row_key="method",
        recipe_key="recipe",
        where=args.results,
    )
    runs = [
        experiments.Run(
            run_name(method, seed),
            {
                "seed": seed,
                "overrides": {
                    **recipes.get(method, {}),
                    "model": padded_network,
                    "model_kwargs": {"network": args.network, "method": method},
                },
            },
            {"method": method, "seed": seed},
        )
        for method in METHODS
        for seed in SEEDS
        if not args.only or run_name(method, seed) in args.only
    ]

    def entry(summary: dict, run_dir: Path, run: experiments.Run) -> dict:
        history = read_history(run_dir / HISTORY)
        return {
            "network": args.network,
            **run.info,
            "recipe": recipes.get(run.info["method"]),
            "final_test_accuracy": summary["final_test_accuracy"],
            "epochs": summary.get("epochs"),
            "train_seconds": summary.get("train_seconds"),
            "history": {
                key: [float(v) for v in history[key]]
                for key in ("accuracy", "val_accuracy", "epoch_seconds")
                if key in history
            },
        }

    return experiments.train_runs(
        runs,
        recipe=RECIPE,
        output_dir=args.output_dir,
        results=args.results,
        entry=entry,
        header=header,
        score="final_test_accuracy",
        **experiments.budget(args),
        verbose=2,
    )


def table(results: dict) -> str:
    """The runs as a markdown table, one row per method."""
    lines = [
        "| network | quantizers | final-epoch test top-1 % per seed | mean |",
        "|---|---|---|---|",
    ]
    for method in METHODS:
        runs = [r for r in results["runs"].values() if r["method"] == method]
        if not runs:
            continue
        scores = [100 * r["final_test_accuracy"] for r in sorted(runs, key=lambda r: r["seed"])]
        lines.append(
            f"| {runs[0]['network']} | {method} | {' / '.join(f'{s:.2f}' for s in scores)} "
            f"| {sum(scores) / len(scores):.2f} |"
        )
    return "\n".join(lines)


def comparison(results: dict) -> list[str]:
    """irnet against zoo: the difference of the means and each method's seed spread."""
    scores = {
        method: [100 * r["final_test_accuracy"] for r in results["runs"].values()
                 if r["method"] == method]
        for method in METHODS
    }  # fmt: skip
    if not all(scores.values()):
        return ["irnet against zoo: not both methods have finished a run yet"]
    mean = {m: sum(v) / len(v) for m, v in scores.items()}
    spread = {m: max(v) - min(v) for m, v in scores.items()}
    delta = mean["irnet"] - mean["zoo"]
    runs = min(len(v) for v in scores.values())
    lines = [
        f"irnet - zoo: {delta:+.2f} points (means of {runs}+ seeds); seed spread (max - min): "
        f"zoo {spread['zoo']:.2f}, irnet {spread['irnet']:.2f}"
    ]
    if runs > 1:
        larger = max(spread.values())
        verdict = "larger than" if abs(delta) > larger else "within"
        lines.append(f"the difference is {verdict} the larger seed spread ({larger:.2f})")
    return lines


def with_reference_runs(results: dict, reference: dict, where: Path) -> dict:
    """`results` plus `reference`'s runs of the methods `results` has no run of.

    # Raises
        SystemExit: a borrowed method trained another recipe in `reference` (naming it).
    """
    have = {run["method"] for run in results["runs"].values()}
    runs = dict(results["runs"])
    for name, run in reference["runs"].items():
        method = run["method"]
        if method in have:
            continue
        ours, theirs = results["recipes"].get(method), reference["recipes"].get(method)
        if ours != theirs:
            raise SystemExit(f"{where}: {method} trained {theirs}, not this file's {ours}")
        runs[name] = run
    return {**results, "runs": runs}


def docs_block(results: dict) -> str:
    """The generated block of docs/results.md: recipes, table and comparison."""
    lines = []
    rows = results.get("search_rows", SEARCH_ROW)
    for method, recipe in sorted(results.get("recipes", {}).items()):
        latent = "on" if recipe.get("decay_latent_weights") else "off"
        lines.append(
            f"- `{method}` trains {rows[method]}'s searched recipe: "
            f"{recipe['optimizer']} {recipe['learning_rate']:g}, latent weight decay {latent}"
        )
    budgets = sorted({r["epochs"] for r in results["runs"].values() if r.get("epochs")})
    lines.append(
        f"- budget: {', '.join(map(str, budgets))} epochs per run"
        if budgets
        else "- budget: no run has finished yet"
    )
    return "\n".join([*lines, "", table(results), "", *(f"- {x}" for x in comparison(results))])


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs/irnetify_zoo"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--protocol",
        choices=("tuned", "paper"),
        default="tuned",
        help="tuned: each method on its search row's best recipe (SEARCH_ROW); paper: both "
        "on the recipe as written",
    )
    parser.add_argument("--search-results", type=Path, default=SEARCH_RESULTS)
    parser.add_argument(
        "--recipe-row",
        action="append",
        default=[],
        metavar="METHOD=ROW",
        help="tuned: take METHOD's recipe from search row ROW instead of SEARCH_ROW's, e.g. "
        "irnet=bnn to train both methods on one recipe (use another --results)",
    )
    parser.add_argument(
        "--allow-grid-edge",
        action="store_true",
        help="tuned: train on a searched best rate that is the highest or lowest searched",
    )
    parser.add_argument("--network", default="QuickNetSmall", choices=sorted(NETWORKS))
    parser.add_argument("--only", nargs="+", metavar="RUN", help="e.g. irnet-seed0 zoo-seed1")
    experiments.add_budget_arguments(parser)
    parser.add_argument(
        "--update-docs",
        type=Path,
        default=None,
        metavar="PAGE",
        help="only rewrite PAGE's <!-- BLOCK --> block (docs/results.md) from --results",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="RESULTS",
        help="with --update-docs: take the runs of methods that --results has none of from "
        "this results file, if they trained the same recipe (the same-recipe block's zoo runs)",
    )
    parser.add_argument(
        "--block",
        default="irnetify_zoo",
        help="the block --update-docs rewrites (default irnetify_zoo; "
        "irnetify_zoo:same_recipe for the --recipe-row irnet=bnn results)",
    )
    args = parser.parse_args(argv)
    rows = dict(SEARCH_ROW)
    for item in args.recipe_row:
        method, _, row = item.partition("=")
        if method not in METHODS or not row:
            parser.error(
                f"--recipe-row: expected METHOD=ROW with METHOD in {METHODS}, got {item!r}"
            )
        rows[method] = row
    args.recipe_row = rows
    if args.update_docs:
        results = load_results(args.results)
        if args.reference:
            results = with_reference_runs(results, load_results(args.reference), args.reference)
        block = docs_block(results)
        rewrite_marked_blocks(args.update_docs, {args.block: block})
        print(f"{args.update_docs}: rewrote the {args.block} block")
        return 0
    known = {run_name(m, s) for m in METHODS for s in SEEDS}
    if set(args.only or ()) - known:
        parser.error(
            f"--only: unknown runs {sorted(set(args.only) - known)}; known: {sorted(known)}"
        )
    print(table(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(experiments.main_with_one_line_errors(main, "benchmarks/irnetify_zoo.py"))
