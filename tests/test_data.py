"""larq_irnet.training.data (the package): it re-exports every public name of its three modules."""

import larq_irnet.training.data
from larq_irnet.training.data import augmentation, pipelines, sources

import pytest


@pytest.mark.parametrize("module", [sources, augmentation, pipelines])
def test_the_package_re_exports_each_module_public_name(module):
    for name in module.__all__:
        assert getattr(larq_irnet.training.data, name) is getattr(module, name), name
        assert name in larq_irnet.training.data.__all__
