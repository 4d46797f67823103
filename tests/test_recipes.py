"""larq_irnet.recipes: the paper's settings as data, each one runnable."""

import dataclasses
import inspect

from larq_irnet.data import dataset_info
from larq_irnet.recipes import RECIPES, get_recipe, model_function

import pytest


def test_every_recipe_is_complete_and_sourced():
    expected = {
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
    assert set(RECIPES) == expected
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
