import os
import socket
import stat

from larq_irnet.io import (
    atomic_path,
    atomic_write,
    file_lock,
    stale_temporaries,
)

import pytest


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_written_file_has_the_mode_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "summary.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # not a temporary file's 0600


def test_nested_writers_get_their_own_temporary_files(tmp_path):
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        assert first != second
        assert first.parent == tmp_path and first.suffix == ".json"
        first.write_text("1")
        second.write_text("2")
    assert (tmp_path / "a.json").read_text() == "1"  # the outer writer finished last
    assert os.listdir(tmp_path) == ["a.json"]


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


def test_file_lock_excludes_a_second_holder_until_released(tmp_path):
    path = tmp_path / "run.lock"
    with file_lock(path):
        assert path.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
        # flock locks belong to open files: a second open in this process is excluded too.
        with pytest.raises(BlockingIOError, match=rf"run.lock is locked .*\(pid {os.getpid()} "):
            with file_lock(path, wait=False):
                pass
    with file_lock(path, wait=False):
        pass


def test_stale_temporaries_are_those_of_atomic_path(tmp_path):
    path = tmp_path / "model.h5"
    with atomic_path(path) as temp:
        assert stale_temporaries(path) == [temp]
        assert stale_temporaries(tmp_path / "summary.json") == []
    assert stale_temporaries(path) == []
    (tmp_path / ".model.not-hex-at-all.h5").write_text("")
    assert stale_temporaries(path) == []
