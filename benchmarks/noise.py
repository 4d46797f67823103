"""Run-to-run noise of the experiments, and differences read against it (issue 26).

Any numerical change to a run (another seed, another scale, another op order) moves its
final accuracy by about the same amount, so one noise figure serves every comparison:
the pooled standard deviation of final-epoch accuracy over every group of runs with the
same configuration (same results file, same run name up to the seed),

    s^2 = sum_g sum_i (x_gi - mean_g)^2 / sum_g (n_g - 1).

A difference between the means of two rows with n_a and n_b runs has the standard error
s * sqrt(1/n_a + 1/n_b); it is called resolved only when it exceeds two standard errors,
whatever its sign. Test-set groups (the two ablation protocols and `irnetify_zoo`: one
test set, one measure) and validation-split groups (`dte_search`) are pooled separately.

Rows that compute the same function pool as one group (`EQUIVALENT`): IMB's scale and
Libra-PB's are divided out by the BatchNormalization after every binary convolution of
the zoo (tests/test_imb_batchnorm.py), so such rows differ only in float rounding, which
18 binary layers amplify into a different run. The estimate without them is printed
beside it; the docs use the one with them, the larger so far.

    python benchmarks/noise.py        # prints the estimates, writes results/noise.json
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # larq_irnet imports TensorFlow

from larq_irnet.io import atomic_write  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
#: Results files whose runs are scored on the test set, and the one on the validation split.
TEST_FILES = (
    "ablation.json",
    "ablation_tuned.json",
    "irnetify_zoo.json",
    "irnetify_zoo_same_recipe.json",
)
VALIDATION_FILES = ("dte_search.json",)
#: Rows of one results file that compute the same function on the same recipe.
EQUIVALENT: Mapping[str, Sequence[tuple[str, ...]]] = {
    "ablation_tuned.json": (("dte", "dirnet"), ("imb", "irnet_dirnet_recipe")),
}


def score(run: Mapping) -> float:
    """A run's final-epoch accuracy in percent: test if it has one, else validation."""
    accuracy = run.get("final_test_accuracy")
    if accuracy is None:
        accuracy = run["final_validation_accuracy"]
    return 100.0 * accuracy


def groups(runs: Mapping[str, Mapping]) -> dict[str, list[float]]:
    """{row: [accuracy %, by seed]}: a results file's runs grouped by name up to `-seed<k>`."""
    grouped: dict[str, list[tuple[int, float]]] = {}
    for name, run in runs.items():
        row, _, seed = name.rpartition("-seed")
        grouped.setdefault(row, []).append((int(seed), score(run)))
    return {row: [x for _, x in sorted(values)] for row, values in grouped.items()}


def merge(grouped: Mapping[str, list[float]], equivalent: Iterable[tuple[str, ...]]) -> dict:
    """`grouped` with each tuple of equivalent rows that ran pooled into one group."""
    merged = dict(grouped)
    for rows in equivalent:
        if all(row in merged for row in rows):
            merged[" = ".join(rows)] = [x for row in rows for x in merged.pop(row)]
    return merged


def pooled_std(grouped: Iterable[Sequence[float]]) -> tuple[float, int]:
    """(s, degrees of freedom) over the groups with two runs or more.

    # Raises
        ValueError: no group has two runs.
    """
    squares, dof = 0.0, 0
    for values in grouped:
        if len(values) >= 2:
            mean = sum(values) / len(values)
            squares += sum((x - mean) ** 2 for x in values)
            dof += len(values) - 1
    if dof == 0:
        raise ValueError("no group has two runs: the noise cannot be estimated")
    return math.sqrt(squares / dof), dof


def difference(a: Sequence[float], b: Sequence[float], s: float) -> tuple[float, float, bool]:
    """(mean(a) - mean(b), its standard error from the pooled s, resolved: > 2 SE)."""
    delta = sum(a) / len(a) - sum(b) / len(b)
    se = s * math.sqrt(1 / len(a) + 1 / len(b))
    return delta, se, abs(delta) > 2 * se


def verdict(delta: float, se: float, resolved: bool) -> str:
    """`+0.42 points (2 SE = 0.34): resolved`, as the docs print a difference."""
    return (
        f"{delta:+.2f} points (2 SE = {2 * se:.2f}): {'resolved' if resolved else 'not resolved'}"
    )


def load(names: Iterable[str], directory: Path = RESULTS) -> dict[str, dict]:
    """{file name: its runs} of the results files that exist."""
    paths = {name: directory / name for name in names}
    return {name: json.loads(p.read_text())["runs"] for name, p in paths.items() if p.is_file()}


def estimate(files: Mapping[str, Mapping[str, Mapping]], equivalent: bool = True) -> dict:
    """The pooled estimate over `files` ({file name: its runs}): s, dof, and the groups
    it rests on; with `equivalent`, the rows of `EQUIVALENT` pooled as one group.

    # Raises
        ValueError: no group has two runs.
    """
    used = {}
    for name, runs in files.items():
        grouped = groups(runs)
        if equivalent:
            grouped = merge(grouped, EQUIVALENT.get(name, ()))
        used.update({f"{name}:{row}": v for row, v in grouped.items() if len(v) >= 2})
    s, dof = pooled_std(used.values())
    return {"std": round(s, 4), "dof": dof, "groups": used}


def main() -> int:
    """Print the estimates and write `results/noise.json` (atomically)."""
    out = {
        "test": estimate(load(TEST_FILES)),
        "test_same_configuration_only": estimate(load(TEST_FILES), equivalent=False),
        "validation": estimate(load(VALIDATION_FILES)),
    }
    for kind, found in out.items():
        print(f"{kind}: s = {found['std']:.2f} points ({found['dof']} degrees of freedom)")
        for group, values in found["groups"].items():
            print(f"  {group}: {', '.join(f'{x:.2f}' for x in values)}")
    atomic_write(RESULTS / "noise.json", json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
