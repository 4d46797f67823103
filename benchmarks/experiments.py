"""The lab's shared helpers: named runs into one results file, searched recipes, docs blocks.

Not installed: the benchmark scripts import it as `import experiments` (run as
`python benchmarks/x.py`, which puts `benchmarks/` on `sys.path`).

An experiment (an ablation table, a recipe search, a comparison over seeds) is a list
of named runs of one recipe, each with its own `larq_irnet.training.TrainOptions` fields,
and a JSON results file that holds one entry per finished run:

```python
from experiments import Run, train_runs

runs = [Run(f"{b}-seed{s}", {"binarization": b, "seed": s}) for b in ("bnn", "irnet")
        for s in (0, 1)]
results = train_runs(
    runs,
    recipe="fashion_mnist-resnet20-1w1a",
    output_dir="runs/compare",
    results="compare.json",
    entry=lambda summary, run_dir, run: {"top1": summary["final_test_accuracy"]},
)
```

- Each run trains in its own run directory, `output_dir/<name>`: rerunning the
  experiment after an interruption continues an unfinished run from its last epoch,
  and a finished one returns at once.
- The results file is rewritten atomically, under a lock, as soon as a run finishes.
  A run whose entry is there but whose run directory is gone (run directories are
  scratch, e.g. lost with a machine) is not trained again.
- Several processes may run the same experiment at once, e.g. one single-threaded
  process per core: a run that another process is training is skipped, so each takes
  the next free one.
- A run that distils from a teacher run directory (`distill_from`) whose `model.h5`
  does not exist yet is skipped: an earlier run of this or another process trains it.
  A teacher given as a model file or a zoo weights name trains at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from larq_irnet._validation import first_line, positive_int_argument
from larq_irnet.io import atomic_write, file_lock
from larq_irnet.training import TrainOptions, train
from larq_irnet.training.run_directory import MODEL, RunDirectoryInUse
from larq_irnet.zoo.loading import locate_model

__all__ = [
    "Run",
    "add_budget_arguments",
    "best_recipes",
    "budget",
    "check_searched",
    "check_unchanged",
    "grid_edges",
    "load_results",
    "main_with_one_line_errors",
    "recipe_label",
    "rewrite_marked_blocks",
    "searched_recipes",
    "train_runs",
    "validation_scores",
]


@dataclasses.dataclass(frozen=True)
class Run:
    """One named run of an experiment.

    # Arguments
        name: the run's name: its directory under `output_dir` and its results key.
        train_kwargs: fields of `larq_irnet.training.TrainOptions` (e.g. `binarization`,
            `seed`, `overrides`, `distill_from`), on top of the experiment's.
        info: anything the results entry needs besides them (e.g. a table row's name).
    """

    name: str
    train_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def load_results(path: str | os.PathLike, **defaults: Any) -> dict:
    """The results file at `path`, or `{**defaults, "runs": {}}` if there is none."""
    path = Path(path)
    if not path.is_file():
        return {**defaults, "runs": {}}
    return json.loads(path.read_text())


def _print_now(line: str) -> None:
    print(line, flush=True)


def _teacher_pending(teacher: str | os.PathLike) -> bool:
    """Whether `teacher` names a run directory whose `model.h5` is not written yet.

    What `larq_irnet.zoo.loading.locate_model` finds (a model file, a finished run or
    SavedModel directory, a zoo weights name) is ready; a path that it does not find
    and that is a directory or not a bare name (e.g. `"fashion_mnist"`) is a teacher
    run that another run or process is still training.
    """
    try:
        locate_model(teacher)
    except FileNotFoundError:
        return isinstance(teacher, os.PathLike) or os.sep in str(teacher) or Path(teacher).is_dir()
    return False


def train_runs(
    runs: Sequence[Run],
    *,
    recipe: str,
    output_dir: str | os.PathLike,
    results: str | os.PathLike,
    entry: Callable[[dict, Path, Run], dict],
    header: Mapping[str, Any] | None = None,
    callbacks: Callable[[], list] | None = None,
    score: str | None = None,
    log: Callable[[str], None] = _print_now,
    **train_kwargs: Any,
) -> dict:
    """Train each run that is not finished yet, and record it in `results` when it is.

    # Arguments
        runs: the runs, trained in this order.
        recipe: the recipe every run trains (`larq_irnet.training.recipes`).
        output_dir: the parent of the runs' directories.
        results: the JSON results file; created if missing.
        entry: `entry(summary, run_dir, run)` -> the run's results entry, from `train`'s
            summary (see `larq_irnet.training.train`).
        header: keys set at the top of the results file (e.g. the protocol and budget).
        callbacks: returns fresh extra Keras callbacks for each run.
        score: a summary key to log when a run finishes (e.g. `"final_test_accuracy"`).
        log: where progress lines go (default: printed and flushed at once, so that a
            log file of a background run is current).
        **train_kwargs: `train` keywords shared by every run (epochs, data_dir, ...);
            a run's own `train_kwargs` take precedence.

    # Returns
        The results file's content after the last run.

    # Raises
        ValueError: from `train`, for a bad recipe or keyword (checked before a run
            writes anything).
        json.JSONDecodeError: `results` exists but is not JSON.
    """
    output_dir, results = Path(output_dir), Path(results)
    for run in runs:
        run_dir = output_dir / run.name
        if run.name in load_results(results)["runs"] and not run_dir.exists():
            log(
                f"== {run.name}: finished in {results}, {run_dir} is gone; not retraining "
                "(delete its entry there to run it again)"
            )
            continue
        teacher = run.train_kwargs.get("distill_from")
        if teacher is not None and _teacher_pending(teacher):
            log(f"== {run.name}: skipped, its teacher {teacher} has no {MODEL} yet")
            continue
        log(f"== {run.name} -> {run_dir}")
        try:
            summary = train(
                recipe,
                run_dir,
                TrainOptions(
                    **{**train_kwargs, **run.train_kwargs},
                    extra_callbacks=callbacks() if callbacks else (),
                ),
            )
        except RunDirectoryInUse as error:
            log(f"== {run.name}: skipped, {error}")
            continue
        row = entry(summary, run_dir, run)
        results.parent.mkdir(parents=True, exist_ok=True)
        # Another process may record its run meanwhile: re-read under the lock.
        with file_lock(results.parent / f".{results.name}.lock"):
            content = {**load_results(results), **(header or {})}
            content["runs"][run.name] = row
            atomic_write(results, json.dumps(content, indent=1) + "\n")
        if score is not None:
            log(f"== {run.name}: {score} {summary[score]:.4f}")
    return load_results(results)


def add_budget_arguments(parser: argparse.ArgumentParser, epochs: str = "the recipe's") -> None:
    """An experiment script's budget and data options: `--epochs N`, `--steps-per-epoch
    N`, `--train-limit N` (integers >= 1, checked as they are parsed) and `--data-dir DIR`
    (checked when the data loads); `epochs` says what the default budget is.
    `budget(args)` turns them into `train_runs` keywords."""
    positive = {"type": positive_int_argument, "default": None, "metavar": "N"}
    parser.add_argument("--epochs", help=f"default: {epochs}", **positive)
    parser.add_argument("--steps-per-epoch", help="default: the whole split", **positive)
    parser.add_argument("--train-limit", help="train on the first N training images", **positive)
    parser.add_argument("--data-dir", metavar="DIR", default=None, help="default: the data set's")


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """The `train_runs` keywords of `add_budget_arguments`' options (None: the recipe's)."""
    return {
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "train_limit": args.train_limit,
        "data_dir": args.data_dir,
    }


def main_with_one_line_errors(
    main: Callable[[list[str] | None], int], prog: str, argv: list[str] | None = None
) -> int:
    """Run an experiment script's `main(argv)`, its bad input reported in one line.

    A ValueError or OSError (a results file that is not JSON, a data directory or page
    that does not exist, a run directory of another configuration) becomes `PROG:
    error: <its first line>` on stderr and exit status 1, not a traceback. Usage errors
    are argparse's (status 2).
    """
    try:
        return main(argv)
    except (ValueError, OSError) as error:
        print(f"{prog}: error: {first_line(error)}", file=sys.stderr)
        return 1


def validation_scores(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A validation-scored run's results entry fields (a recipe or constant search):
    budget, validation size, final validation accuracy and loss, training time, and no
    test score, so that nothing chosen from the entries is chosen on the test set."""
    keys = ("epochs", "validation_size", "final_validation_accuracy", "final_validation_loss")
    return {key: summary[key] for key in (*keys, "train_seconds")}


def best_recipes(search: Mapping[str, Any]) -> dict[str, dict]:
    """Per binarization, the recipe overrides of its search run with the best score.

    `search` is a recipe search's results (`ablation.py --search`): entries
    with `binarization`, `overrides` and `final_validation_accuracy` (scored on a
    validation split carved from the training data, never the test set). Ties keep the
    run listed first; an entry without a score (None) is not a candidate.
    """
    best: dict[str, tuple[float, dict]] = {}
    for run in search["runs"].values():
        if run.get("final_validation_accuracy") is None:
            continue
        current = best.get(run["binarization"])
        if current is None or run["final_validation_accuracy"] > current[0]:
            best[run["binarization"]] = (run["final_validation_accuracy"], run["overrides"])
    return {binarization: overrides for binarization, (_, overrides) in best.items()}


def grid_edges(search: Mapping[str, Any]) -> dict[str, str]:
    """The binarizations whose best recipe lies on the edge of the rates searched.

    A best at the highest (or lowest) learning rate its optimizer was tried at says
    nothing about the rates beyond it, so a recipe chosen there is not yet tuned. The
    rates are those of the binarization's own scored runs in `search` (the results of
    `ablation.py --search`, see `best_recipes`); an optimizer tried at one
    rate only is on both edges.

    # Returns
        {binarization: why}, e.g. `{"fp": "adam 0.025 is the highest adam rate searched"}`,
        for every binarization whose best is on an edge; empty when none is.
    """
    rates: dict[tuple[str, str], set[float]] = {}
    for run in search["runs"].values():
        if run.get("final_validation_accuracy") is None:
            continue
        key = (run["binarization"], run["overrides"]["optimizer"])
        rates.setdefault(key, set()).add(run["overrides"]["learning_rate"])
    edges = {}
    for binarization, overrides in best_recipes(search).items():
        optimizer, rate = overrides["optimizer"], overrides["learning_rate"]
        tried = rates[(binarization, optimizer)]
        side = [
            name for name, end in (("highest", max(tried)), ("lowest", min(tried))) if rate == end
        ]
        if side:
            edges[binarization] = (
                f"{optimizer} {rate:g} is the {' and '.join(side)} {optimizer} rate searched"
            )
    return edges


def searched_recipes(
    search: Mapping[str, Any], sources: Mapping[str, Sequence[str]]
) -> tuple[dict[str, tuple[str, dict]], dict[str, tuple[str, ...]]]:
    """Each row's recipe from a search: ({row: (search row, overrides)}, {row: missing}).

    `sources` maps a row (of a table, a method of a comparison) to the search rows
    (binarizations) it may take its recipe from; it takes the best recipe
    (`best_recipes`) of the first of them with a scored run. Rows none of whose search
    rows has one are returned apart, with those search rows.
    """
    best = best_recipes(search)
    found: dict[str, tuple[str, dict]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    for row, candidates in sources.items():
        source = next((c for c in candidates if c in best), None)
        if source is None:
            missing[row] = tuple(candidates)
        else:
            found[row] = (source, best[source])
    return found, missing


def check_searched(
    search: Mapping[str, Any],
    sources: Mapping[str, Sequence[str]],
    rows: Sequence[str],
    *,
    where: str | os.PathLike,
    allow_grid_edge: bool = False,
    hint: str = "run `python benchmarks/ablation.py --search` first",
    prefix: str = "--protocol tuned",
) -> dict[str, tuple[str, dict]]:
    """`searched_recipes` for the `rows` about to train, refused unless each is tuned.

    # Arguments
        search, sources: as `searched_recipes`.
        rows: the rows that will train (keys of `sources`).
        where: the search's results file, for the messages.
        allow_grid_edge: accept a recipe on the grid's edge (`grid_edges`).
        hint: what to do about missing search results, appended to that message.
        prefix: what the messages start with (the option that needs the search).

    # Returns
        `searched_recipes(search, sources)[0]`: the recipes of every row that has one.

    # Raises
        SystemExit: one line, naming the search rows without results (and the rows that
            need them), or every search row whose best is on the grid's edge.
    """
    found, missing = searched_recipes(search, sources)
    short = sorted({row for row in rows if row in missing})
    if short:
        needed = sorted({c for row in short for c in missing[row]})
        raise SystemExit(
            f"{prefix}: {os.fspath(where)} has no search result for "
            f"{', '.join(needed)} (needed by {short}); {hint}"
        )
    edges = grid_edges(search)
    on_edge = sorted({found[row][0] for row in rows} & set(edges))
    if on_edge and not allow_grid_edge:
        which = "; ".join(f"{row}: {edges[row]} so far" for row in on_edge)
        raise SystemExit(
            f"{prefix}: the best recipe of search row {', '.join(on_edge)} is on the "
            f"grid's edge ({which}); run the row's unfinished grid points or extend the grid "
            "(SEARCH_OPTIMIZERS in benchmarks/ablation.py), or pass --allow-grid-edge"
        )
    return found


def recipe_label(overrides: Mapping[str, Any]) -> str:
    """A searched recipe as tables and messages name it: `adam 0.01, latent wd on`."""
    latent = "on" if overrides.get("decay_latent_weights") else "off"
    rate = overrides.get("learning_rate")
    rate = f"{rate:g}" if isinstance(rate, (int, float)) else rate
    return f"{overrides.get('optimizer')} {rate}, latent wd {latent}"


def check_unchanged(
    results: Mapping[str, Any],
    recipes: Mapping[str, Mapping[str, Any]],
    *,
    row_key: str,
    recipe_key: str,
    where: str | os.PathLike,
) -> None:
    """Refuse to go on when a finished run trained another recipe than its row's now.

    A search that grows after some rows have trained (a grid extended at its edge) can
    change a row's best recipe; the row's later seeds would then train another recipe
    than its earlier ones, and their mean would mix the two.

    # Arguments
        results: the experiment's results file content; each entry names its row under
            `row_key` and the recipe overrides it trained under `recipe_key`.
        recipes: {row: the overrides it would train now} (only these keys are compared).
        where: the results file, for the message.

    # Raises
        SystemExit: one line naming the first such run, both recipes and what to do.
    """
    for name, run in sorted(results["runs"].items()):
        current = recipes.get(run.get(row_key))
        if current is None:
            continue
        trained = run.get(recipe_key) or {}
        if any(trained.get(key) != value for key, value in current.items()):
            raise SystemExit(
                f"{os.fspath(where)}: {name} trained {recipe_label(trained)}, but the search "
                f"now picks {recipe_label(current)} for {run[row_key]}; move that entry and "
                "its run directory away to retrain the row, or keep the search it was chosen from"
            )


def rewrite_marked_blocks(path: str | os.PathLike, blocks: Mapping[str, str]) -> list[str]:
    """Replace generated blocks of a text file (a results page), atomically.

    Each block sits between the lines `<!-- NAME -->` and `<!-- /NAME -->`; its text
    becomes `blocks[NAME]`, and everything outside the markers is kept.

    # Returns
        The names rewritten, in the order of `blocks`.

    # Raises
        SystemExit: one line naming `path` and the first block whose markers are missing
            or out of order (nothing is written then).
    """
    path = Path(path)
    text = path.read_text()
    for name, content in blocks.items():
        start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        head, found, rest = text.partition(start)
        _, closed, tail = rest.partition(end)
        if not found or not closed:
            raise SystemExit(f"{path}: no {start} ... {end} block")
        text = f"{head}{start}\n{content}\n{end}{tail}"
    atomic_write(path, text)
    return list(blocks)
