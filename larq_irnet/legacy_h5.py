"""Reading Keras `.h5` files that Keras' own loader does not read back: files written by
larq-irnet 0.1.0 and earlier, with estimator state as weights (`h5_without_estimator_state`),
and model files holding a plain function as an initializer (`loadable_h5_model`).

`larq_irnet.zoo.loading.load_model` reads every model file through `loadable_h5_model`;
the zoo loads weights files through `h5_without_estimator_state`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "FUNCTION_INITIALIZER",
    "estimator_state_entries",
    "h5_without_estimator_state",
    "loadable_h5_model",
]

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
