r"""`train()`: a recipe, resumably, on one device or many (`larq-irnet train` is `cli`).

```python
from larq_irnet.training import TrainOptions, train

summary = train("fashion_mnist-resnet20-1w1a", "runs/fmnist", TrainOptions(epochs=2))
print(summary["final_test_accuracy"])
```

`train` reads as its steps: check the options, the dataset and the output directory
before anything is written (`_plan`, `_count_examples`); compare with the run
directory's configuration and, under its lock, record it (`run_directory`'s protocol);
build and restore the model (`_build_model`); build the data from the resumed epoch
(`_build_data`); fit and score (`_fit_and_evaluate`); save the model and write the
summary (`_summarize`).

Resuming is exact: the checkpoint holds the weights, the optimizer's state and step
counter (so the learning-rate schedule continues), and EDE's t is a function of the
epoch index (`EDECallback`). The training data is a deterministic stream
(`larq_irnet.training.data.array_dataset`) that restarts at the first batch of the
resumed epoch.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from larq_irnet._validation import is_integer, is_real
from larq_irnet.callbacks import (
    DTECallback,
    EDECallback,
    dte_quantizers,
    ede_quantizers,
)
from larq_irnet.distillation import Distiller, load_teacher
from larq_irnet.io import atomic_path
from larq_irnet.layers import ends_in_softmax
from larq_irnet.methods import PRESETS
from larq_irnet.training import data, run_directory
from larq_irnet.training.optimization import l2_weight_decay, make_optimizer, make_schedule
from larq_irnet.training.recipes import Recipe, get_recipe, model_function
from larq_irnet.zoo import BINARIZATIONS, BITS
from larq_irnet.zoo.loading import locate_model
from larq_irnet.zoo.registry import get_entry, registered_as, sha256sum

import larq as lq
import tensorflow as tf

__all__ = [
    "INTERRUPTED",
    "MAX_SEED",
    "STRATEGIES",
    "TrainOptions",
    "headline_logs",
    "make_strategy",
    "train",
]

#: The `--strategy` choices.
STRATEGIES = ("default", "mirrored", "multi-worker")

_MIN_TEST_BATCH = 256
#: The exit code of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: The largest seed `train` takes (NumPy's global generator accepts 0 .. 2**32 - 1).
MAX_SEED = 2**32 - 1
#: The installed distribution's version (the package root re-exports it as `__version__`;
#: importing the root from here would run the layers the wrong way).
_VERSION = importlib.metadata.version("larq-irnet")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """A `tf.distribute` strategy by `--strategy` name.

    `"default"`: no distribution. `"mirrored"`: `MirroredStrategy` over all local GPUs
    (the CPU when there is none). `"multi-worker"`: `MultiWorkerMirroredStrategy`, the
    cluster and this process' task read from the `TF_CONFIG` environment variable;
    create it before any other TensorFlow operation runs.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy 'multi-worker' reads the cluster from the TF_CONFIG environment "
                'variable, which is not set; e.g. TF_CONFIG=\'{"cluster": {"worker": '
                '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\'.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"`strategy` must be one of {STRATEGIES}, got strategy={name!r}.")


def _task(strategy: tf.distribute.Strategy) -> tuple[bool, int]:
    """(whether this process is the chief, its task index) under `strategy`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True, 0
    jobs = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True, 0
    chief = resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in jobs
    return chief, int(resolver.task_id or 0)


def _default_argument(function: Callable, name: str) -> Any:
    try:
        parameter = inspect.signature(function).parameters.get(name)
    except (TypeError, ValueError):
        return None
    return None if parameter is None else parameter.default


class _EpochLog(tf.keras.callbacks.Callback):
    """Puts `lr` (at the epoch's first step) and `epoch_seconds` into the epoch's logs."""

    def __init__(self, learning_rate):
        super().__init__()
        self.learning_rate = learning_rate
        self._first_step = 0
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._first_step = int(self.model.optimizer.iterations.numpy())
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        lr = self.learning_rate
        logs["lr"] = float(lr(self._first_step) if callable(lr) else lr)
        logs["epoch_seconds"] = time.perf_counter() - self._start


#: Logged every epoch but not shown in the progress line: derived (`ede_k` from `ede_t`)
#: or shown there already (the epoch's time).
_NOT_SHOWN = frozenset({"ede_k", "epoch_seconds", "kernel_entropy_mean"})


def headline_logs(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values of an epoch's `logs` that a person reads: no per-layer (`a/b`) keys."""
    return {k: v for k, v in (logs or {}).items() if "/" not in k and k not in _NOT_SHOWN}


class _Progress(tf.keras.callbacks.ProgbarLogger):
    """Keras' progress bar (`verbose=1`), with the headline values only.

    Per-layer values stay in `history.csv` and TensorBoard: dozens of them made each
    epoch line thousands of characters long.
    """

    def __init__(self):
        super().__init__(count_mode="steps")

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, headline_logs(logs))


class _EpochLine(tf.keras.callbacks.Callback):
    """One short line per epoch (`verbose=2`, e.g. a log file): progress and headline."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        values = ", ".join(f"{k} {v:.4g}" for k, v in headline_logs(logs).items())
        seconds = time.perf_counter() - self._start
        print(f"epoch {epoch + 1}/{self.epochs} ({seconds:.0f} s): {values}", flush=True)


def _positive(value: int | None, name: str) -> int | None:
    """`value` as a Python int (NumPy integers too) or None; a ValueError naming it."""
    if value is not None and not (is_integer(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive integer or None, got {name}={value!r}.")
    return None if value is None else int(value)


def _check_seed(seed: int) -> int:
    if not (is_integer(seed) and 0 <= seed <= MAX_SEED):
        raise ValueError(f"`seed` must be an integer from 0 to {MAX_SEED}, got seed={seed!r}.")
    return int(seed)


@dataclasses.dataclass(frozen=True)
class _Teacher:
    """`--distill-from`, resolved: where the teacher is and how the student learns from it.

    `source` is the resolved path (a run directory, a whole-model file or a weights-only
    `.h5`) or the name of shipped zoo weights; `sha256` is that of the file loaded (a run
    directory's `model.h5`, a SavedModel's `saved_model.pb`, the registered fp variant), so
    a resume against a retrained teacher is refused.
    """

    source: str
    sha256: str
    zoo_weights: bool
    alignment_weight: float
    logits_weight: float
    temperature: float

    def config(self) -> dict[str, Any]:
        """What `config.json` records under `"distillation"`."""
        return {
            "teacher": self.source,
            "teacher_sha256": self.sha256,
            "alignment_weight": self.alignment_weight,
            "logits_weight": self.logits_weight,
            "temperature": self.temperature,
        }


#: The distillation keywords of `train` and their defaults (used only with `distill_from`).
DISTILLATION_DEFAULTS = {"alignment_weight": 1.0, "logits_weight": 0.0, "distill_temperature": 4.0}


#: The `binarization=` of the teacher built from a weights-only file or zoo weights.
_TEACHER_BINARIZATION = "fp"


def _no_teacher(alignment_weight: float, logits_weight: float, temperature: float) -> None:
    """Refuse distillation weights given without a teacher: they would be ignored."""
    given = {
        "alignment_weight": alignment_weight,
        "logits_weight": logits_weight,
        "distill_temperature": temperature,
    }
    changed = [f"{k}={v!r}" for k, v in given.items() if v != DISTILLATION_DEFAULTS[k]]
    if changed:
        raise ValueError(
            f"{', '.join(changed)} only {'applies' if len(changed) == 1 else 'apply'} with "
            "`distill_from` (a teacher); pass one or "
            "leave them at their defaults"
        )
    return None


def _refuse_registered_binary(path: Path, sha256: str) -> None:
    """Refuse a teacher file that the zoo registry knows as a binary variant's weights.

    Such weights would load into the fp twin without a word and score at chance; a run
    directory or whole model with binarized layers only warns (`load_teacher`).
    """
    for name, entry in registered_as(sha256):
        if entry.binarization not in (None, _TEACHER_BINARIZATION):
            raise ValueError(
                f"`distill_from`: {path} holds the zoo weights {name!r} "
                f"(binarization={entry.binarization!r}); the teacher must be full precision "
                f"(binarization={_TEACHER_BINARIZATION!r})."
            )


def _resolve_teacher(
    distill_from: str | os.PathLike,
    alignment_weight: float,
    logits_weight: float,
    temperature: float,
) -> _Teacher:
    """`--distill-from` and its weights, checked without TensorFlow (nothing is loaded)."""
    for value, name, floor in (
        (alignment_weight, "alignment_weight", 0.0),
        (logits_weight, "logits_weight", 0.0),
        (temperature, "distill_temperature", None),
    ):
        number = is_real(value) and math.isfinite(value)
        if not (number and (value > 0 if floor is None else value >= floor)):
            bound = "> 0" if floor is None else ">= 0"
            raise ValueError(f"`{name}` must be a finite number {bound}, got {name}={value!r}.")
    if not isinstance(distill_from, (str, os.PathLike)) or not os.fspath(distill_from):
        raise ValueError(
            "`distill_from` must be a run directory, a model or weights file, or a name of "
            f"zoo weights, got distill_from={distill_from!r}."
        )
    try:
        located = locate_model(distill_from)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"`distill_from`: {error}") from None
    zoo = located.zoo_weights is not None
    if zoo:
        # Zoo weights load into the student's fp twin (`_load_teacher`): their fp variant.
        try:
            entry = get_entry(distill_from, _TEACHER_BINARIZATION)
        except ValueError as error:
            raise ValueError(
                "`distill_from`: the teacher is the student's full-precision twin "
                f"(binarization={_TEACHER_BINARIZATION!r}). {error}"
            ) from None
        source, sha256 = distill_from, entry.sha256
    else:
        path = located.path.resolve()
        source, sha256 = os.fspath(path), sha256sum(located.identity_file)
        _refuse_registered_binary(path, sha256)
    return _Teacher(
        source=source,
        sha256=sha256,
        zoo_weights=zoo,
        alignment_weight=float(alignment_weight),
        logits_weight=float(logits_weight),
        temperature=float(temperature),
    )


@dataclasses.dataclass(frozen=True)
class _Plan:
    """A checked call of `train`: all that is decided before the run directory is touched."""

    recipe: Recipe
    info: data.DatasetInfo
    run_dir: Path
    strategy: str
    seed: int
    data_dir: str | os.PathLike | None
    train_limit: int | None
    validation_size: int
    extra_callbacks: tuple[tf.keras.callbacks.Callback, ...]
    verbose: int | str
    steps_per_epoch: int | None = None
    teacher: _Teacher | None = None

    @property
    def build_model(self) -> Callable[..., tf.keras.Model]:
        return model_function(self.recipe)

    def model_kwargs(self) -> dict[str, Any]:
        return {
            "input_shape": self.info.input_shape,
            "num_classes": self.info.num_classes,
            **self.recipe.model_kwargs,
        }


@dataclasses.dataclass(frozen=True)
class _Examples:
    """How much data one epoch sees."""

    train: int
    test: int
    steps: int


def _resolve_recipe(
    recipe: str | Recipe,
    binarization: str | None,
    epochs: int | None,
    batch_size: int | None,
    overrides: Mapping[str, Any] | None,
) -> Recipe:
    """The recipe with the overrides applied, and its model arguments checked."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"`recipe` must be a recipe name or a Recipe, got {recipe!r}.")
    changes: dict[str, Any] = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name"}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(
            f"`overrides`: unknown recipe fields {unknown}; expected some of {sorted(fields)}."
        )
    if epochs is not None:
        changes["epochs"] = epochs
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if binarization is not None:
        changes["model_kwargs"] = {
            **changes.get("model_kwargs", recipe.model_kwargs),
            "binarization": binarization,
        }
    recipe = dataclasses.replace(recipe, **changes)
    _check_model_arguments(recipe)
    return recipe


def _check_model_arguments(recipe: Recipe) -> None:
    """The zoo's binarization and bits by name, and the model function's signature."""
    kwargs = recipe.model_kwargs
    for name, choices in (("binarization", BINARIZATIONS), ("bits", BITS)):
        if name in kwargs and kwargs[name] not in choices:
            raise ValueError(
                f"`{name}` must be one of {', '.join(choices)}, got {name}={kwargs[name]!r}."
            )
    info = data.dataset_info(recipe.dataset)
    try:
        inspect.signature(model_function(recipe)).bind(
            input_shape=info.input_shape, num_classes=info.num_classes, **kwargs
        )
    except TypeError as error:
        raise ValueError(f"Recipe {recipe.name!r}: model arguments {kwargs}: {error}.") from None


def _count_examples(plan: _Plan) -> _Examples:
    """Training and test examples (reading the dataset: a missing file fails here)."""
    recipe, info = plan.recipe, plan.info
    if info.augmentation == "imagenet":
        train_examples, test_examples = info.train_size, info.test_size
    else:
        (x_train, _), (x_test, _) = data.load_arrays(recipe.dataset, plan.data_dir)
        train_examples, test_examples = len(x_train) - plan.validation_size, len(x_test)
    if plan.train_limit is not None:
        train_examples = min(train_examples, plan.train_limit)
    steps = int(plan.steps_per_epoch or train_examples // recipe.batch_size)  # NumPy ints too
    if steps == 0:
        raise ValueError(
            f"batch_size={recipe.batch_size} is larger than the {train_examples} training "
            "examples; lower --batch-size or pass --steps-per-epoch."
        )
    return _Examples(train_examples, test_examples, steps)


def _configuration(plan: _Plan, steps: int) -> dict[str, Any]:
    """What `config.json` holds: every option that changes what the run computes or writes."""
    config = {
        "recipe": plan.recipe.to_dict(),
        "steps_per_epoch": steps,
        "seed": plan.seed,
        "train_limit": plan.train_limit,
        "validation_size": plan.validation_size,
        "strategy": plan.strategy,
        "extra_callbacks": [run_directory.callback_identity(c) for c in plan.extra_callbacks],
        "distillation": plan.teacher.config() if plan.teacher else None,
    }
    return json.loads(json.dumps(config))


@dataclasses.dataclass
class _Session:
    """The model being trained (the network, or the `Distiller` around it), the network
    itself (what is saved) and what restores and saves them."""

    model: tf.keras.Model
    network: tf.keras.Model
    learning_rate: tf.keras.optimizers.schedules.LearningRateSchedule | float
    state: run_directory.TrainingState
    initial_epoch: int = 0


def _load_teacher(plan: _Plan, distribution: tf.distribute.Strategy) -> tf.keras.Model | None:
    """The frozen teacher of `plan` (None without one), loaded inside the strategy's scope.

    Every worker loads it from the same path. A weights-only file and zoo weights are
    loaded into the full-precision twin of the student (`binarization="fp"`). The global
    seed is set again afterwards, so the student starts from the weights an undistilled
    run of the same seed starts from.
    """
    teacher = plan.teacher
    if teacher is None:
        return None
    twin_kwargs = {**plan.model_kwargs(), "binarization": _TEACHER_BINARIZATION}
    with distribution.scope():
        if teacher.zoo_weights:
            model = plan.build_model(**twin_kwargs, weights=teacher.source)
            model.trainable = False
        else:
            model = load_teacher(teacher.source, model=lambda: plan.build_model(**twin_kwargs))
    tf.keras.utils.set_random_seed(plan.seed)
    return model


def _build_model(
    plan: _Plan,
    steps: int,
    distribution: tf.distribute.Strategy,
    write_dir: Path,
    teacher: tf.keras.Model | None = None,
) -> _Session:
    """The compiled model (the `Distiller` with a teacher) and optimizer, restored from the
    last checkpoint if any."""
    recipe = plan.recipe
    learning_rate = make_schedule(recipe, steps)
    with distribution.scope():
        network = plan.build_model(**plan.model_kwargs())
        l2_weight_decay(network, recipe.weight_decay, latent_weights=recipe.decay_latent_weights)
        optimizer = make_optimizer(recipe, learning_rate, network)
        # Slots exist before a checkpoint is restored into them.
        optimizer.build(network.trainable_variables)
        metrics: list[Any] = ["accuracy"]
        if plan.info.num_classes > 10:
            metrics.append(tf.keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
        loss = tf.keras.losses.SparseCategoricalCrossentropy(
            from_logits=not ends_in_softmax(network)
        )
        model = network
        if teacher is not None:
            model = Distiller(
                network,
                teacher,
                alignment_weight=plan.teacher.alignment_weight,
                logits_weight=plan.teacher.logits_weight,
                temperature=plan.teacher.temperature,
            )
        model.compile(optimizer, loss, metrics)
    state = run_directory.TrainingState(model, optimizer, write_dir)
    session = _Session(model, network, learning_rate, state, state.restore())
    if session.initial_epoch and plan.verbose:
        print(
            f"Resuming {recipe.name} in {plan.run_dir} after epoch "
            f"{session.initial_epoch}/{recipe.epochs}."
        )
    return session


@dataclasses.dataclass(frozen=True)
class _Data:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset


#: The recipe fields that only DTE quantizers read (`DTECallback`).
_DTE_FIELDS = ("dte_stage_split", "dte_epsilon", "dte_band_fraction")


def _dte_binarizations() -> list[str]:
    """The `binarization=` presets whose kernel or input quantizer has a DTE gradient."""
    return [
        name
        for name, preset in PRESETS.items()
        if any(
            getattr(lq.quantizers.get(quantizer), "uses_dte", False)
            for quantizer in (preset.kernel_quantizer, preset.input_quantizer)
            if quantizer is not None
        )
    ]


def _check_dte_fields(recipe: Recipe, model: tf.keras.Model) -> None:
    """Refuse DTE settings changed from their defaults for a model that has no DTE."""
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe) if f.name in _DTE_FIELDS}
    changed = [name for name in _DTE_FIELDS if getattr(recipe, name) != defaults[name]]
    if changed and not dte_quantizers(model):
        binarization = recipe.model_kwargs.get("binarization", "the model's default")
        presets = _dte_binarizations()
        names = ", ".join(repr(name) for name in presets[:-1]) + f" or {presets[-1]!r}"
        raise ValueError(
            f"{', '.join(f'`{name}`' for name in changed)}: the model (binarization "
            f"{binarization!r}) has no DTE quantizer for them to act on; they apply to "
            f'binarization {names} (quantizers "dte_sign", "imb", '
            '"imb_sign" or LibraPB(gradient="dte")).'
        )


def _build_data(plan: _Plan, steps: int, initial_epoch: int) -> _Data:
    """The training stream from the resumed epoch's first batch, validation and test."""
    recipe = plan.recipe
    train_data = data.make_dataset(
        recipe.dataset,
        "train",
        recipe.batch_size,
        data_dir=plan.data_dir,
        seed=plan.seed,
        start_batch=initial_epoch * steps,
        limit=plan.train_limit,
        validation_size=plan.validation_size,
    )
    # Scoring is independent of the batch; small training batches would only slow it.
    test_batch = max(recipe.batch_size, _MIN_TEST_BATCH)
    test_data = data.make_dataset(recipe.dataset, "test", test_batch, data_dir=plan.data_dir)
    if not plan.validation_size:
        return _Data(train_data, test_data, test_data)
    validation_data = data.make_dataset(
        recipe.dataset,
        "validation",
        test_batch,
        data_dir=plan.data_dir,
        validation_size=plan.validation_size,
    )
    return _Data(train_data, validation_data, test_data)


def _callbacks(plan: _Plan, session: _Session, write_dir: Path) -> list:
    """EDE/DTE schedules, logger, extra callbacks, progress, TensorBoard, CSV, checkpoint."""
    callbacks: list[tf.keras.callbacks.Callback] = []
    if ede_quantizers(session.model):
        callbacks.append(EDECallback(t_min=plan.recipe.ede_t_min, t_max=plan.recipe.ede_t_max))
    if dte_quantizers(session.model):  # DIR-Net's DTE: the recipe's t range, stages and band
        recipe = plan.recipe
        callbacks.append(
            DTECallback(
                t_min=recipe.ede_t_min,
                t_max=recipe.ede_t_max,
                stage_split=recipe.dte_stage_split,
                epsilon=recipe.dte_epsilon,
                band_fraction=recipe.dte_band_fraction,
            )
        )
    callbacks += [_EpochLog(session.learning_rate), *plan.extra_callbacks]
    if plan.verbose == 2:
        callbacks.append(_EpochLine(plan.recipe.epochs))
    elif plan.verbose:
        callbacks.append(_Progress())
    return [
        *callbacks,
        tf.keras.callbacks.TensorBoard(
            log_dir=os.fspath(write_dir / run_directory.TENSORBOARD),
            write_graph=False,
            profile_batch=0,
        ),
        tf.keras.callbacks.CSVLogger(os.fspath(write_dir / run_directory.HISTORY), append=True),
        session.state.callback(),
    ]


def _fit_and_evaluate(
    plan: _Plan, session: _Session, datasets: _Data, steps: int, write_dir: Path
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Train to the recipe's last epoch; the final model's test and validation scores."""
    model = session.model
    fit = model.fit(
        datasets.train,
        epochs=plan.recipe.epochs,
        steps_per_epoch=steps,
        initial_epoch=session.initial_epoch,
        validation_data=datasets.validation,
        callbacks=_callbacks(plan, session, write_dir),
        # verbose=2 prints `_EpochLine`s instead of Keras' lines.
        verbose=0 if plan.verbose == 2 else plan.verbose,
    )
    if plan.validation_size:
        validation = model.evaluate(datasets.validation, verbose=0, return_dict=True)
        return model.evaluate(datasets.test, verbose=0, return_dict=True), validation
    if fit.epoch and fit.epoch[-1] == plan.recipe.epochs - 1:
        # The last epoch's validation already scored the final weights on the full test set.
        last = {k[len("val_") :]: v for k, v in fit.history.items() if k.startswith("val_")}
        return {name: values[-1] for name, values in last.items()}, None
    return model.evaluate(datasets.test, verbose=0, return_dict=True), None


def _save_model(model: tf.keras.Model, path: Path) -> None:
    """Save `model` as HDF5 without optimizer, atomically.

    HDF5 on purpose (`larq_irnet.zoo.loading.load_model` and LCE read it), so Keras'
    advice to use its own format, a 230-character warning, is not printed.
    """
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are saving your model as an HDF5 file")
        model.save(temporary, save_format="h5", include_optimizer=False)


def _history(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    return {k: [float(v) for v in vs] for k, vs in run_directory.read_history(path).items()}


def _scores(
    plan: _Plan,
    scores: tuple[dict[str, float], dict[str, float] | None],
    accuracies: list[float],
) -> dict[str, Any]:
    """The summary's scores: the final model's, the best epoch's, the validation split's."""
    final, validation = scores
    best = max(range(len(accuracies)), key=accuracies.__getitem__) if accuracies else None
    top5 = {}
    if "top5_accuracy" in final:
        top5["final_test_top5_accuracy"] = float(final["top5_accuracy"])
    return {
        "final_test_accuracy": float(final["accuracy"]),
        # With a teacher, `loss` adds the alignment term: the task loss is the student's.
        "final_test_loss": float(final.get("task_loss", final["loss"])),
        "final_test_alignment_loss": (
            float(final["alignment_loss"]) if "alignment_loss" in final else None
        ),
        "distill_from": plan.teacher.source if plan.teacher else None,
        **top5,
        "best_epoch_test_accuracy": (
            accuracies[best] if accuracies and not plan.validation_size else None
        ),
        "best_epoch": best,
        "validation_size": plan.validation_size,
        "final_validation_accuracy": (
            float(validation["accuracy"]) if validation is not None else None
        ),
        "final_validation_loss": (
            float(validation.get("task_loss", validation["loss"]))
            if validation is not None
            else None
        ),
    }


def _summarize(
    plan: _Plan,
    examples: _Examples,
    session: _Session,
    scores: tuple[dict[str, float], dict[str, float] | None],
    distribution: tf.distribute.Strategy,
    write_dir: Path,
    started: float,
) -> dict[str, Any]:
    """The run's summary (`train`'s return value) from its scores and `history.csv`."""
    recipe = plan.recipe
    history = _history(write_dir / run_directory.HISTORY)
    ede = ede_quantizers(session.model)
    model_argument = recipe.model_kwargs.get
    return {
        "recipe": recipe.name,
        "dataset": recipe.dataset,
        "model": recipe.to_dict()["model"],
        "bits": model_argument("bits", _default_argument(plan.build_model, "bits")),
        "binarization": model_argument(
            "binarization", _default_argument(plan.build_model, "binarization")
        ),
        "seed": plan.seed,
        "epochs": recipe.epochs,
        "steps_per_epoch": examples.steps,
        "batch_size": recipe.batch_size,
        "strategy": plan.strategy,
        "num_replicas": distribution.num_replicas_in_sync,
        "train_examples": examples.train,
        "test_examples": examples.test,
        **_scores(plan, scores, history.get("val_accuracy", [])),
        "ede_t": float(ede[0].ede_t.numpy()) if ede else None,
        "ede_k": float(ede[0].ede_k.numpy()) if ede else None,
        "ede_t_min": recipe.ede_t_min,
        "ede_t_max": recipe.ede_t_max,
        "resumed_from_epoch": session.initial_epoch,
        "train_seconds": sum(
            (v for v in history.get("epoch_seconds", []) if math.isfinite(v)), 0.0
        ),
        "wall_time_seconds": time.perf_counter() - started,
        "model_file": run_directory.MODEL,
        "versions": {"larq_irnet": _VERSION, "tensorflow": tf.__version__},
    }


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """How `train` runs a recipe: everything but the recipe and the run directory.

    Each option left at its default keeps the recipe's setting; all are checked by
    `train` before anything is written.

    # Arguments
        binarization: the model's `binarization` (a row of the paper's ablation table,
            `larq_irnet.zoo.BINARIZATIONS`); default the recipe's.
        epochs: override the recipe's epochs (the schedules are stretched to them).
        steps_per_epoch: optimizer steps per epoch; default one pass over the training
            examples (training examples // batch size).
        batch_size: override the recipe's global batch size.
        strategy: one of `STRATEGIES`.
        data_dir: where the dataset is (`larq_irnet.training.data.make_dataset`).
        seed: seed of initialization, data order and augmentation, 0 to `MAX_SEED`
            (2**32 - 1).
        train_limit: train on the first `train_limit` training examples only.
        validation_size: hold out the last `validation_size` training examples and
            validate on them every epoch instead of on the test set (for choosing a
            recipe without looking at the test set); 0: validate on the test set.
        overrides: recipe fields to change, e.g. `{"optimizer": "adam",
            "learning_rate": 1e-3, "decay_latent_weights": False}` (any field of
            `Recipe` but `name`); the changed recipe is validated as a new one.
        extra_callbacks: more Keras callbacks (e.g.
            `larq_irnet.callbacks.InformationDiagnostics()`); whatever they put into
            `logs` lands in `history.csv` and TensorBoard. Recorded in `config.json` by
            class and `get_config()`: a resume must pass the same ones.
        verbose: 1: a progress bar, 2: a line per epoch (the headline values; per-layer
            values go to `history.csv` and TensorBoard only), 0: silent.
        distill_from: train with RBD (`larq_irnet.distillation.Distiller`, our design)
            from this full-precision teacher: a run directory of `train` (its
            `model.h5`), a whole-model file (`.h5`, `.keras`, SavedModel), a
            weights-only `.h5` or the name of zoo weights (both loaded into the
            student's `binarization="fp"` twin). A name needs a registered
            `binarization="fp"` variant, which it loads (`"fashion_mnist"` has one); a
            file the registry knows as a binary variant's weights is refused. The teacher
            is loaded and frozen inside the strategy's scope (every worker reads the
            same path); the Distiller is what is fitted, evaluated and checkpointed,
            `model.h5` holds the student alone. Recorded in `config.json` as
            `distillation` (the resolved path or name and the file's sha256): a resume
            with another teacher is refused.
        alignment_weight: λ >= 0, the weight of the alignment term.
        logits_weight: μ >= 0, the weight of the logits' KL term (0: none).
        distill_temperature: T > 0 of the KL term.
    """

    binarization: str | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    strategy: str = "default"
    data_dir: str | os.PathLike | None = None
    seed: int = 0
    train_limit: int | None = None
    validation_size: int = 0
    overrides: Mapping[str, Any] | None = None
    extra_callbacks: Sequence[tf.keras.callbacks.Callback] = ()
    verbose: int | str = 1
    distill_from: str | os.PathLike | None = None
    alignment_weight: float = DISTILLATION_DEFAULTS["alignment_weight"]
    logits_weight: float = DISTILLATION_DEFAULTS["logits_weight"]
    distill_temperature: float = DISTILLATION_DEFAULTS["distill_temperature"]


def train(
    recipe: str | Recipe,
    output_dir: str | os.PathLike,
    options: TrainOptions | None = None,
) -> dict[str, Any]:
    """Train `recipe` into the run directory `output_dir`, resuming it if it was cut short.

    Runs `model.fit` with, in order, `EDECallback` and `DTECallback` (when the model has
    such quantizers, with the recipe's settings), a logger of `lr` and `epoch_seconds`,
    the extra callbacks, `TensorBoard`, `CSVLogger` and a checkpoint per epoch,
    validating on the full test set every epoch (the last epoch's validation is the
    final model's test score) or on the validation split (`validation_size`; the final
    model is then scored on the full test set once), and saves the model.

    Every option (`TrainOptions`), the dataset's files and `output_dir` are checked
    before anything is written. The run directory's files and its protocol (resume the
    same configuration; a finished run's summary is returned without training; another
    configuration is refused, naming the option; `RunDirectoryInUse` while another
    process trains into it) are described in `larq_irnet.training.run_directory`.

    It seeds Python, NumPy and TensorFlow with the seed and clears the Keras session.
    Under `strategy="multi-worker"` every worker runs `train` with the same arguments
    and `output_dir` on a filesystem they share; only the chief writes the run
    directory, the others write to `output_dir/workertemp_<i>` and delete it.

    # Returns
        The summary, also written to `summary.json`: the recipe and options, the final
        model's `final_test_accuracy` and `final_test_loss` (the task loss, with a
        teacher), `best_epoch` and `best_epoch_test_accuracy` (reported apart: picking
        it uses the test set), the validation split's scores, `ede_t`, `ede_k`,
        `resumed_from_epoch`, `train_seconds` and more (`_summarize`).

    # Raises
        ValueError: an option out of range, a configuration that differs from the run
            directory's (naming it), a teacher that cannot be loaded or is not full
            precision.
        FileNotFoundError: the dataset or the `distill_from` path is missing (naming it).
        RunDirectoryInUse: another process trains into `output_dir`.
    """
    started = time.perf_counter()
    plan = _plan(recipe, output_dir, TrainOptions() if options is None else options)
    # MultiWorkerMirroredStrategy must exist before anything else touches the runtime.
    distribution = make_strategy(plan.strategy)
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(plan.seed)
    examples = _count_examples(plan)
    config = _configuration(plan, examples.steps)
    finished = run_directory.finished_summary(plan.run_dir, config)
    if finished is None:
        # A teacher that does not load is an error before anything is written.
        teacher = _load_teacher(plan, distribution)
        chief, task_id = _task(distribution)
        with run_directory.claim(plan.run_dir, config, chief=chief, task_id=task_id) as claim:
            if claim.finished is None:
                return _run(plan, examples, distribution, teacher, claim, started)
            finished = claim.finished
    if plan.verbose:
        print(f"{plan.run_dir} holds a finished run of this configuration; not training.")
    return finished


def _run(
    plan: _Plan,
    examples: _Examples,
    distribution: tf.distribute.Strategy,
    teacher: tf.keras.Model | None,
    claim: run_directory.Claim,
    started: float,
) -> dict[str, Any]:
    """Set up (undone if it fails in a new run), fit, score, save, summarize."""
    write_dir = claim.write_dir
    with claim.undone_on_error():
        session = _build_model(plan, examples.steps, distribution, write_dir, teacher)
        _check_dte_fields(plan.recipe, session.model)
        if claim.chief:
            run_directory.truncate_history(
                plan.run_dir / run_directory.HISTORY, session.initial_epoch
            )
        datasets = _build_data(plan, examples.steps, session.initial_epoch)
    scores = _fit_and_evaluate(plan, session, datasets, examples.steps, write_dir)
    _save_model(session.network, write_dir / run_directory.MODEL)
    summary = _summarize(plan, examples, session, scores, distribution, write_dir, started)
    claim.finish(summary)
    return summary


def _plan(recipe: str | Recipe, output_dir: str | os.PathLike, options: TrainOptions) -> _Plan:
    """`train`'s arguments, checked (nothing is read or written yet but the recipe)."""
    if not isinstance(options, TrainOptions):
        raise ValueError(f"`options` must be a TrainOptions, got options={options!r}.")
    teacher = _teacher(options)
    numbers = _check_numbers(options)
    resolved = _resolve_recipe(
        recipe, options.binarization, numbers["epochs"], numbers["batch_size"], options.overrides
    )
    run_dir = Path(output_dir).expanduser()
    run_directory.check_output_dir(run_dir)
    return _Plan(
        recipe=resolved,
        info=data.dataset_info(resolved.dataset),
        run_dir=run_dir,
        strategy=options.strategy,
        seed=numbers["seed"],
        data_dir=options.data_dir,
        train_limit=numbers["train_limit"],
        validation_size=numbers["validation_size"],
        extra_callbacks=tuple(options.extra_callbacks),
        verbose=options.verbose,
        steps_per_epoch=numbers["steps_per_epoch"],
        teacher=teacher,
    )


def _check_numbers(options: TrainOptions) -> dict[str, Any]:
    """The options' counts, the seed and the strategy checked; counts as Python ints
    (NumPy integers are accepted: config.json is JSON)."""
    numbers = {
        name: _positive(getattr(options, name), name)
        for name in ("epochs", "batch_size", "train_limit", "steps_per_epoch")
    }
    numbers["seed"] = _check_seed(options.seed)
    if options.strategy not in STRATEGIES:
        raise ValueError(
            f"`strategy` must be one of {STRATEGIES}, got strategy={options.strategy!r}."
        )
    validation_size = options.validation_size
    if not (is_integer(validation_size) and validation_size >= 0):
        raise ValueError(
            f"`validation_size` must be an integer >= 0, got validation_size={validation_size!r}."
        )
    numbers["validation_size"] = int(validation_size)
    return numbers


def _teacher(options: TrainOptions) -> _Teacher | None:
    """`distill_from` resolved, or None (refusing distillation weights without it)."""
    weights = (options.alignment_weight, options.logits_weight, options.distill_temperature)
    if options.distill_from is None:
        return _no_teacher(*weights)
    return _resolve_teacher(options.distill_from, *weights)
