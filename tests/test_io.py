import os
import stat

from larq_irnet.io import atomic_path, atomic_write

import pytest


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["summary.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("trained weights")
    with pytest.raises(RuntimeError), atomic_path(path) as temp:
        temp.write_text("half a file")
        raise RuntimeError("disk full")
    assert path.read_text() == "trained weights"
    assert os.listdir(tmp_path) == ["model.h5"]


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        atomic_write(tmp_path / "missing" / "x.json", "{}")
