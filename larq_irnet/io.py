"""Files: writing outputs safely, atomically (readers see the old file or the new one,
never a partial one) and under a lock when several processes may write; and reading
Keras `.h5` files written by older versions (`h5_without_estimator_state`) or holding what
Keras' `.h5` loader does not read back (`loadable_h5_model`)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "atomic_path",
    "atomic_write",
    "check_output_path",
    "estimator_state_entries",
    "file_lock",
    "h5_without_estimator_state",
    "loadable_h5_model",
    "stale_temporaries",
]

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


#: HDF5 attributes above this size are split into numbered chunks (as Keras does).
_HDF5_ATTRIBUTE_LIMIT = 64512


def _estimator_state_names() -> frozenset[str]:
    """Names the state of every `ScheduledSign` had as a weight (`ede_t`, `ede_k`, ...)."""
    from larq_irnet.estimators import ScheduledSign

    names: set[str] = set()
    classes = [ScheduledSign]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        prefix, state = getattr(cls, "state_prefix", ""), cls.state_names
        # A class that picks its estimator per instance names its state with properties;
        # the estimators it picks from are subclasses with class-level names.
        if isinstance(prefix, str) and isinstance(state, tuple):
            names.update(f"{prefix}{name}" for name in state)
    return frozenset(names)


def _is_state(entry: str, names: frozenset[str]) -> bool:
    """Whether weight entry `quant_conv2d/ede_sign/ede_t:0` is estimator state."""
    return entry.rsplit("/", 1)[-1].split(":")[0] in names


def _layer_groups(h5file) -> Iterator:
    """The per-layer groups of a Keras `.h5` file (`model.save` or `save_weights`)."""
    root = h5file["model_weights"] if "model_weights" in h5file else h5file
    for name in _read_names(root, "layer_names"):
        if name in root:
            yield root[name]


def _read_names(group, key: str) -> list[str]:
    """A list-of-names attribute, also when Keras split it into `key0`, `key1`, ..."""
    if key in group.attrs:
        values = list(group.attrs[key])
    else:
        values, i = [], 0
        while f"{key}{i}" in group.attrs:
            values.extend(group.attrs[f"{key}{i}"])
            i += 1
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _write_names(group, key: str, names: list[str]) -> None:
    import numpy as np

    for old in [
        k for k in group.attrs if k == key or (k.startswith(key) and k[len(key) :].isdigit())
    ]:
        del group.attrs[old]
    data = np.asarray([n.encode("utf-8") for n in names], dtype="S" if names else "S1")
    chunks = max(1, -(-data.nbytes // _HDF5_ATTRIBUTE_LIMIT))
    if chunks == 1:
        group.attrs[key] = data
    else:
        for i, chunk in enumerate(np.array_split(data, chunks)):
            group.attrs[f"{key}{i}"] = chunk


def estimator_state_entries(path: str | os.PathLike) -> list[str]:
    """The weight entries of a Keras `.h5` file that hold a `ScheduledSign`'s state.

    Files saved before the state stopped being Keras weights (larq-irnet 0.1.0 and
    earlier) hold EDE's t and k per quantizer, e.g. `quant_conv2d/ede_sign/ede_t:0`;
    `[]` for a file without them or one that is not HDF5.
    """
    import h5py

    if not Path(path).is_file() or not h5py.is_hdf5(path):
        return []
    names = _estimator_state_names()
    with h5py.File(path, "r") as f:
        return [
            entry
            for group in _layer_groups(f)
            for entry in _read_names(group, "weight_names")
            if _is_state(entry, names)
        ]


@contextlib.contextmanager
def h5_without_estimator_state(path: str | os.PathLike) -> Iterator[Path]:
    """`path`, or a temporary copy of it without the entries of estimator state.

    Older `.h5` files hold EDE's t and k as weights of the layers that own the quantizers
    (`estimator_state_entries`); today they are training-only checkpoint state, so Keras
    refuses those files ("expects 1 weight(s), but the saved weights have 5"). The copy
    drops exactly those entries: the schedule restarts from the state in the model's
    config, which only training reads (a model's outputs do not depend on it). A file
    without such entries (or not HDF5) is used as it is.

    ```python
    with h5_without_estimator_state("old/model.h5") as path:
        model.load_weights(path)
    ```
    """
    with _h5_copy(path, functions=False) as copy:
        yield copy


@contextlib.contextmanager
def loadable_h5_model(path: str | os.PathLike) -> Iterator[Path]:
    """`path`, or a temporary copy of it that Keras 2's `.h5` model loader reads.

    Two things Keras writes into `.h5` model files that `tf.keras.models.load_model`
    does not read back:
    - estimator state of larq-irnet 0.1.0 and earlier, dropped as by
      `h5_without_estimator_state`;
    - a plain function given as an initializer, e.g. larq-zoo's QuickNet
      `blurpool_initializer`: Keras writes `{"class_name": "function", "config": NAME}`,
      which its `.h5` deserializer calls as `function(**NAME)` and fails. The copy
      names `larq_irnet.layers.FunctionInitializer` with `{"function_name": NAME}`, an
      initializer that calls the registered function of that name; the model it loads
      saves and loads again.

    A file that needs neither (or is not HDF5) is used as it is.

    # Raises
        ValueError: the file holds another plain function, e.g. a quantizer (larq-zoo's
            XNORNet `kernel_quantizer: xnor_weight_scale`) or an activation, which the
            `.h5` loader cannot rebuild either: one line naming the path, the function
            (to register, and save the model as `.keras`), its argument and its layer.
    """
    with _h5_copy(path, functions=True) as copy:
        yield copy


#: The registered name of `larq_irnet.layers.FunctionInitializer`.
FUNCTION_INITIALIZER = "FunctionInitializer"


def _with_function_initializers(config: Any, layer: str = "?", key: str = "") -> Any:
    """`config` with every serialized plain-function initializer (the value of a
    `*_initializer` argument) named as a `FunctionInitializer`.

    # Raises
        ValueError: another plain function (a quantizer, an activation, a constraint),
            naming the function, the argument and the layer.
    """
    if isinstance(config, dict):
        if config.get("class_name") == "function" and isinstance(config.get("config"), str):
            name = config["config"]
            if not key.endswith("initializer"):
                raise ValueError(
                    f"layer {layer!r} has `{key}` saved as the plain function {name!r}, "
                    "which Keras' .h5 loader cannot rebuild (only initializers are read by "
                    f"name here). Register {name!r} (`larq.utils.register_keras_custom_object` "
                    "or `tf.keras.utils.register_keras_serializable`) and save the model as "
                    ".keras, or build it in code and load this file with `load_weights`."
                )
            return {"class_name": FUNCTION_INITIALIZER, "config": {"function_name": name}}
        inner = config.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            layer = inner["name"]
        return {k: _with_function_initializers(v, layer, k) for k, v in config.items()}
    if isinstance(config, list):
        return [_with_function_initializers(value, layer, key) for value in config]
    return config


def _model_config(h5file) -> Any:
    """The model config of a `model.save` `.h5` file; None if it has none."""
    raw = h5file.attrs.get("model_config")
    if raw is None:
        return None
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


@contextlib.contextmanager
def _h5_copy(path: str | os.PathLike, *, functions: bool) -> Iterator[Path]:
    """`path`, or a temporary copy without estimator state (and, if `functions`, with
    plain-function initializers renamed: `loadable_h5_model`)."""
    import h5py

    entries = estimator_state_entries(path)
    config = renamed = None
    if functions and Path(path).is_file() and h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            config = _model_config(f)
        try:
            renamed = _with_function_initializers(config)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    rename = renamed != config
    if not entries and not rename:
        yield Path(path)
        return
    names = _estimator_state_names()
    with tempfile.TemporaryDirectory(prefix="larq-irnet-h5-") as folder:
        copy = Path(folder) / Path(path).name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            for group in _layer_groups(f) if entries else ():
                weights = _read_names(group, "weight_names")
                keep = [w for w in weights if not _is_state(w, names)]
                if len(keep) != len(weights):
                    for entry in set(weights) - set(keep):
                        if entry in group:
                            del group[entry]
                    _write_names(group, "weight_names", keep)
            if rename:
                f.attrs["model_config"] = json.dumps(renamed).encode("utf-8")
        yield copy


def check_output_path(path: str | os.PathLike, what: str) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    # Arguments
        path: the file to be written (atomically: a temporary file beside it, renamed).
        what: what the file is, for the message (`"--report"`, ...).

    # Raises
        ValueError: one line naming `path` and what was expected: it is a directory,
            its parent is missing or not a directory, or the parent is not writable.
    """
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"{what} {path}: is a directory; expected a file path")
    if not parent.exists():
        raise ValueError(f"{what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: directory {parent} is not writable")
