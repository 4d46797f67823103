"""training.run_directory: the run directory's files, history, config comparison, checks."""

import csv
import os

from larq_irnet.training.run_directory import (
    HISTORY,
    UnusableDirectory,
    check_writable,
    differences,
    read_history,
    remove_temporaries,
    truncate_history,
)

import numpy as np
import pytest


def _write_history(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    # A run killed during epoch 2 and resumed logs epoch 1 again.
    path = tmp_path / HISTORY
    rows = [
        {"epoch": 0, "loss": 3.0, "ede_t": 0.1},
        {"epoch": 1, "loss": 2.0, "ede_t": 0.2},
        {"epoch": 1, "loss": 1.9, "ede_t": 0.2},
        {"epoch": 2, "loss": 1.5, "ede_t": ""},
    ]
    _write_history(path, rows)
    history = read_history(path)
    np.testing.assert_array_equal(history["epoch"], [0, 1, 2])
    np.testing.assert_array_equal(history["loss"], [3.0, 1.9, 1.5])
    assert np.isnan(history["ede_t"][-1])


def test_read_history_refuses_rows_longer_than_the_header(tmp_path):
    # What a resume with more logged keys than the first session used to leave behind.
    path = tmp_path / HISTORY
    path.write_text("epoch,loss\r\n0,1.0\r\n1,0.9,0.5,0.7\r\n")
    with pytest.raises(ValueError, match=rf"{HISTORY}, line 3: more fields than the 2 columns"):
        read_history(path)


def test_truncation_drops_unfinished_epochs_with_csvloggers_line_ends(tmp_path):
    path = tmp_path / HISTORY
    path.write_bytes(b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n2,0.8\r\n")
    truncate_history(path, 2)
    assert path.read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n"


def test_truncation_leaves_a_complete_history_untouched(tmp_path):
    # Resuming a read-only run directory must not need to write history.csv.
    path = tmp_path / HISTORY
    path.write_bytes(b"epoch,loss\r\n0,1.0\r\n1,0.9\r\n")
    before = path.stat()
    truncate_history(path, 2)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    truncate_history(path, 0)
    assert not path.exists()


def test_configuration_keys_added_later_compare_as_their_default():
    old = {"seed": 0, "recipe": {"epochs": 2, "source": "a"}}
    new = {"seed": 0, "validation_size": 0, "recipe": {"epochs": 2, "source": "b", "x": True}}
    defaults = {"validation_size": 0, "recipe.x": True}
    assert differences(old, new, defaults) == []
    changed = {**new, "validation_size": 500}
    assert differences(old, changed, defaults) == ["validation_size (0 there, 500 now)"]
    assert differences(old, new) == [
        "recipe.x (None there, True now)",
        "validation_size (None there, 0 now)",
    ]


def test_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    ours = [".model.0123456789ab.h5", ".summary.abcdef012345.json", ".history.00aa11bb22cc.csv"]
    others = [".model.backup.h5", ".model.0123456789ab.keras", "notes.txt", "model.h5"]
    for name in ours + others:
        (tmp_path / name).write_text("x")
    removed = remove_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted(others)


def test_unusable_directories_are_named(tmp_path, read_only):
    check_writable(tmp_path / "new" / "run")  # may be created
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UnusableDirectory, match=rf"^--output-dir {a_file} is a file: expected"):
        check_writable(a_file, "--output-dir")
    with pytest.raises(UnusableDirectory, match=rf"{a_file / 'run'} lies under the file {a_file}"):
        check_writable(a_file / "run")
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(locked)
    with pytest.raises(UnusableDirectory, match=rf"{locked / 'run'} is not writable \(its par"):
        check_writable(locked / "run")
    with pytest.raises(UnusableDirectory, match=rf"{locked} is not writable: expected a dir"):
        check_writable(locked)
