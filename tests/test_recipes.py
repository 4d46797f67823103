"""larq_irnet.training.recipes: the paper's settings as data, each one runnable."""

import dataclasses
import inspect
import json

from larq_irnet.layers import binarized_weights
from larq_irnet.training import trainer as training
from larq_irnet.training.data import dataset_info
from larq_irnet.training.recipes import (
    DIRNET_PREFIX,
    RECIPES,
    TUNED_SUFFIX,
    get_recipe,
    model_function,
)

import numpy as np
import pytest


def test_every_recipe_is_complete_and_sourced():
    irnet = {
        "cifar10-resnet20-1w1a",
        "cifar10-resnet20-1w32a",
        "cifar10-vggsmall-1w1a",
        "cifar10-resnet18-1w1a",
        "imagenet-resnet18-1w1a",
        "imagenet-resnet18-1w32a",
        "imagenet-resnet34-1w1a",
        "imagenet-resnet34-1w32a",
        "fashion_mnist-resnet20-1w1a",
    }
    tuned = {"fashion_mnist-resnet20-1w1a-tuned"}
    assert set(RECIPES) == irnet | {f"dirnet-{name}" for name in irnet} | tuned
    for recipe in RECIPES.values():
        assert recipe.source
        assert recipe.model_kwargs["bits"] in recipe.name
        # train() calls the zoo function with these arguments (and --binarization).
        info = dataset_info(recipe.dataset)
        inspect.signature(model_function(recipe)).bind(
            input_shape=info.input_shape,
            num_classes=info.num_classes,
            **{**recipe.model_kwargs, "binarization": "bnn"},
        )
    # The authors' per-script values (reference: irnet.md, "Training recipes").
    resnet20 = RECIPES["cifar10-resnet20-1w1a"]
    assert (resnet20.ede_t_min, resnet20.ede_t_max, resnet20.epochs) == (1e-3, 10.0, 400)
    assert RECIPES["cifar10-vggsmall-1w1a"].learning_rate == 0.007
    assert RECIPES["imagenet-resnet18-1w1a"].weight_decay == 1e-5
    assert RECIPES["imagenet-resnet34-1w1a"].weight_decay == 1e-4
    assert RECIPES["imagenet-resnet18-1w32a"].nesterov


def test_an_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown recipe 'cifar10-resnet21'.*fashion_mnist"):
        get_recipe("cifar10-resnet21")


def test_a_recipe_is_validated_as_it_is_made():
    recipe = get_recipe("fashion_mnist-resnet20-1w1a")
    with pytest.raises(ValueError, match=r"`optimizer` must be one of \('sgd', 'adam'\)"):
        dataclasses.replace(recipe, optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"need 0 < ede_t_min < ede_t_max"):
        dataclasses.replace(recipe, ede_t_min=20.0)
    assert recipe.to_dict()["model"] == recipe.model
    for field, value, expected in (
        ("dte_stage_split", 1.0, "a number in [0, 1)"),
        ("dte_epsilon", -0.1, "a finite number >= 0"),
        ("dte_epsilon", float("inf"), "a finite number >= 0"),
        ("dte_band_fraction", 0.0, "a number in (0, 1)"),
        ("dte_band_fraction", True, "a number in (0, 1)"),
    ):
        message = f"Recipe '{recipe.name}': `{field}` must be {expected}, got {field}={value!r}."
        with pytest.raises(ValueError) as error:
            dataclasses.replace(recipe, **{field: value})
        assert str(error.value) == message
    # Any real number type, as the other checks of the package accept.
    changed = dataclasses.replace(recipe, dte_epsilon=np.float32(0.5))
    assert type(changed.dte_epsilon) is float and changed.dte_epsilon == 0.5
    json.dumps(changed.to_dict())


def test_dte_fields_default_to_the_estimators_defaults():
    from larq_irnet.estimators import DTE_BAND_FRACTION, DTE_EPSILON

    recipe = get_recipe("dirnet-fashion_mnist-resnet20-1w1a")
    assert (recipe.dte_stage_split, recipe.dte_epsilon) == (0.5, DTE_EPSILON)
    assert recipe.dte_band_fraction == DTE_BAND_FRACTION


def test_dirnet_recipes_train_as_their_irnet_row_with_the_dirnet_binarization():
    dirnet = {name: r for name, r in RECIPES.items() if name.startswith(DIRNET_PREFIX)}
    # Every recipe but the tuned ones (their DIR-Net row searched its own rate) has a twin.
    untuned = [n for n in RECIPES if n not in dirnet and not n.endswith(TUNED_SUFFIX)]
    assert sorted(dirnet) == sorted(f"{DIRNET_PREFIX}{name}" for name in untuned)
    for name, recipe in dirnet.items():
        irnet = RECIPES[name.removeprefix(DIRNET_PREFIX)]
        assert recipe.model_kwargs == {**irnet.model_kwargs, "binarization": "dirnet"}
        same = {"name", "model_kwargs", "source"}
        for field in dataclasses.fields(recipe):
            if field.name not in same:
                assert getattr(recipe, field.name) == getattr(irnet, field.name), field.name
        assert recipe.source.startswith("ours") and irnet.name in recipe.source


def test_the_tuned_recipe_is_the_searched_irnet_optimizer_on_the_fashion_mnist_recipe():
    # The shipped IR-Net weights' recipe (benchmarks/results/ablation_tuned.json, row
    # irnet: Adam 2.5e-2, latent weight decay on); everything else is the base recipe's.
    base = get_recipe("fashion_mnist-resnet20-1w1a")
    tuned = get_recipe("fashion_mnist-resnet20-1w1a-tuned")
    searched = dict(optimizer="adam", learning_rate=2.5e-2, decay_latent_weights=True)
    expected = dataclasses.replace(base, name=tuned.name, source=tuned.source, **searched)
    assert tuned == expected and tuned.schedule == "cosine"
    assert tuned.source.startswith("ours") and base.name in tuned.source


@pytest.mark.slow  # builds every DIR-Net model of the zoo, ImageNet ResNet-34 included
def test_every_dirnet_recipe_resolves_and_builds_its_model():
    """Needs the `dirnet` binarization (issue 11): passes once that branch is merged."""
    for name in sorted(RECIPES):
        if not name.startswith(DIRNET_PREFIX):
            continue
        recipe = training._resolve_recipe(name, None, None, None, None)
        info = dataset_info(recipe.dataset)
        model = model_function(recipe)(
            input_shape=info.input_shape, num_classes=info.num_classes, **recipe.model_kwargs
        )
        assert model.output_shape == (None, info.num_classes), name
        assert binarized_weights(model), name


def test_latent_lr_scale_is_validated_as_the_recipe_is_made():
    recipe = get_recipe("fashion_mnist-resnet20-1w1a")
    assert dataclasses.replace(recipe, latent_lr_scale=12.5).latent_lr_scale == 12.5
    with pytest.raises(ValueError, match=r"`latent_lr_scale` must be a number > 0, got"):
        dataclasses.replace(recipe, latent_lr_scale=-1.0)
    with pytest.raises(ValueError, match=r"needs optimizer='sgd'.*got optimizer='adam'"):
        dataclasses.replace(recipe, optimizer="adam", latent_lr_scale=2.0)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    recipe = dataclasses.replace(
        get_recipe("fashion_mnist-resnet20-1w1a"),
        epochs=np.int64(3),
        batch_size=np.int32(32),
        learning_rate=np.float32(0.05),
        warmup_steps=np.int64(2),
        decay_epochs=(np.int64(1), np.int64(2)),
        ede_t_max=np.float64(20.0),
        dte_epsilon=np.float32(0.25),
        latent_lr_scale=np.int64(2),
    )
    assert (recipe.epochs, recipe.batch_size, recipe.decay_epochs) == (3, 32, (1, 2))
    assert type(recipe.epochs) is int and type(recipe.learning_rate) is float
    assert all(type(epoch) is int for epoch in recipe.decay_epochs)
    assert json.loads(json.dumps(recipe.to_dict()))["latent_lr_scale"] == 2.0
    with pytest.raises(ValueError, match=r"`epochs` must be a positive integer, got"):
        dataclasses.replace(recipe, epochs=np.float64(3.0))
