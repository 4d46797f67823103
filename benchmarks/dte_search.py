"""DTE's band: does its floor help, and are its defaults (epsilon 0.1, band fraction 0.25)
a good choice?

DTE, our design of DIR-Net's distribution-sensitive two-stage estimator
(`larq_irnet.estimators.dte_gradient`, docs/dirnet.md), has two constants the DIR-Net
paper does not publish: in the second stage, the gradient inside a band of half-width b
around 0 never falls below epsilon (`DTE_EPSILON`, 0.1), and b is chosen so that a
fraction `band_fraction` (`DTE_BAND_FRACTION`, 0.25) of a standardized Gaussian input
lies inside it. The floor changes a gradient only while epsilon exceeds the soft
derivative at the band's edge, which falls as t grows (`larq_irnet.schedules.
dte_floor_epochs`): at the defaults that is only once t > 9.28, the last 1.6% of
training, so in a 10-epoch run it never binds and DTE trains as it would without a
band. The points of `POINTS` therefore move the floor from acting in no epoch to acting
in the last two, the last three and all five epochs of the second stage (the table's
last column, computed from the schedule).

Each point trains DIR-Net's ResNet-20 on Fashion-MNIST for the tuned protocol's budget
(`EPOCHS`; the floor acts late, so a shorter budget would not show it) with DIR-Net's
searched optimizer, learning rate and latent weight decay (the best `dirnet` run of
`benchmarks/ablation.py --search`), scored on the validation split that search chose
the recipe on (the last 5,000 training images, which these runs do not train on). The
choice uses no test score: the results file holds validation scores only (`train`
still scores each final model on the test set; that is not recorded).

One more point asks whether DTE should be DIR-Net's estimator at all: the same network
and recipe with IR-Net's EDE as the estimator of both the weights and the activations
(the `imb` preset: `IMB(gradient="ede")` kernels, `EDESign` inputs). It was added
before the tuned table's second IMB seed had scored, because that table (test scores,
which must not pick a default) had IMB + EDE a point above IMB + DTE on one seed; this
point makes the choice on validation scores instead.

The defaults run with two seeds, so the comparison has a noise scale. The rule, fixed
before any run: a point replaces the defaults only if its validation accuracy is above
the better seed of the defaults by more than their seed spread (`verdict`).

Every run is a resumable run directory (`larq_irnet.training.train`): rerunning the
command continues an interrupted run and skips finished ones; the results file is
rewritten atomically after each run and records the budget, which later runs must share.

    python benchmarks/dte_search.py --output-dir /root/larq-irnet-runs/dte_search
    python benchmarks/dte_search.py --only eps1-band0.5-seed0
    python benchmarks/dte_search.py --update-docs docs/dirnet.md   # its block there
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from larq_irnet.estimators import DTE_BAND_FRACTION, DTE_EPSILON  # noqa: E402
from larq_irnet.schedules import dte_floor_epochs  # noqa: E402
from larq_irnet.training.recipes import get_recipe  # noqa: E402
from larq_irnet.training.run_directory import HISTORY, read_history  # noqa: E402

import experiments  # noqa: E402
import noise  # noqa: E402
from experiments import rewrite_marked_blocks  # noqa: E402

RECIPE = "fashion_mnist-resnet20-1w1a"
SEARCH_ROW = "dirnet"
EPOCHS = 10
RESULTS = Path(__file__).resolve().parent / "results" / "dte_search.json"
SEARCH_RESULTS = Path(__file__).resolve().parent / "results" / "search.json"


class Point(NamedTuple):
    """One point of the search: DIR-Net's estimator (of weights and activations alike) and,
    for DTE, its constants.

    # Arguments
        estimator: `"dte"` (the `dirnet` preset) or `"ede"` (the `imb` preset: the same
            IMB forward pass, IR-Net's EDE as the estimator of weights and activations).
        epsilon: DTE's floor (`Recipe.dte_epsilon`); None for EDE.
        band_fraction: DTE's band fraction (`Recipe.dte_band_fraction`); None for EDE.
        seeds: the seeds it runs with.
    """

    estimator: str
    epsilon: float | None
    band_fraction: float | None
    seeds: tuple[int, ...]
    stage_split: float | None = None

    @property
    def name(self) -> str:
        """Its runs' name before the seed: `eps0.1-band0.25`, or `ede`."""
        if self.estimator == "ede":
            return "ede"
        split = "" if self.stage_split is None else f"-split{self.stage_split:g}"
        return f"eps{self.epsilon:g}-band{self.band_fraction:g}{split}"

    @property
    def binarization(self) -> str:
        """The `zoo.presets` binarization its runs train."""
        return "imb" if self.estimator == "ede" else "dirnet"

    @property
    def overrides(self) -> dict[str, float]:
        """The recipe fields its runs set: DTE's constants, or none for EDE (`train`
        refuses DTE fields for a model without DTE quantizers)."""
        if self.estimator == "ede":
            return {}
        split = {} if self.stage_split is None else {"dte_stage_split": self.stage_split}
        return {"dte_epsilon": self.epsilon, "dte_band_fraction": self.band_fraction, **split}

    @property
    def is_default(self) -> bool:
        """Whether it is DIR-Net as it ships (DTE at its default constants)."""
        return (self.estimator, self.epsilon, self.band_fraction) == DEFAULT and (
            self.stage_split is None
        )


DEFAULT = ("dte", DTE_EPSILON, DTE_BAND_FRACTION)
#: The defaults with two seeds (the noise scale; their floor binds in no epoch of 10),
#: EDE instead of DTE, then floors that bind in the last 2, 3 and 5 epochs.
POINTS: tuple[Point, ...] = (
    Point(*DEFAULT, (0, 1, 2)),
    Point("ede", None, None, (0, 1, 2)),
    Point("dte", DTE_EPSILON, 0.5, (0,)),
    Point("dte", 0.5, 0.5, (0,)),
    Point("dte", 1.0, 0.5, (0,)),
    # Issue 26, timing: DTE's stage split where EDE's t reaches 1 (0.75 of training at
    # the recipe's T_min 1e-3, T_max 10), three seeds.
    Point(*DEFAULT, (0, 1, 2), stage_split=0.75),
)
#: Issue 26's timing arms, judged by `timing_verdict`: (a) the stage split at 0.75; (b)
#: that plus sigma = 1 for the activations, which is the `ede` point: at split 0.75
#: DTE's t and k are EDE's at every epoch, its floor binds in no epoch of 10, and the
#: sigma of standardized weights is sqrt((n - 1) / n) (a constant gradient factor within
#: 1.4% of 1 for n >= 72, which Adam's normalized step removes), so with unit sigma on
#: the activations DTE computes EDE's gradient.
TIMING_ARMS = ("eps0.1-band0.25-split0.75", "ede")
BLOCK = "dte_search"


def all_runs() -> list[tuple[str, Point, int]]:
    """Every run of `POINTS`: (name, point, seed), defaults first; a name is
    `<point name>-seed<seed>`, e.g. `eps0.1-band0.25-seed0` or `ede-seed0`."""
    return [(f"{point.name}-seed{seed}", point, seed) for point in POINTS for seed in point.seeds]


def load_results(path: Path) -> dict:
    """The results file, or an empty one."""
    return experiments.load_results(path, recipe=RECIPE)


def searched_recipe(search_results: Path, allow_grid_edge: bool = False) -> tuple[dict, int]:
    """DIR-Net's searched recipe overrides and the validation size it was chosen on.

    # Raises
        SystemExit: one line: the search has no `dirnet` result, its best is on the grid's
            edge (unless `allow_grid_edge`), or its runs used different validation sizes.
    """
    if not Path(search_results).is_file():
        raise SystemExit(
            f"--search-results: {os.fspath(search_results)} does not exist; expected the "
            "recipe search's results (benchmarks/results/search.json)"
        )
    search = experiments.load_results(search_results)
    recipes = experiments.check_searched(
        search,
        {SEARCH_ROW: (SEARCH_ROW,)},
        [SEARCH_ROW],
        where=search_results,
        allow_grid_edge=allow_grid_edge,
        hint="run `python benchmarks/ablation.py --search` first",
        prefix="--search-results",
    )
    sizes = {
        r["validation_size"] for r in search["runs"].values() if r["binarization"] == SEARCH_ROW
    }
    if len(sizes) != 1:
        raise SystemExit(
            f"{os.fspath(search_results)}: the {SEARCH_ROW} search runs used validation sizes "
            f"{sorted(sizes)}; expected one"
        )
    return recipes[SEARCH_ROW][1], sizes.pop()


def run(args: argparse.Namespace) -> dict:
    """Train every selected run not finished yet; save the results after each."""
    overrides, validation_size = searched_recipe(args.search_results, args.allow_grid_edge)
    results = load_results(args.results)
    experiments.check_unchanged(
        results, {SEARCH_ROW: overrides}, row_key="row", recipe_key="recipe", where=args.results
    )
    budget = {**experiments.budget(args), "epochs": args.epochs or EPOCHS}
    planned = {key: budget[key] for key in ("epochs", "steps_per_epoch", "train_limit")}
    recorded = results.get("budget")
    if recorded is not None and recorded != planned:
        raise SystemExit(
            f"{os.fspath(args.results)} holds runs of another budget ({recorded}, now "
            f"{planned}); pass the same --epochs, --steps-per-epoch and --train-limit, or "
            "another --results"
        )
    header = {
        "recipe_of": SEARCH_ROW,
        "recipe_overrides": overrides,
        "budget": planned,
        "validation_size": validation_size,
        "defaults": {"dte_epsilon": DTE_EPSILON, "dte_band_fraction": DTE_BAND_FRACTION},
    }
    runs = [
        experiments.Run(
            name,
            {
                "binarization": point.binarization,
                "seed": seed,
                "validation_size": validation_size,
                "overrides": {**overrides, **point.overrides},
            },
            {
                "row": SEARCH_ROW,
                "estimator": point.estimator,
                "epsilon": point.epsilon,
                "band_fraction": point.band_fraction,
                "stage_split": point.stage_split,
                "seed": seed,
            },
        )
        for name, point, seed in all_runs()
        if not args.only or name in args.only
    ]

    def entry(summary: dict, run_dir: Path, run: experiments.Run) -> dict:
        # Validation scores only: the test set plays no part in judging the constants.
        history = read_history(run_dir / HISTORY)
        return {
            **run.info,
            "recipe": overrides,
            **experiments.validation_scores(summary),
            "history": {
                key: [float(v) for v in history[key]]
                for key in ("accuracy", "val_accuracy", "dte_in_band", "dte_t")
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
        score="final_validation_accuracy",
        **budget,
        verbose=2,
    )


def _scores(results: dict, point: Point) -> dict[int, float]:
    """{seed: final validation top-1 %} of one point's finished runs."""
    return {
        run["seed"]: 100 * run["final_validation_accuracy"]
        for run in results["runs"].values()
        if (run["estimator"], run["epsilon"], run["band_fraction"], run.get("stage_split"))
        == (point.estimator, point.epsilon, point.band_fraction, point.stage_split)
    }


def floor_epochs(
    epsilon: float, band_fraction: float, epochs: int = EPOCHS, stage_split: float | None = None
) -> str:
    """The epochs (1-based) in which the point's floor changes a gradient, as a table cell:
    `dte_floor_epochs` on the recipe's t range and `stage_split` (default the recipe's)."""
    recipe = get_recipe(RECIPE)
    split = recipe.dte_stage_split if stage_split is None else stage_split
    found = dte_floor_epochs(
        epochs, recipe.ede_t_min, recipe.ede_t_max, split, epsilon, band_fraction
    )
    if not found:
        return "none"
    first, last = found[0] + 1, found[-1] + 1
    if first == last:
        span = str(first)
    elif len(found) == last - first + 1:
        span = f"{first}-{last}"
    else:
        span = ", ".join(str(i + 1) for i in found)
    return f"{span} of {epochs}"


def table(results: dict) -> str:
    """The points as a markdown table: final validation top-1 % per seed, and the epochs
    in which the point's floor changes a gradient (`floor_epochs`)."""
    epochs = (results.get("budget") or {}).get("epochs", EPOCHS)
    lines = [
        "| estimator | epsilon | band fraction | stage split | validation top-1 %, seed 0 "
        "| seed 1 | seed 2 | floor binds in epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for point in POINTS:
        scores = _scores(results, point)
        cells = [
            f"{scores[s]:.2f}" if s in scores else "not run yet" if s in point.seeds else "-"
            for s in (0, 1, 2)
        ]
        if point.estimator == "ede":
            head = ["EDE (the `imb` preset)", "-", "-", "-"]
            floor = "no band"
        else:
            default = " (defaults)" if point.is_default else ""
            split = point.stage_split or get_recipe(RECIPE).dte_stage_split
            head = [f"DTE{default}", f"{point.epsilon:g}", f"{point.band_fraction:g}", f"{split:g}"]
            floor = floor_epochs(point.epsilon, point.band_fraction, epochs, split)
        lines.append(f"| {' | '.join([*head, *cells, floor])} |")
    return "\n".join(lines)


def timing_verdict(results: dict) -> list[str]:
    """Issue 26's rule, fixed before its runs: an arm of `TIMING_ARMS` replaces the
    defaults only if its mean validation accuracy beats theirs by more than two standard
    errors of the difference (`noise.difference`), s pooled over this file's groups of
    same-point runs. The verdict waits for three seeds of the defaults and of each arm."""
    points = {point.name: point for point in POINTS}
    scores = {name: list(_scores(results, points[name]).values()) for name in points}
    waiting = [n for n in (POINTS[0].name, *TIMING_ARMS) if len(scores[n]) < 3]
    if waiting:
        return [f"timing: waiting for three seeds of {', '.join(waiting)}: no verdict yet"]
    s, dof = noise.pooled_std(scores.values())
    defaults = scores[POINTS[0].name]
    lines = [f"timing: pooled std {s:.2f} points ({dof} degrees of freedom)"]
    adopted = []
    for arm in TIMING_ARMS:
        delta, se, resolved = noise.difference(scores[arm], defaults, s)
        lines.append(f"{arm} - defaults: {noise.verdict(delta, se, resolved)}")
        if resolved and delta > 0:
            adopted.append((delta, arm))
    if not adopted:
        lines.append(
            "timing: no arm beats the defaults by more than two standard errors: they stay"
        )
    else:
        lines.append(f"timing: {max(adopted)[1]} beats the defaults beyond two standard errors")
    return lines


def verdict(results: dict) -> list[str]:
    """The rule of the module docstring applied to the finished runs, as sentences.

    Once both seeds of the defaults have finished, each finished point's difference from
    their better seed is reported; the verdict itself waits for every point."""
    # The band's rule (the first round, before issue 26): seeds 0 and 1 of the defaults.
    defaults = {seed: x for seed, x in _scores(results, POINTS[0]).items() if seed < 2}
    if len(defaults) < 2:
        return ["the defaults' two seeds have not both finished: no comparison yet"]
    others = {
        point.name: scores[0]
        for point in POINTS[1:]
        if point.stage_split is None and 0 in (scores := _scores(results, point))
    }
    spread = max(defaults.values()) - min(defaults.values())
    best_default = max(defaults.values())
    against = ", ".join(f"{name} {score - best_default:+.2f}" for name, score in others.items())
    lines = [
        f"defaults: {' / '.join(f'{defaults[s]:.2f}' for s in sorted(defaults))} (seed "
        f"spread {spread:.2f}); against the defaults' better seed: {against or 'none yet'}"
    ]
    waiting = [p.name for p in POINTS[1:] if p.stage_split is None and p.name not in others]
    if waiting:
        return [*lines, f"waiting for {', '.join(waiting)}: no verdict yet"]
    best, score = max(others.items(), key=lambda item: item[1])
    if score - best_default <= spread:
        lines.append(
            "no point beats the defaults by more than their seed spread: the defaults stay"
        )
    elif best == "ede":
        lines.append(
            "EDE beats the defaults by more than their seed spread: DIR-Net's estimator "
            "should be EDE, not DTE (and the DIR-Net rows be retrained)"
        )
    else:
        lines.append(
            f"{best} beats the defaults by more than their seed spread: it should become "
            "the default (and the DTE rows be retrained)"
        )
    return lines


def docs_block(results: dict) -> str:
    """The generated block of docs/dirnet.md: recipe, budget, table and verdict."""
    recipe = results.get("recipe_overrides")
    budget = results.get("budget") or {}
    if recipe:
        epochs = budget.get("epochs", EPOCHS)
        limits = [
            f"{budget[key]} {what}"
            for key, what in (("steps_per_epoch", "steps per epoch"), ("train_limit", "images"))
            if budget.get(key)
        ]
        head = (
            f"- recipe: {experiments.recipe_label(recipe)} (DIR-Net's searched recipe), "
            f"{epochs} epoch{'' if epochs == 1 else 's'}"
            f"{' (at most ' + ', '.join(limits) + ')' if limits else ''}, validation on the "
            f"last {results.get('validation_size')} training images"
        )
    else:
        head = "- recipe: no run has finished yet"
    lines = [*verdict(results), *timing_verdict(results)]
    return "\n".join([head, "", table(results), "", *(f"- {x}" for x in lines)])


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs/dte_search"))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--search-results", type=Path, default=SEARCH_RESULTS)
    parser.add_argument(
        "--allow-grid-edge",
        action="store_true",
        help="train on DIR-Net's searched best rate even if it is the highest or lowest searched",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="RUN", help="e.g. eps1-band0.5-seed0, ede-seed0"
    )
    experiments.add_budget_arguments(parser, epochs=str(EPOCHS))
    parser.add_argument(
        "--update-docs",
        type=Path,
        default=None,
        metavar="PAGE",
        help=f"only rewrite PAGE's <!-- {BLOCK} --> block (docs/dirnet.md) from --results",
    )
    args = parser.parse_args(argv)
    if args.update_docs:
        rewrite_marked_blocks(args.update_docs, {BLOCK: docs_block(load_results(args.results))})
        print(f"{args.update_docs}: rewrote the {BLOCK} block")
        return 0
    known = [name for name, *_ in all_runs()]
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"--only: unknown runs {unknown}; known: {known}")
    results = run(args)
    print(table(results))
    for line in verdict(results):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(experiments.main_with_one_line_errors(main, "benchmarks/dte_search.py"))
