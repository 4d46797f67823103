r"""Optimizers, learning-rate schedules and weight decay of the training recipes.

Learning schedules live apart from the training loop, as larq-zoo keeps them
(`larq_zoo.training.learning_schedules`): `make_schedule` and `make_optimizer` turn a
`larq_irnet.training.recipes.Recipe` into Keras objects, `l2_weight_decay` adds the authors'
coupled weight decay, and `LatentScaledSGD` scales the learning rate of the latent
weights of binarized kernels. `larq_irnet.training.train` uses all four.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from larq_irnet._validation import is_integer, is_real
from larq_irnet.layers import binarized_weights
from larq_irnet.training.recipes import Recipe

import tensorflow as tf

__all__ = [
    "LatentScaledSGD",
    "WarmupStepDecay",
    "l2_weight_decay",
    "make_optimizer",
    "make_schedule",
]


@tf.keras.utils.register_keras_serializable(package="larq_irnet")
class WarmupStepDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    r"""Linear warm-up, then step decay: the authors' ImageNet learning rate.

    With s the optimizer step, S_w the warm-up steps and b_i the decay boundaries:

    \\[
    \eta(s) = \begin{cases}
    \eta_0 + (\eta_{peak} - \eta_0)\, s / S_w & s < S_w \\\
    \eta_{peak} \cdot \gamma^{\#\{i:\ s \geq b_i\}} & s \geq S_w
    \end{cases}
    \\]

    # Arguments
        initial_learning_rate: \\(\eta_0\\), the rate at step 0.
        peak_learning_rate: \\(\eta_{peak}\\), reached at the end of the warm-up.
        warmup_steps: \\(S_w\\) (0: no warm-up).
        boundaries: steps \\(b_i\\) at which the rate is multiplied by `factor`.
        factor: \\(\gamma\\).

    # References
        - [Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour (Goyal et al.,
          2017)](https://arxiv.org/abs/1706.02677), the warm-up; the authors' ImageNet
          configs (base_lr 0.2, warmup_lr 0.8, warmup_steps 2500, lr_steps, lr_mults).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        peak_learning_rate: float,
        warmup_steps: int,
        boundaries: Sequence[int],
        factor: float = 0.1,
    ):
        super().__init__()
        if not (is_integer(warmup_steps) and warmup_steps >= 0):
            raise ValueError(f"`warmup_steps` must be an integer >= 0, got {warmup_steps!r}.")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"`boundaries` must be increasing, got {list(boundaries)!r}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        progress = step / max(self.warmup_steps, 1)
        warmup = self.initial_learning_rate + (
            self.peak_learning_rate - self.initial_learning_rate
        ) * tf.minimum(progress, 1.0)
        passed = tf.reduce_sum(
            tf.cast(step >= tf.constant(self.boundaries or [math.inf], tf.float32), tf.float32)
        )
        decayed = self.peak_learning_rate * tf.pow(self.factor, passed)
        return tf.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "boundaries": self.boundaries,
            "factor": self.factor,
        }


def make_schedule(
    recipe: Recipe, steps_per_epoch: int
) -> tf.keras.optimizers.schedules.LearningRateSchedule | float:
    """The learning rate of `recipe` as a function of the optimizer step.

    `"cosine"`: Keras' `CosineDecay` from `learning_rate` to 0 over all
    `epochs * steps_per_epoch` steps. `"warmup_step"`: `WarmupStepDecay` with the
    boundaries at `decay_epochs * steps_per_epoch`. `"constant"`: the float itself.
    """
    if recipe.schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(
            recipe.learning_rate, decay_steps=recipe.epochs * steps_per_epoch, alpha=0.0
        )
    if recipe.schedule == "warmup_step":
        return WarmupStepDecay(
            recipe.warmup_initial_lr,
            recipe.learning_rate,
            recipe.warmup_steps,
            [epoch * steps_per_epoch for epoch in recipe.decay_epochs],
            recipe.decay_factor,
        )
    return recipe.learning_rate


class LatentScaledSGD(tf.keras.optimizers.SGD):
    r"""SGD whose learning rate for the latent weights of binarized kernels is c times larger.

    With g the gradient of a latent weight (weight decay included, as `l2_weight_decay`
    adds it to the loss), \\(\\eta\\) the learning rate and \\(\\beta\\) the momentum,
    Keras' SGD updates \\(m \\leftarrow \\beta m - \\eta g\\), \\(w \\leftarrow w + m\\)
    (Nesterov likewise). Scaling g by c scales m by c at every step, so it is exactly SGD
    with learning rate \\(c \\eta\\) on those weights; this optimizer scales the
    gradients of `latent_variables` by c before Keras' update and leaves the others
    alone. (Adam's step is invariant to the gradient's scale, so no Adam twin exists.)

    Ours, for the standardization-as-step-size ablation: plain binary networks with the
    latent learning rate that Libra-PB's division by the per-channel std implies.

    # Arguments
        learning_rate: \\(\\eta\\), a float or a schedule.
        latent_variables: the variables to scale, e.g. `[w.variable for w in
            larq_irnet.layers.binarized_weights(model)]`.
        latent_lr_scale: c > 0.
        momentum, nesterov: as `tf.keras.optimizers.SGD`.

    # Raises
        ValueError: `latent_lr_scale` is not a number > 0, or `latent_variables` is empty.
    """

    def __init__(
        self,
        learning_rate: tf.keras.optimizers.schedules.LearningRateSchedule | float = 0.01,
        *,
        latent_variables: Sequence[tf.Variable],
        latent_lr_scale: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "LatentScaledSGD",
        **kwargs: Any,
    ):
        if not (
            is_real(latent_lr_scale) and math.isfinite(latent_lr_scale) and latent_lr_scale > 0
        ):
            raise ValueError(
                f"`latent_lr_scale` must be a finite number > 0, got "
                f"latent_lr_scale={latent_lr_scale!r}."
            )
        latent_variables = list(latent_variables)
        if not latent_variables:
            raise ValueError(
                "`latent_variables` is empty: the model has no binarized kernel whose "
                "learning rate `latent_lr_scale` could scale."
            )
        super().__init__(learning_rate, momentum=momentum, nesterov=nesterov, name=name, **kwargs)
        self.latent_lr_scale = float(latent_lr_scale)
        self._latent_ids = set()
        for variable in latent_variables:
            self._latent_ids.add(id(variable))
            # Larq's QuantizedVariable wraps the trained variable.
            self._latent_ids.add(id(getattr(variable, "latent_variable", variable)))

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        scale = self.latent_lr_scale
        scaled = [
            (g * tf.cast(scale, g.dtype) if g is not None and id(v) in self._latent_ids else g, v)
            for g, v in grads_and_vars
        ]
        return super().apply_gradients(scaled, *args, **kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "latent_lr_scale": self.latent_lr_scale}


def make_optimizer(
    recipe: Recipe,
    learning_rate: tf.keras.optimizers.schedules.LearningRateSchedule | float,
    model: tf.keras.Model | None = None,
) -> tf.keras.optimizers.Optimizer:
    """The optimizer of `recipe` (weight decay is not here: see `l2_weight_decay`).

    # Arguments
        recipe: the recipe (`optimizer`, `momentum`, `nesterov`, `latent_lr_scale`).
        learning_rate: a float or a schedule (`make_schedule`).
        model: the built model; needed when `recipe.latent_lr_scale != 1`, whose latent
            binarized weights (`larq_irnet.layers.binarized_weights`) `LatentScaledSGD`
            then scales.

    # Raises
        ValueError: `latent_lr_scale != 1` without `model`, or with a model that has no
            binarized kernel.
    """
    if recipe.latent_lr_scale != 1.0:
        if model is None:
            raise ValueError(
                f"Recipe {recipe.name!r}: latent_lr_scale={recipe.latent_lr_scale!r} needs "
                "the model (`make_optimizer(recipe, learning_rate, model)`)."
            )
        return LatentScaledSGD(
            learning_rate,
            latent_variables=[w.variable for w in binarized_weights(model)],
            latent_lr_scale=recipe.latent_lr_scale,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
        )
    if recipe.optimizer == "sgd":
        return tf.keras.optimizers.SGD(
            learning_rate, momentum=recipe.momentum, nesterov=recipe.nesterov
        )
    return tf.keras.optimizers.Adam(learning_rate)


def l2_weight_decay(
    model: tf.keras.Model, weight_decay: float, *, latent_weights: bool = True
) -> None:
    r"""Add PyTorch-SGD-style weight decay to `model`'s losses.

    \\[
    L_{wd} = \frac{\lambda}{2} \sum_{w \in \text{trainable}} \lVert w \rVert^2,
    \qquad \nabla_w L_{wd} = \lambda w
    \\]

    The same gradient as `torch.optim.SGD(weight_decay=λ)`, the authors' optimizer: it
    is added before the momentum, on every trainable weight (kernels, biases,
    BatchNorm's γ and β; not BatchNorm's statistics nor EDE's t and k). Keras'
    `weight_decay=` optimizer argument would instead decay the weights outside the
    momentum (decoupled, as AdamW). Under `tf.distribute` Keras scales it per replica.

    # Arguments
        model: a built Keras model.
        weight_decay: λ >= 0; 0 adds nothing.
        latent_weights: also decay the latent weights of binarized kernels
            (`larq_irnet.layers.binarized_weights`); False leaves them out.
    """
    if not weight_decay >= 0:
        raise ValueError(f"`weight_decay` must be >= 0, got weight_decay={weight_decay!r}.")
    if weight_decay == 0:
        return
    weights = list(model.trainable_weights)
    if not latent_weights:
        latent = {id(w.variable) for w in binarized_weights(model)}
        weights = [w for w in weights if id(w) not in latent]
    if not weights:
        return
    coefficient = 0.5 * float(weight_decay)
    model.add_loss(lambda: coefficient * tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights]))
