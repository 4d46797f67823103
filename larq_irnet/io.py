"""Files: writing outputs safely, atomically (readers see the old file or the new one,
never a partial one), and under a lock when several processes may write.

Reading old or unusual Keras `.h5` files is `larq_irnet.legacy_h5`'s job; checking an
output path given on a command line is `larq_irnet._validation.check_output_path`'s."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_path", "atomic_write", "file_lock", "stale_temporaries"]

_TOKEN_BYTES = 6


def _temporary_name(path: Path, token: str) -> Path:
    """`atomic_path`'s temporary file for `path`: hidden, beside it, same suffix."""
    return path.parent / f".{path.stem}.{token}{path.suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) that replaces `path` on success.

    For writers that want a file name (`model.save`, `savefig`). If the block raises,
    the temporary file is removed and an existing `path` is left untouched.

    ```python
    with atomic_path("run/model.h5") as temp:
        model.save(temp)
    ```
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory does not exist: {path.parent}")
    temp = _temporary_name(path, secrets.token_hex(_TOKEN_BYTES))
    # Created like open() would (0666 less the umask, applied by the kernel), not
    # mkstemp's 0600; O_EXCL keeps two writers from sharing a temporary file.
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically, flushed to disk; returns the path."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    with atomic_path(path) as temp:
        with open(temp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files of `atomic_path(path)` that exist beside `path`.

    A process killed inside an `atomic_path` block leaves its temporary file behind;
    whoever owns `path` (and knows no writer is running, e.g. under its lock) may
    delete these.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = _temporary_name(path, "?" * (2 * _TOKEN_BYTES)).name
    hexdigits = set("0123456789abcdef")
    start = len(path.stem) + 2
    return sorted(
        candidate
        for candidate in path.parent.glob(pattern)
        if set(candidate.name[start : start + 2 * _TOKEN_BYTES]) <= hexdigits
    )


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) for the block.

    The lock is `flock`: the kernel drops it when the holder ends, however it ends. The
    holder writes "pid N on HOST" into the file. With `wait=False`, a lock held by
    another process raises `BlockingIOError` naming `path` and that holder. Where
    `fcntl` is missing (Windows) there is no lock.
    """
    path = Path(path)
    with open(path, "a+", encoding="utf-8") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown holder"
                raise BlockingIOError(f"{path} is locked by another process ({holder})") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        yield
