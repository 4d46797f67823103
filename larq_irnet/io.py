"""Writing outputs atomically: readers see the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


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
    temp = path.parent / f".{path.stem}.{secrets.token_hex(6)}{path.suffix}"
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
