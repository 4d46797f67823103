"""larq_irnet.data (the package): every name importable before the split still is."""

import larq_irnet.data
from larq_irnet.data import augmentation, pipelines, sources

import pytest

# `larq_irnet.data.__all__` when it was one module (data.py).
NAMES_BEFORE_THE_SPLIT = [
    "CIFAR10_BATCHES",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DatasetInfo",
    "array_dataset",
    "color_jitter",
    "dataset_info",
    "imagenet_eval_image",
    "imagenet_train_image",
    "jpeg_dataset",
    "load_arrays",
    "load_cifar10",
    "load_fashion_mnist",
    "make_dataset",
    "pad_crop_flip",
    "random_color_jitter",
    "read_idx",
]


@pytest.mark.parametrize("module", [sources, augmentation, pipelines])
def test_the_package_re_exports_each_module_public_name(module):
    for name in module.__all__:
        assert getattr(larq_irnet.data, name) is getattr(module, name), name
        assert name in larq_irnet.data.__all__


def test_names_from_before_the_split_are_the_same_objects():
    modules = (sources, augmentation, pipelines)
    homes = {name: module for module in modules for name in module.__all__}
    for name in NAMES_BEFORE_THE_SPLIT:
        assert getattr(larq_irnet.data, name) is getattr(homes[name], name), name
    # Private, but used by callers of the single module.
    assert larq_irnet.data._load_arrays_uncached is sources._load_arrays_uncached
