"""The run directory: what `larq-irnet train` writes, and the one place that knows it.

This docstring is the authoritative description of the layout and of the protocol of
resuming a run; the README and `larq_irnet.training` link here.

- `config.json`: the resolved recipe and every option that changes what the run
  computes or writes (`steps_per_epoch`, `seed`, `train_limit`, `validation_size`,
  `strategy`, `extra_callbacks`, `distillation`: null or the teacher's resolved path or
  zoo name, its file's sha256, `alignment_weight`, `logits_weight`, `temperature`); a
  re-run must match it.
- `history.csv`: one row per finished epoch, as `tf.keras.callbacks.CSVLogger` writes
  it (`\r\n` line ends): `epoch`, `loss`, `accuracy`, `val_loss`, `val_accuracy` (the
  full test set, or the validation split), `lr` (at the epoch's first step), `ede_t`,
  `ede_k` (models with EDE), `epoch_seconds`, plus whatever extra callbacks put into
  `logs` (`InformationDiagnostics`: `entropy/<layer>`, ..., `entropy_mean`, ...).
- `tensorboard/`: the same scalars for TensorBoard.
- `checkpoints/`: model, optimizer and epoch counter after the last finished epoch.
- `model.h5`: the trained model (without optimizer), loadable after `import larq_irnet`.
- `summary.json`: written last, so its presence means the run is finished: the final
  model's scores and more (`larq_irnet.training.train`'s return value).
- `.lock`: held while a process trains into the directory (`RunDirectoryInUse`).
- `report/`: `larq-irnet report`'s plots and `report.md`.

Every file is replaced atomically (`larq_irnet.io.atomic_path`); a process killed during
a write leaves a hidden temporary file, which the next resume removes
(`remove_temporaries`).

The protocol, in the order `train` follows it: `check_output_dir` before anything is
written; `finished_summary` compares the configuration with `config.json` (a different
one is refused, naming what differs, `differences`; options added to the configuration
later compare as the value older runs had, `previous_defaults`) and returns a finished
run's summary; `claim` takes the lock, compares again, records `config.json` and clears
temporaries, and undoes a run that fails before its first step; `TrainingState` restores
the last checkpoint and saves one after every epoch (`EpochCheckpoint`); a resume keeps
the rows of the finished epochs in `history.csv` (`truncate_history`).

Why not Keras' `BackupAndRestore` for the resume: it restores inside `fit`
(`on_train_begin`), and the run needs the resumed epoch before `fit` starts: the
training stream is built to begin at that epoch's first batch, `history.csv` is cut to
it and the summary reports it. Its checkpoint is also laid out otherwise (`chief/`,
`ckpt_saved_epoch`, the optimizer under the model), so the run directories already
written would no longer resume. What is kept here is what it lacks: the epoch counter
readable before `fit`, saving after the other callbacks wrote the epoch (history row,
TensorBoard), the configuration check, the lock and the history's truncation.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from larq_irnet.callbacks import InformationDiagnostics
from larq_irnet.io import atomic_write, file_lock, stale_temporaries
from larq_irnet.training.recipes import Recipe
from larq_irnet.zoo.loading import RUN_MODEL

import numpy as np
import tensorflow as tf

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "HISTORY",
    "LOCK",
    "MODEL",
    "REPORT",
    "SUMMARY",
    "TENSORBOARD",
    "Claim",
    "EpochCheckpoint",
    "RunDirectoryInUse",
    "TrainingState",
    "UnusableDirectory",
    "callback_identity",
    "check_output_dir",
    "check_writable",
    "claim",
    "differences",
    "finished_summary",
    "lock",
    "previous_defaults",
    "read_config",
    "read_history",
    "read_summary",
    "remove_temporaries",
    "truncate_history",
    "write_config",
    "write_summary",
]

CONFIG = "config.json"
HISTORY = "history.csv"
SUMMARY = "summary.json"
#: The final model; `larq_irnet.zoo.loading` (which finds it in a run directory) names it.
MODEL = RUN_MODEL
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
REPORT = "report"

#: The files a resume may find half-written by a killed process (atomic temporaries).
_ATOMIC_FILES = (CONFIG, HISTORY, SUMMARY, MODEL)
#: CSVLogger's line end (the csv module's default); the truncation writes the same.
_LINE_END = "\r\n"

EXPECTED_RUN_DIR = (
    "a run directory as written by `larq-irnet train`, holding history.csv (one row per "
    "epoch with a header such as epoch,loss,accuracy,val_loss,val_accuracy,lr,ede_t,ede_k; "
    "tf.keras.callbacks.CSVLogger writes this format), and optionally summary.json and "
    "model.h5"
)


class RunDirectoryInUse(RuntimeError):
    """Another process is training into the run directory."""


class UnusableDirectory(ValueError):
    """An output directory is a file, lies under a file, or cannot be written."""


def check_writable(path: str | os.PathLike, what: str = "output directory") -> None:
    """Raise `UnusableDirectory` unless `path` is, or can be created as, a writable directory.

    Nothing is created: the check runs before a command writes anything, so that a bad
    path leaves no half-made run behind.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise UnusableDirectory(f"{what} {path} {where}: expected a directory.")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its parent {existing} exists)"
        raise UnusableDirectory(
            f"{what} {path} is not writable{where}: expected a directory this user can write."
        )


@contextlib.contextmanager
def lock(run_dir: Path) -> Iterator[None]:
    """Create `run_dir` and hold its lock file for the block, or raise `RunDirectoryInUse`.

    Two processes resuming one run directory would interleave their checkpoints and
    history (`larq_irnet.io.file_lock`).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(run_dir / LOCK, wait=False))
        except BlockingIOError as error:
            raise RunDirectoryInUse(
                f"another process is training into {run_dir} ({error}); wait for it to "
                "finish or use another --output-dir."
            ) from None
        yield


def discard_new(run_dir: Path, *, remove_dir: bool) -> None:
    """Undo a run that failed before its first step: its `config.json` and, when this
    call created `run_dir` (`remove_dir`), the directory with everything in it.

    Only for a run whose `config.json` the failing call wrote itself; an interrupted run
    keeps its files, so that it resumes.
    """
    if remove_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        (run_dir / CONFIG).unlink(missing_ok=True)


def remove_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files a killed write left beside the run's files; returns them.

    Only names of `larq_irnet.io.atomic_path`'s pattern for this directory's own files
    are touched. Call it holding the `lock`.
    """
    removed = [temp for name in _ATOMIC_FILES for temp in stale_temporaries(run_dir / name)]
    for temp in removed:
        temp.unlink(missing_ok=True)
    return removed


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's `config.json`, or None when there is none yet."""
    path = run_dir / CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): expected a run's config.") from None


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    """Write `config.json` atomically."""
    atomic_write(run_dir / CONFIG, json.dumps(config, indent=2) + "\n")


#: Configuration keys that describe a run without changing it: a recipe's `source` text may
#: be reworded without making its finished or interrupted runs foreign.
_DESCRIPTIVE_KEYS = frozenset({"recipe.source"})
_MISSING = object()


def differences(
    previous: Mapping[str, Any],
    current: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """The keys (dotted) whose values differ between two run configurations.

    `defaults` maps dotted keys that were added to the configuration later to the value
    that a run written before had: a key missing from `previous` compares as that value,
    so older run directories stay resumable when the new option is left at its default.
    """
    defaults = defaults or {}
    out = []

    def compare(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str) -> None:
        for key in sorted(set(a) | set(b)):
            dotted = f"{prefix}{key}"
            if dotted in _DESCRIPTIVE_KEYS:
                continue
            old, new = a.get(key, _MISSING), b.get(key, _MISSING)
            if old is _MISSING:
                old = defaults.get(dotted, _MISSING)
            if isinstance(old, Mapping) and isinstance(new, Mapping):
                compare(old, new, f"{dotted}.")
            elif old != new:
                shown = [None if v is _MISSING else v for v in (old, new)]
                out.append(f"{dotted} ({shown[0]!r} there, {shown[1]!r} now)")

    compare(previous, current, "")
    return out


def read_summary(run_dir: Path) -> dict[str, Any] | str:
    """`summary.json` as a dict, or a sentence saying why it is not available."""
    path = run_dir / SUMMARY
    if not path.is_file():
        return f"{path} does not exist"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"{path} is not valid JSON ({error})"
    if not isinstance(summary, dict):
        return f"{path} does not hold a JSON object"
    return summary


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """Write `summary.json` atomically: the run is finished."""
    atomic_write(run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")


def read_history(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `history.csv` into `{column: float array}`, one entry per epoch.

    Values that are empty or not numbers become NaN. When an epoch appears more than
    once (a resumed run that logged an epoch again) its last row wins, and rows are
    sorted by epoch.

    # Raises
        FileNotFoundError: the file does not exist.
        ValueError: the file is not UTF-8 text or not CSV, has no header, no rows, no
            numeric column, rows longer than its header, no `epoch` column, or an
            `epoch` that is not an integer >= 0 in some row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: expected {EXPECTED_RUN_DIR}.")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            names = reader.fieldnames
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(
            f"{path}: cannot read as CSV text ({type(e).__name__}): expected {EXPECTED_RUN_DIR}."
        ) from e
    if not names or not rows:
        raise ValueError(f"{path} has no epochs in it: expected {EXPECTED_RUN_DIR}.")
    if any(None in row for row in rows):
        line = next(i for i, row in enumerate(rows) if None in row) + 2
        raise ValueError(
            f"{path}, line {line}: more fields than the {len(names)} columns of its header: "
            f"expected {EXPECTED_RUN_DIR}."
        )
    columns = {name: np.array([_to_float(row.get(name)) for row in rows]) for name in names}
    if not any(np.isfinite(values).any() for values in columns.values()):
        raise ValueError(f"{path} has no numeric column: expected {EXPECTED_RUN_DIR}.")
    if "epoch" not in columns:
        header = ",".join(names)
        header = header if len(header) <= 60 else header[:57] + "..."
        raise ValueError(
            f"{path} has no `epoch` column (header {header!r}): expected {EXPECTED_RUN_DIR}."
        )
    epochs = columns["epoch"]
    bad = ~(np.isfinite(epochs) & (epochs >= 0) & (epochs == np.round(epochs)))
    if bad.any():
        line = int(np.argmax(bad)) + 2
        raise ValueError(
            f"{path}, line {line}: epoch {rows[line - 2]['epoch']!r} is not an integer >= 0: "
            f"expected {EXPECTED_RUN_DIR}."
        )
    last_row_of_epoch = {int(e): i for i, e in enumerate(epochs)}
    order = [last_row_of_epoch[e] for e in sorted(last_row_of_epoch)]
    return {name: values[order] for name, values in columns.items()}


def _to_float(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def truncate_history(path: Path, epochs_done: int) -> None:
    """Keep the rows of the first `epochs_done` epochs (a killed run may have written more).

    The file is rewritten (atomically, with CSVLogger's line ends) only when a row goes.
    """
    if not path.exists():
        return
    if epochs_done == 0:
        path.unlink()
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["epoch"]:
        raise ValueError(f"{path}: expected a CSVLogger file whose first column is 'epoch'.")
    kept = [row for row in rows[1:] if row and int(row[0]) < epochs_done]
    if len(kept) == len(rows) - 1:
        return
    out = io.StringIO()
    csv.writer(out, lineterminator=_LINE_END).writerows([rows[0], *kept])
    atomic_write(path, out.getvalue())


def check_output_dir(run_dir: Path) -> None:
    """A usable run directory: a finished run is only read, anything else is written."""
    if (run_dir / SUMMARY).is_file():
        return
    check_writable(run_dir, "--output-dir")
    for name in (CHECKPOINTS, TENSORBOARD):
        if (run_dir / name).exists():
            check_writable(run_dir / name, "run directory's")


def callback_identity(callback: tf.keras.callbacks.Callback) -> str:
    """A callback as the run configuration records it: its class and `get_config()`.

    An extra callback may change what a run writes (`InformationDiagnostics` adds
    columns to `history.csv`), so resuming with other extra callbacks is refused.
    """
    cls = type(callback)
    name = f"{cls.__module__}.{cls.__qualname__}"
    get_config = getattr(callback, "get_config", None)
    config = get_config() if callable(get_config) else {}
    arguments = ", ".join(f"{key}={value!r}" for key, value in sorted(config.items()))
    return f"{name}({arguments})"


#: Configuration keys added after runs were written without them, with the value those
#: runs had: an older run directory stays resumable when the option is at its default.
ADDED_LATER: dict[str, Any] = {
    "validation_size": 0,
    "strategy": "default",
    "extra_callbacks": [],
    "distillation": None,
    **{
        f"recipe.{field.name}": field.default
        for field in dataclasses.fields(Recipe)
        if field.default is not dataclasses.MISSING
    },
}


def previous_defaults(run_dir: Path) -> dict[str, Any]:
    """`ADDED_LATER`, with the extra callbacks of a run written before they were recorded.

    Such a run's `history.csv` tells whether `InformationDiagnostics` ran: `larq-irnet
    train --diagnostics`, the demo and the ablation all used it with its defaults.
    """
    defaults = dict(ADDED_LATER)
    history = run_dir / HISTORY
    if history.is_file():
        with open(history, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if "entropy_mean" in header:
            defaults["extra_callbacks"] = [callback_identity(InformationDiagnostics())]
    return defaults


def finished_summary(run_dir: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Refuse a run directory of another configuration; the summary if it is finished."""
    previous = read_config(run_dir)
    if previous is None:
        return None
    different = differences(previous, config, previous_defaults(run_dir))
    if different:
        raise ValueError(
            f"{run_dir} holds a run with another configuration (differs in: "
            f"{', '.join(different)}); use another --output-dir, or delete it to "
            "start over."
        )
    summary = read_summary(run_dir)
    return summary if isinstance(summary, dict) else None


@dataclasses.dataclass(frozen=True)
class Claim:
    """A run directory that this process holds the lock of (`claim`).

    `write_dir` is where this process writes: the run directory on the chief, a
    `workertemp_<i>` directory inside it on the other workers. `finished` is the summary
    of a run that another process finished meanwhile (then nothing is trained).
    """

    run_dir: Path
    write_dir: Path
    chief: bool
    finished: dict[str, Any] | None
    fresh: bool
    new_dir: bool

    @contextlib.contextmanager
    def undone_on_error(self) -> Iterator[None]:
        """Set-up that fails (e.g. a teacher of another architecture) in a run this call
        started leaves nothing that would refuse the corrected command."""
        try:
            yield
        except Exception:
            if self.fresh:
                discard_new(self.run_dir, remove_dir=self.new_dir)
            raise

    def finish(self, summary: Mapping[str, Any]) -> None:
        """Write `summary.json` on the chief; delete a worker's temporary directory."""
        if self.chief:
            write_summary(self.run_dir, summary)
        else:
            shutil.rmtree(self.write_dir, ignore_errors=True)


@contextlib.contextmanager
def claim(
    run_dir: Path, config: Mapping[str, Any], *, chief: bool = True, task_id: int = 0
) -> Iterator[Claim]:
    """Hold the run directory's lock for the block: check the configuration again
    (another process may have finished the run meanwhile: `Claim.finished`), record it
    and clear what a killed write left (on the chief), or raise `RunDirectoryInUse`."""
    write_dir = run_dir if chief else run_dir / f"workertemp_{task_id}"
    new_dir = not run_dir.exists()
    fresh = chief and read_config(run_dir) is None
    with lock(write_dir):
        finished = finished_summary(run_dir, config)
        if finished is None and chief:
            if read_config(run_dir) is None:
                write_config(run_dir, config)
            remove_temporaries(run_dir)
        yield Claim(run_dir, write_dir, chief, finished, fresh, new_dir)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves model, optimizer and the number of finished epochs after every epoch.

    Listed last, so that an epoch counts as finished only once everything else
    (history row, TensorBoard) has been written.
    """

    def __init__(self, manager: tf.train.CheckpointManager, epochs_done: tf.Variable):
        super().__init__()
        self.manager = manager
        self.epochs_done = epochs_done

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_done.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class TrainingState:
    """What a resume restores from `checkpoints/`: the model's weights (a `Distiller`'s
    too), the optimizer's slots and step counter (so the learning-rate schedule
    continues) and the number of finished epochs."""

    def __init__(self, model: tf.keras.Model, optimizer, write_dir: Path):
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_done")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epochs_done=self.epochs_done
        )
        self.directory = write_dir / CHECKPOINTS

    def restore(self) -> int:
        """Restore the last checkpoint, if any; the number of finished epochs."""
        latest = tf.train.latest_checkpoint(self.directory)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.epochs_done.numpy())

    def callback(self) -> EpochCheckpoint:
        """The callback that saves after every epoch (one checkpoint kept)."""
        manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=1)
        return EpochCheckpoint(manager, self.epochs_done)
