r"""RBD, representation distillation from a full-precision teacher (DIR-Net; our design).

DIR-Net (Qin et al., IJCV 2023) adds to IR-Net a "Representation-align Binarization-aware
Distillation" that, in its abstract's words, retains "the representation information by
distilling the representations between full-precision and binarized networks". No
formula or code of it is public. **What this module builds is our own design** following
that sentence and the same first author's later public work, which aligns L2-normalised
squared feature maps block by block:

- at matching points of the binary student and its full-precision teacher (by default
  the output of each resolution stage, `layers.matching_points`), an attention map
  \\(a(F) = \mathrm{vec}(\frac{1}{C}\sum_c F_{\cdot,\cdot,c}^2) / \lVert \cdot \rVert_2\\)
  per sample (Zagoruyko & Komodakis 2017), compared by L2 distance
  (`attention_alignment`), weighted by \\(\lambda\\) and added to the task loss;
- optionally Hinton's temperature-scaled KL divergence on the logits
  (`distillation_kl`).

```python
import larq_irnet
from larq_irnet.distillation import Distiller, load_teacher
from larq_irnet.zoo import IRNetResNet20

student = IRNetResNet20(input_shape=(28, 28, 1), num_classes=10, weights=None)
teacher = load_teacher("runs/fmnist-fp")  # a run directory's model.h5, or an .h5 file
distiller = Distiller(student, teacher, alignment_weight=1.0)
distiller.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(), ["accuracy"])
distiller.fit(x, y, epochs=10, callbacks=[larq_irnet.EDECallback()])
distiller.student.save("student.h5")  # the binary network alone, converts with LCE
```

# References
- [Distribution-Sensitive Information Retention for Accurate Binary Neural Network
  (Qin et al., IJCV 2023)](https://arxiv.org/abs/2109.12338)
- [Paying More Attention to Attention (Zagoruyko & Komodakis, ICLR
  2017)](https://arxiv.org/abs/1612.03928)
- [Distilling the Knowledge in a Neural Network (Hinton et al.,
  2015)](https://arxiv.org/abs/1503.02531)
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from larq_irnet.layers import (
    binarized_weights,
    check_functional,
    ends_in_softmax,
    matching_pairs,
)

import tensorflow as tf

__all__ = [
    "Distiller",
    "attention_alignment",
    "attention_map",
    "distillation_kl",
    "load_teacher",
]

# tf.math.l2_normalize's and the norm's floor: an all-zero map or an exact match keeps
# finite gradients (the derivative of a norm at 0 is undefined).
_EPSILON = 1e-12
# Floor of probabilities before the log when a model ends in a softmax.
_MIN_PROBABILITY = 1e-30
_NOT_SAVED = (
    "{what}: a Distiller is not saved whole (it would load uncompiled, without its "
    "optimizer state). To deploy, save the student: `distiller.student.save(path)`. To "
    "resume a run, pass `tf.keras.callbacks.BackupAndRestore(backup_dir)` to fit, or "
    "`ModelCheckpoint(path, save_weights_only=True)` and `distiller.load_weights(path)`."
)


def attention_map(features: tf.Tensor) -> tf.Tensor:
    r"""The L2-normalised attention map of a feature map, per sample (our RBD design).

    \\[
    a(F) = \frac{\mathrm{vec}(A)}{\lVert \mathrm{vec}(A) \rVert_2}, \qquad
    A_{hw} = \frac{1}{C} \sum_{c=1}^{C} F_{hwc}^2
    \\]

    The channel mean and the channel sum give the same map after normalisation (the
    normalisation removes the 1/C); the mean is computed in float32 whatever the input
    dtype. The norm is floored at \\(10^{-12}\\) (`tf.math.l2_normalize`), so an all-zero
    map stays zero.

    # Arguments
        features: a feature map of shape (N, H, W, C) (channels last).

    # Returns
        The maps, float32, shape (N, H * W), each row of unit L2 norm (or zero).

    # Raises
        ValueError: `features` is not 4-D.

    # References
        - [Paying More Attention to Attention (Zagoruyko & Komodakis, ICLR 2017),
          Sec. 3.1](https://arxiv.org/abs/1612.03928)
    """
    if features.shape.rank != 4:
        raise ValueError(
            f"attention_map: `features` must be 4-D (N, H, W, C), got shape {features.shape}."
        )
    squared = tf.reduce_mean(tf.square(tf.cast(features, tf.float32)), axis=-1)
    flat = tf.reshape(squared, [tf.shape(squared)[0], -1])
    return tf.math.l2_normalize(flat, axis=-1, epsilon=_EPSILON)


def attention_alignment(
    student_features: Sequence[tf.Tensor], teacher_features: Sequence[tf.Tensor]
) -> tf.Tensor:
    r"""RBD's representation-alignment distance, per sample (our design, the one formula).

    With \\(P\\) matching points, \\(F^p_s\\), \\(F^p_t\\) the student's and teacher's
    feature maps of sample n at point p and \\(a\\) the `attention_map`:

    \\[
    d_n = \sum_{p=1}^{P} \left\lVert a(F^p_{s,n}) - a(F^p_{t,n}) \right\rVert_2
    \\]

    The norm is the plain (not squared) Euclidean norm of the difference of two unit
    vectors, so each point contributes a value in [0, 2]. The `Distiller` averages
    \\(d_n\\) over the global batch and multiplies by \\(\lambda\\):
    \\(L_{align} = \lambda \frac{1}{N} \sum_n d_n\\). The norm is computed as
    \\(\sqrt{\max(\lVert \cdot \rVert_2^2, 10^{-12})}\\), so that an exact match has a
    zero (not NaN) gradient.

    This is our design: DIR-Net's RBD distils "the representations between
    full-precision and binarized networks" without a published formula; the same first
    author's later public work aligns L2-normalised squared feature maps per block.

    # Arguments
        student_features: P tensors (N, H_p, W_p, C_p) of the binary student.
        teacher_features: P tensors (N, H_p, W_p, C'_p) of the teacher at the same
            points; channels may differ, spatial sizes must match.

    # Returns
        \\(d_n\\), float32, shape (N,).

    # Raises
        ValueError: the two lists differ in length or are empty, or a pair differs in
            spatial size.

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023)](https://arxiv.org/abs/2109.12338), RBD.
        - [Paying More Attention to Attention (Zagoruyko & Komodakis, ICLR 2017),
          Eq. 2](https://arxiv.org/abs/1612.03928)
    """
    student_features, teacher_features = list(student_features), list(teacher_features)
    if not student_features or len(student_features) != len(teacher_features):
        raise ValueError(
            "attention_alignment: expected the same number (>= 1) of student and teacher "
            f"feature maps, got {len(student_features)} and {len(teacher_features)}."
        )
    distances = []
    for index, (s, t) in enumerate(zip(student_features, teacher_features, strict=True)):
        if s.shape[1:3] != t.shape[1:3]:
            raise ValueError(
                f"attention_alignment: point {index} has student shape {s.shape} and "
                f"teacher shape {t.shape}; their spatial sizes (H, W) must match."
            )
        difference = attention_map(s) - attention_map(t)
        squared = tf.reduce_sum(tf.square(difference), axis=-1)
        distances.append(tf.sqrt(tf.maximum(squared, _EPSILON)))
    return tf.add_n(distances)


def _log_probabilities(outputs: tf.Tensor, from_logits: bool, temperature: tf.Tensor) -> tf.Tensor:
    """log softmax(z / T), with z the logits or, after a softmax, log p (= z + const)."""
    outputs = tf.cast(outputs, tf.float32)
    logits = outputs if from_logits else tf.math.log(tf.maximum(outputs, _MIN_PROBABILITY))
    return tf.nn.log_softmax(logits / temperature, axis=-1)


def distillation_kl(
    student_outputs: tf.Tensor,
    teacher_outputs: tf.Tensor,
    *,
    temperature: float | tf.Tensor,
    from_logits: bool,
) -> tf.Tensor:
    r"""Hinton's temperature-scaled KL divergence of the student from the teacher, per sample.

    With \\(z\\) the logits and \\(q^T = \mathrm{softmax}(z / T)\\):

    \\[
    L_{KL,n} = T^2 \sum_{k} q^T_{t,nk} \left(\log q^T_{t,nk} - \log q^T_{s,nk}\right)
    \\]

    The \\(T^2\\) keeps the gradient's scale independent of T (Hinton et al., Sec. 2).
    For a model that ends in a softmax (`from_logits=False`), \\(\log p\\) stands for the
    logits: it differs from them by a per-sample constant, which the softmax cancels;
    probabilities are floored at \\(10^{-30}\\) before the log.

    # Arguments
        student_outputs: (N, K) logits or probabilities of the student.
        teacher_outputs: (N, K) of the teacher, the same kind.
        temperature: T > 0, a real number (Python or NumPy) or a scalar tensor or
            variable (read when the function runs; the `Distiller` passes its variable).
        from_logits: whether the outputs are logits (else probabilities).

    # Returns
        \\(L_{KL,n}\\), float32, shape (N,).

    # Raises
        ValueError: `temperature` is a number but not one > 0.

    # References
        - [Distilling the Knowledge in a Neural Network (Hinton et al.,
          2015)](https://arxiv.org/abs/1503.02531)
    """
    if not tf.is_tensor(temperature):
        _check_positive(temperature, "temperature")
    temperature = tf.cast(temperature, tf.float32)
    log_s = _log_probabilities(student_outputs, from_logits, temperature)
    log_t = _log_probabilities(teacher_outputs, from_logits, temperature)
    kl = tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)
    return tf.square(temperature) * kl


def _check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """`value` as a float, or a ValueError naming it; Python and NumPy reals, not bool."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be a finite number {bound}, got {name}={value!r}.")
    return float(value)


def _input_shapes(model: tf.keras.Model) -> list[tuple]:
    """A model's input shapes without the batch axis: `[(28, 28, 1)]`."""
    return [tuple(tensor.shape[1:]) for tensor in model.inputs]


def _check_pair(student: tf.keras.Model, teacher: tf.keras.Model) -> None:
    """A student and teacher the `Distiller` can train with; a ValueError saying why not."""
    check_functional(student, "student")
    check_functional(teacher, "teacher")
    if teacher is student:
        raise ValueError(
            "`teacher` is the `student` model itself; the teacher is a separate "
            "full-precision network (e.g. the student's binarization='fp' twin)."
        )
    if not student.trainable_weights:
        raise ValueError(
            f"`student` {student.name!r} has no trainable weights (trainable=False?); "
            "the Distiller trains the student and would change nothing."
        )
    if _input_shapes(student) != _input_shapes(teacher):
        raise ValueError(
            f"`student` and `teacher` must take the same inputs, got input shapes "
            f"{_input_shapes(student)} and {_input_shapes(teacher)}; the teacher is a "
            "network for the student's data (e.g. its binarization='fp' twin)."
        )
    if tuple(student.output_shape) != tuple(teacher.output_shape):
        raise ValueError(
            f"`student` and `teacher` must have the same output shape, got "
            f"{student.output_shape} and {teacher.output_shape}."
        )


def _mean(name: str) -> tf.keras.metrics.Mean:
    return tf.keras.metrics.Mean(name=name)


class Distiller(tf.keras.Model):
    r"""Trains a binary student with RBD, representation alignment to a float teacher.

    Our design of DIR-Net's RBD (the paper publishes no formula): each training step
    minimises

    \\[
    L = L_{task}(y, f_s(x)) + L_{reg}
      + \lambda \frac{1}{N} \sum_{n=1}^{N} \sum_{p=1}^{P}
        \left\lVert a(F^p_{s,n}) - a(F^p_{t,n}) \right\rVert_2
      + \mu \frac{1}{N} \sum_{n=1}^{N} L_{KL,n}
    \\]

    with \\(a\\) the L2-normalised channel mean of squared features (`attention_map`,
    `attention_alignment`), P matching points (`layers.matching_points` by default),
    \\(L_{KL}\\) Hinton's T^2-scaled KL on the logits (`distillation_kl`),
    \\(L_{reg}\\) the student's own `losses` (e.g. weight decay), N the global batch.

    - The teacher is frozen: `teacher.trainable = False`, called with `training=False`
      (BatchNorm uses its moving statistics) outside the gradient tape and behind
      `tf.stop_gradient`; no gradient is computed for it and the optimizer only sees
      the student's variables.
    - `fit` logs `loss` (L), `task_loss` (\\(L_{task}\\)), `alignment_loss` (the
      unweighted \\(\frac{1}{N}\sum_n d_n\\)), `kl_loss` (unweighted, whatever
      \\(\mu\\)) and the compiled metrics of the student. `evaluate` runs the
      student alone in inference mode: `task_loss` and the metrics score it, and
      `alignment_loss` (and `kl_loss`) measure it against the teacher; its `loss` is
      L, as in `fit` (read `task_loss` for the student's own loss).
    - Under `tf.distribute` every per-sample loss is averaged over the global batch
      (`tf.nn.compute_average_loss`) and the student's regularization losses are
      divided by the number of replicas (`tf.nn.scale_regularization_loss`), so that
      the summed replica gradients are those of one device with the global batch.
    - Callbacks see the student's layers: `larq_irnet.callbacks.ede_quantizers`,
      `EDECallback` and `InformationDiagnostics` find the student's quantizers and
      binarized kernels (the full-precision teacher has none).
    - \\(\lambda\\), \\(\mu\\) and T are float32 variables that every step reads:
      assigning `distiller.alignment_weight = 0.0` (e.g. from a callback's
      `on_epoch_begin`) changes the next step's loss, without retracing. They are
      neither weights nor checkpoint entries: a callback that anneals them sets them
      from the epoch (as `LearningRateScheduler` does), so a resumed run sets them again.
    - Save `distiller.student` (`student.save("model.h5")`): it loads and converts
      with LCE without the Distiller. The Distiller itself is not saved whole: `save`
      and a `ModelCheckpoint` that would save it raise `NotImplementedError` saying
      so. To resume a run, `tf.keras.callbacks.BackupAndRestore` (or
      `tf.train.Checkpoint(model=distiller, optimizer=...)`) holds student, teacher
      and the optimizer and continues training exactly; `ModelCheckpoint(...,
      save_weights_only=True)` files load with `distiller.load_weights`.

    ```python
    distiller = Distiller(student, teacher, alignment_weight=1.0)
    distiller.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(), ["accuracy"])
    distiller.fit(train_data, epochs=10, callbacks=[EDECallback(), CSVLogger("h.csv")])
    ```

    # Arguments
        student: the binary network, a functional Keras model.
        teacher: its full-precision twin (e.g. the zoo model with `binarization="fp"`,
            trained), a functional Keras model with the same number of classes.
        feature_layers: the matching points: None (`layers.matching_points` of each model,
            paired in order; the spatial sizes must match), a list of layer names
            present in both, or a list of `(student_layer, teacher_layer)` pairs.
        alignment_weight: \\(\lambda \geq 0\\).
        logits_weight: \\(\mu \geq 0\\); 0 (default) leaves the KL term out of the
            loss (`kl_loss` is still logged).
        temperature: T > 0 of the KL term.
        from_logits: whether student and teacher output logits; default: not when the
            student's last layer has a softmax activation (the zoo's models).

    # Raises
        ValueError: a model is not functional, an argument is out of range (naming
            it), the teacher is the student itself, the student has no trainable
            weights, the inputs or outputs differ in shape, or matching points are
            missing or differ in spatial size (naming both layers and their shapes).

    # References
        - [Distribution-Sensitive Information Retention for Accurate Binary Neural
          Network (Qin et al., IJCV 2023)](https://arxiv.org/abs/2109.12338), RBD.
        - [Paying More Attention to Attention (Zagoruyko & Komodakis, ICLR
          2017)](https://arxiv.org/abs/1612.03928)
        - [Distilling the Knowledge in a Neural Network (Hinton et al.,
          2015)](https://arxiv.org/abs/1503.02531)
    """

    def __init__(
        self,
        student: tf.keras.Model,
        teacher: tf.keras.Model,
        *,
        feature_layers: Sequence[str | tuple[str, str]] | None = None,
        alignment_weight: float = 1.0,
        logits_weight: float = 0.0,
        temperature: float = 4.0,
        from_logits: bool | None = None,
        **kwargs: Any,
    ):
        _check_pair(student, teacher)
        weights = {
            "alignment_weight": _check_positive(
                alignment_weight, "alignment_weight", allow_zero=True
            ),
            "logits_weight": _check_positive(logits_weight, "logits_weight", allow_zero=True),
            "temperature": _check_positive(temperature, "temperature"),
        }
        pairs = matching_pairs(student, teacher, feature_layers)
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.feature_layers = pairs
        self._create_loss_weights(weights)
        self.from_logits = (not ends_in_softmax(student)) if from_logits is None else from_logits
        # Multi-output views sharing the models' layers: one forward pass gives the
        # prediction and every matching point.
        self._student_view = tf.keras.Model(
            student.inputs,
            [student.output, *(student.get_layer(s).output for s, _ in pairs)],
            name=f"{student.name}_points",
        )
        self._teacher_view = tf.keras.Model(
            teacher.inputs,
            [teacher.output, *(teacher.get_layer(t).output for _, t in pairs)],
            name=f"{teacher.name}_points",
        )
        self._student_loss = None
        self.loss_tracker = _mean("loss")
        self.task_loss_tracker = _mean("task_loss")
        self.alignment_tracker = _mean("alignment_loss")
        self.kl_tracker = _mean("kl_loss")
        # Every variable exists (student and teacher are built): weights load into it.
        self.built = True

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _create_loss_weights(self, values: dict[str, float]) -> None:
        # Variables, so that a traced step reads a value changed between steps; created
        # without Keras' attribute tracking (the decorator), so they are neither weights
        # of the Distiller nor checkpoint entries: checkpoints of older runs still load.
        # The Python values are kept beside them, unrounded, for `get_config`.
        self._loss_weight_values = dict(values)
        self._loss_weights = {
            name: tf.Variable(value, trainable=False, dtype=tf.float32, name=name)
            for name, value in values.items()
        }

    def _set_loss_weight(self, name: str, value: Any) -> None:
        value = _check_positive(value, name, allow_zero=name != "temperature")
        self._loss_weights[name].assign(value)
        self._loss_weight_values[name] = value

    @property
    def alignment_weight(self) -> float:
        """lambda >= 0, the alignment term's weight; an assignment takes effect next step."""
        return self._loss_weight_values["alignment_weight"]

    @alignment_weight.setter
    def alignment_weight(self, value: float) -> None:
        self._set_loss_weight("alignment_weight", value)

    @property
    def logits_weight(self) -> float:
        """mu >= 0, the KL term's weight; an assignment takes effect next step."""
        return self._loss_weight_values["logits_weight"]

    @logits_weight.setter
    def logits_weight(self, value: float) -> None:
        self._set_loss_weight("logits_weight", value)

    @property
    def temperature(self) -> float:
        """T > 0, the KL term's temperature; an assignment takes effect next step."""
        return self._loss_weight_values["temperature"]

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._set_loss_weight("temperature", value)

    def save(self, filepath, *args, **kwargs):
        """Refused: save `distiller.student`, or resume with `BackupAndRestore`.

        # Raises
            NotImplementedError: always, naming what to save instead.
        """
        raise NotImplementedError(_NOT_SAVED.format(what=f"Distiller.save({filepath!r})"))

    def fit(self, *args, **kwargs):
        """Keras' `fit`.

        # Raises
            NotImplementedError: a `ModelCheckpoint` without `save_weights_only=True`
                among the callbacks, before training (it would save the Distiller whole).
        """
        callbacks = kwargs.get("callbacks", args[5] if len(args) > 5 else None) or []
        for callback in getattr(callbacks, "callbacks", callbacks):
            checkpoint = isinstance(callback, tf.keras.callbacks.ModelCheckpoint)
            if checkpoint and not callback.save_weights_only:
                what = f"ModelCheckpoint({callback.filepath!r}) on Distiller.fit"
                raise NotImplementedError(_NOT_SAVED.format(what=what))
        return super().fit(*args, **kwargs)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Keras' `compile`; `loss` is the student's task loss (one output, per sample).

        The loss is applied per sample (reduction `NONE`) and averaged over the global
        batch by the Distiller itself.
        """
        if loss is None:
            raise ValueError(
                "Distiller.compile: pass the student's task loss as `loss=` (e.g. "
                "tf.keras.losses.SparseCategoricalCrossentropy()), got loss=None."
            )
        task_loss = tf.keras.losses.get(loss)
        if isinstance(task_loss, tf.keras.losses.Loss):
            config = {**task_loss.get_config(), "reduction": tf.keras.losses.Reduction.NONE}
            task_loss = type(task_loss).from_config(config)
        self._student_loss = task_loss
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    @property
    def metrics(self):
        trackers = [
            self.loss_tracker,
            self.task_loss_tracker,
            self.alignment_tracker,
            self.kl_tracker,
        ]
        return trackers + self.compiled_metrics.metrics if self._is_compiled else trackers

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _teacher_forward(self, x) -> list[tf.Tensor]:
        outputs = self._teacher_view(x, training=False)
        return [tf.stop_gradient(o) for o in outputs]

    def _objective(self, x, y, sample_weight, teacher_outputs, training: bool):
        """(prediction, {name: replica-scaled loss}, {name: batch-mean value to log})."""
        y_pred, *student_points = self._student_view(x, training=training)
        teacher_pred, *teacher_points = teacher_outputs
        # float32 whatever the policy: a float16 head's loss must not meet float32 terms.
        per_sample_task = tf.cast(self._student_loss(y, y_pred, sample_weight), tf.float32)
        if per_sample_task.shape.rank and per_sample_task.shape.rank > 1:
            per_sample_task = tf.reduce_mean(
                per_sample_task, axis=list(range(1, per_sample_task.shape.rank))
            )
        weights = self._loss_weights
        per_sample = {
            "task_loss": per_sample_task,
            "alignment_loss": attention_alignment(student_points, teacher_points),
            # Always computed: its weight is a variable that may become > 0 mid-training.
            "kl_loss": distillation_kl(
                y_pred,
                teacher_pred,
                temperature=weights["temperature"],
                from_logits=self.from_logits,
            ),
        }
        scaled = {k: tf.nn.compute_average_loss(v) for k, v in per_sample.items()}
        logged = {k: tf.reduce_mean(v) for k, v in per_sample.items()}
        total, logged_total = (
            terms["task_loss"]
            + weights["alignment_weight"] * terms["alignment_loss"]
            + weights["logits_weight"] * terms["kl_loss"]
            for terms in (scaled, logged)
        )
        if self.student.losses:
            regularization = tf.cast(tf.add_n(self.student.losses), tf.float32)
            total += tf.nn.scale_regularization_loss(regularization)
            logged_total += regularization
        scaled["loss"], logged["loss"] = total, logged_total
        return y_pred, scaled, logged

    def distillation_losses(self, x, y, sample_weight=None, *, training: bool = False) -> dict:
        """The loss terms of one batch, each averaged over the (global) batch.

        # Arguments
            x, y, sample_weight: one batch, as `fit` receives it.
            training: run the student in training mode (BatchNorm batch statistics);
                the teacher always runs in inference mode.

        # Returns
            `{"loss": L, "task_loss": ..., "alignment_loss": ..., "kl_loss": ...}`
            (`alignment_loss` and `kl_loss` unweighted; `loss` includes the student's
            regularization losses). Under `tf.distribute`, call it inside
            `strategy.run`: each value is then the replica's share, and their sum over
            replicas is the global-batch value.
        """
        _, scaled, _ = self._objective(
            x, y, sample_weight, self._teacher_forward(x), training=training
        )
        return scaled

    def _update_trackers(self, y, y_pred, sample_weight, logged) -> dict:
        # Batch means weighted by the batch's size, as Keras' own loss tracker does: a
        # short last batch must not count as much as a full one in the epoch's mean.
        size = tf.cast(tf.shape(y_pred)[0], tf.float32)
        self.loss_tracker.update_state(logged["loss"], sample_weight=size)
        self.task_loss_tracker.update_state(logged["task_loss"], sample_weight=size)
        self.alignment_tracker.update_state(logged["alignment_loss"], sample_weight=size)
        self.kl_tracker.update_state(logged["kl_loss"], sample_weight=size)
        self.compiled_metrics.update_state(y, y_pred, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        teacher_outputs = self._teacher_forward(x)  # outside the tape: no gradient
        with tf.GradientTape() as tape:
            y_pred, scaled, logged = self._objective(
                x, y, sample_weight, teacher_outputs, training=True
            )
        # minimize scales the loss and unscales the gradients when the optimizer is a
        # LossScaleOptimizer (mixed precision): float16 gradients would underflow.
        self.optimizer.minimize(scaled["loss"], self.student.trainable_variables, tape=tape)
        return self._update_trackers(y, y_pred, sample_weight, logged)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred, _, logged = self._objective(
            x, y, sample_weight, self._teacher_forward(x), training=False
        )
        return self._update_trackers(y, y_pred, sample_weight, logged)

    def get_config(self) -> dict:
        return {
            "student": tf.keras.layers.serialize(self.student),
            "teacher": tf.keras.layers.serialize(self.teacher),
            "feature_layers": [list(pair) for pair in self.feature_layers],
            "alignment_weight": self.alignment_weight,
            "logits_weight": self.logits_weight,
            "temperature": self.temperature,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> Distiller:
        config = dict(config)
        for role in ("student", "teacher"):
            config[role] = tf.keras.layers.deserialize(config[role], custom_objects=custom_objects)
        config["feature_layers"] = [tuple(pair) for pair in config["feature_layers"]]
        return cls(config.pop("student"), config.pop("teacher"), **config)


def load_teacher(
    path_or_run_dir: str | os.PathLike,
    *,
    model: tf.keras.Model | Callable[[], tf.keras.Model] | None = None,
) -> tf.keras.Model:
    """Load a full-precision teacher for `Distiller`, frozen.

    Loaded by `larq_irnet.zoo.loading.load_model`, the one loader of models from paths.

    # Arguments
        path_or_run_dir: a run directory of `larq-irnet train` (its `model.h5` is
            loaded), a whole-model file (`.h5`, `.keras`, SavedModel directory), a
            weights-only `.h5` (`model.save_weights`), which needs `model=`, or the name
            of shipped zoo weights (their full-precision variant).
        model: the architecture to load a weights-only file into, e.g.
            `IRNetResNet20(input_shape=..., num_classes=..., binarization="fp",
            weights=None)`, or a function without arguments that builds it (called only
            for a weights-only file, so a whole-model file costs no extra build);
            ignored for whole-model files.

    # Returns
        The model, with `trainable = False`. A teacher with binarized layers is loaded
        with a `UserWarning` (RBD expects a full-precision one).

    # Raises
        FileNotFoundError: nothing is at the path, or a directory is neither a finished
            run directory (with `model.h5`) nor a SavedModel (one line naming the path).
        ValueError: a weights-only file without `model=`, or a file Keras cannot load
            (one line naming the path).
    """
    from larq_irnet.zoo.loading import load_model

    try:
        teacher = load_model(path_or_run_dir, model=model, binarization="fp")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"load_teacher: {error}") from None
    except ValueError as error:
        raise ValueError(f"load_teacher: {error}") from None
    binary = binarized_weights(teacher)
    if binary:
        warnings.warn(
            f"load_teacher: {path_or_run_dir} has {len(binary)} binarized layers; RBD is "
            "designed to distil from a full-precision teacher (binarization='fp')",
            stacklevel=2,
        )
    teacher.trainable = False
    return teacher
