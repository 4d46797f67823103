"""IR-Net's binary ResNets: ResNet-20 (CIFAR), ResNet-18 (CIFAR or ImageNet), ResNet-34.

One builder serves every depth; the depths and the authors' per-network choices (stem,
shortcut, initialization, where a nonlinearity sits) are data below. The blocks come
from `larq_irnet.zoo.blocks`, the quantizers from the presets of
`larq_irnet.zoo.presets`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from larq_irnet.zoo import blocks, common

import tensorflow as tf

__all__ = ["IRNetResNet18", "IRNetResNet20", "IRNetResNet34"]

_STEMS = ("auto", "cifar", "imagenet")
# Smallest input side for which `stem="auto"` picks the ImageNet stem (half of 224).
_IMAGENET_STEM_MIN_SIDE = 112


@dataclasses.dataclass(frozen=True)
class _Depth:
    blocks: tuple[int, ...]
    filters: tuple[int, ...]


_DEPTHS = {
    20: _Depth(blocks=(3, 3, 3), filters=(16, 32, 64)),
    18: _Depth(blocks=(2, 2, 2, 2), filters=(64, 128, 256, 512)),
    34: _Depth(blocks=(3, 4, 6, 3), filters=(64, 128, 256, 512)),
}


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """The authors' choices for one network family (htqin/IR-Net)."""

    stem: str  # "cifar": 3x3 conv with `filters[0]` channels; "imagenet": 7x7/2 + maxpool
    shortcut: str  # "option_a" or "conv" (see `blocks.basic_block`)
    structure_1w1a: str  # block structure of the 1w1a model; 1w32a models use "normal"
    conv_init_mode: str  # Kaiming-normal fan mode of the convolutions
    dense_init: str  # "kaiming" (Kaiming normal, fan-in) or "torch" (nn.Linear's default)
    stem_activation: tuple[str, ...]  # the `bits` values whose stem ends in the nonlinearity
    head_activation: tuple[str, ...]  # the `bits` values with a nonlinearity before the FC


_RECIPES = {
    # CIFAR-10/ResNet20/{1w1a,1w32a}/resnet.py: kaiming_normal_ on convs and the linear
    # layer; the 1w32a network has no nonlinearity after the stem but a ReLU after the
    # classifier's BatchNorm.
    "resnet20": _Recipe("cifar", "option_a", "bireal", "fan_in", "kaiming", ("1w1a",), ("1w32a",)),
    # CIFAR-10/ResNet18/resnet.py: no nonlinearity after the stem; PyTorch's default init
    # there, Kaiming normal here (as for ResNet-20).
    "resnet18_cifar": _Recipe("cifar", "conv", "normal", "fan_in", "torch", (), ()),
    # ImageNet/ResNet{18,34}/1w1a/models/resnet.py: normal(0, sqrt(2 / (k*k*out))).
    "imagenet": _Recipe("imagenet", "conv", "bireal", "fan_out", "torch", ("1w1a", "1w32a"), ()),
}


def _dense_initializer(kind: str) -> blocks.InitializerId:
    if kind == "kaiming":
        return blocks.kaiming_normal("fan_in")
    # torch.nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) = variance 1/(3 fan_in).
    config = {"scale": 1 / 3, "mode": "fan_in", "distribution": "uniform"}
    return {"class_name": "VarianceScaling", "config": config}


@dataclasses.dataclass(frozen=True)
class _ResNet:
    """One public ResNet: its names, depth and the authors' recipe for it."""

    model: str  # the public function's name, as in the weights registry
    name: str  # the Keras model's name
    depth: _Depth
    recipe: _Recipe


_RESNET20 = _ResNet("IRNetResNet20", "irnet_resnet20", _DEPTHS[20], _RECIPES["resnet20"])
_RESNET18_CIFAR = _ResNet(
    "IRNetResNet18", "irnet_resnet18", _DEPTHS[18], _RECIPES["resnet18_cifar"]
)
_RESNET18_IMAGENET = _ResNet("IRNetResNet18", "irnet_resnet18", _DEPTHS[18], _RECIPES["imagenet"])
_RESNET34 = _ResNet("IRNetResNet34", "irnet_resnet34", _DEPTHS[34], _RECIPES["imagenet"])


def _resnet(
    spec: _ResNet,
    arguments: common.ModelArguments,
    *,
    structure: str | None,
    extra_arguments: Mapping[str, Any] = MappingProxyType({}),
    derived: Collection[str] = (),
) -> common.Architecture:
    """The `common.Architecture` of `spec` built with `arguments` (input shape resolved).

    `derived`: the family's arguments the caller left unset (`structure=None` adds
    `structure`), see `common.Architecture`.
    """
    recipe = spec.recipe
    bits = arguments.bits
    settings = arguments.settings()
    derived = {*derived, "structure"} if structure is None else set(derived)
    structure = structure or (recipe.structure_1w1a if bits == "1w1a" else "normal")
    if structure not in blocks.STRUCTURES:
        raise ValueError(
            f"`structure` must be one of {blocks.STRUCTURES} (or None: the authors' choice), "
            f"got structure={structure!r}."
        )
    depth = spec.depth
    init = blocks.kaiming_normal(recipe.conv_init_mode)
    stem_act = settings.activation if bits in recipe.stem_activation else None
    head_act = settings.activation if bits in recipe.head_activation else None

    def block(x: tf.Tensor, filters: int, strides: int) -> tf.Tensor:
        return blocks.basic_block(
            x,
            filters,
            strides,
            structure=structure,
            shortcut=recipe.shortcut,
            settings=settings,
            initializer=init,
        )

    def body(x: tf.Tensor) -> tf.Tensor:
        if recipe.stem == "imagenet":
            x = blocks.imagenet_stem(x, stem_act, init, filters=depth.filters[0])
        else:
            x = blocks.cifar_stem(x, depth.filters[0], stem_act, init)
        return blocks.resnet_stages(x, filters=depth.filters, blocks=depth.blocks, block=block)

    def top(x: tf.Tensor, classes: int) -> tf.Tensor:
        return blocks.classifier(
            x,
            classes,
            pooled_batch_norm=True,
            activation=head_act,
            initializer=_dense_initializer(recipe.dense_init),
        )

    return common.Architecture(
        model=spec.model,
        name=spec.name,
        num_classes=arguments.num_classes,
        body=body,
        top=top,
        arguments={"structure": structure, **extra_arguments},
        derived=frozenset(derived),
    )


@common.document_arguments(
    weights=(
        "None (random), the path of a weights file, or a name of "
        "`larq_irnet.zoo.registry.WEIGHTS`, whose variant for `binarization` is loaded: "
        '`"fashion_mnist"` (with `input_shape=(28, 28, 1), num_classes=10` and the default '
        '`binarization="irnet"`) is IR-Net trained on Fashion-MNIST, 90.02% top-1 on its '
        'full test set (90.02% through LCE); with `binarization="fp"` it is the '
        'full-precision twin, 91.66% (RBD\'s teacher); with `binarization="dirnet"` it is '
        "DIR-Net distilled from that twin with RBD, 90.05% (90.05% through LCE)."
    )
)
def IRNetResNet20(
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 10,
    weights: str | os.PathLike | None = None,
    structure: str | None = None,
    bits: str = "1w1a",
    binarization: str = "irnet",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """IR-Net's CIFAR ResNet-20 (16-32-64 channels, 3 basic blocks per stage).

    As in the authors' code: full-precision 3x3 stem (16 channels) with BatchNorm,
    18 binarizable 3x3 convolutions each followed by BatchNorm, parameter-free
    "option A" downsampling shortcuts (stride-2 subsampling plus zero channels), global
    average pooling, BatchNorm, full-precision Dense. Kaiming-normal initialization.

    - `bits="1w1a"`: Hardtanh everywhere (stem included); default `structure="bireal"`,
      a shortcut around every binary convolution (the paper's 86.5 % row).
    - `bits="1w32a"`: activations stay float, ReLU, default `structure="normal"`;
      like the authors' 1w32a network, no nonlinearity after the stem and a ReLU after
      the classifier's BatchNorm.

    The 1w1a `"irnet"` model has 269,850 trainable parameters, the authors' count.
    The input is raw pixels (0..255), rescaled to [-1, 1] inside the model.

    ```python
    from larq_irnet.zoo import IRNetResNet20

    model = IRNetResNet20()  # IR-Net, Bi-Real structure, CIFAR-10
    ablation = IRNetResNet20(binarization="libra_pb", structure="normal")
    ```

    {arguments}

    # Returns
        A `tf.keras.Model`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
        - [Deep Residual Learning for Image Recognition (He et al., CVPR 2016)](
          https://arxiv.org/abs/1512.03385)
    """
    arguments = common.ModelArguments(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        bits=bits,
        binarization=binarization,
        pad_values=pad_values,
    )

    def architecture(resolved: common.ModelArguments) -> common.Architecture:
        return _resnet(_RESNET20, resolved, structure=structure)

    return common.build_model(arguments, default_input_shape=(32, 32, 3), architecture=architecture)


def _auto_stem(shape: common.ImageShape) -> str:
    sides = [side for side in shape[:2] if side is not None]
    if sides and min(sides) < _IMAGENET_STEM_MIN_SIDE:
        return "cifar"
    return "imagenet"


@common.document_arguments(
    input_shape=(
        "(height, width, channels); default by stem (see above), or the shape the "
        "registered `weights` were trained at."
    ),
    num_classes=("number of classes; default 10 with the CIFAR stem, 1000 with the ImageNet stem."),
    stem='`"auto"`, `"cifar"` or `"imagenet"`.',
)
def IRNetResNet18(
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    structure: str | None = None,
    bits: str = "1w1a",
    binarization: str = "irnet",
    pad_values: float = 1.0,
    stem: str = "auto",
) -> tf.keras.Model:
    """IR-Net's ResNet-18, with the CIFAR or the ImageNet stem.

    16 binarizable 3x3 convolutions in 8 basic blocks (64-128-256-512 channels), each
    followed by BatchNorm; full-precision 1x1 stride-2 downsampling convolutions with
    BatchNorm; global average pooling, BatchNorm, full-precision Dense.

    - `stem="imagenet"`: 7x7 stride-2 convolution, BatchNorm, nonlinearity, 3x3
      stride-2 max pooling; default `structure="bireal"` for 1w1a (the authors' ImageNet
      code, after Bi-Real Net). Default input (224, 224, 3), 1000 classes; 11,690,536
      trainable parameters.
    - `stem="cifar"`: 3x3 convolution and BatchNorm (no nonlinearity, as the authors'
      CIFAR code), `structure="normal"`. Default input (32, 32, 3), 10 classes;
      11,174,986 trainable parameters, the authors' count.
    - `stem="auto"`: the ImageNet stem when both sides of the input are at least 112
      pixels (or unknown), else the CIFAR stem.

    The authors' ImageNet model declares a `BatchNorm1d(num_classes)` (`bn3`) that its
    forward pass never calls: their parameter count (11,692,536 for 1000 classes)
    includes its 2,000 parameters, this model does not build it.

    Nonlinearity: Hardtanh for `bits="1w1a"`, ReLU (and `structure="normal"`) for
    `"1w32a"`. The input is raw pixels (0..255), rescaled to [-1, 1] inside the model.

    {arguments}

    # Returns
        A `tf.keras.Model`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
        - [Bi-Real Net (Liu et al., ECCV 2018)](https://arxiv.org/abs/1808.00278)
    """
    if stem not in _STEMS:
        raise ValueError(f"`stem` must be one of {_STEMS}, got stem={stem!r}.")
    arguments = common.ModelArguments(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        bits=bits,
        binarization=binarization,
        pad_values=pad_values,
    )

    def architecture(resolved: common.ModelArguments) -> common.Architecture:
        chosen = _auto_stem(resolved.input_shape) if stem == "auto" else stem
        spec = _RESNET18_CIFAR if chosen == "cifar" else _RESNET18_IMAGENET
        derived = {"stem"} if stem == "auto" else set()
        if num_classes is None:
            resolved = dataclasses.replace(resolved, num_classes=10 if chosen == "cifar" else 1000)
            derived.add("num_classes")
        return _resnet(
            spec, resolved, structure=structure, extra_arguments={"stem": chosen}, derived=derived
        )

    default = (32, 32, 3) if stem == "cifar" else (224, 224, 3)
    return common.build_model(arguments, default_input_shape=default, architecture=architecture)


@common.document_arguments(
    input_shape=(
        "(height, width, channels); default (224, 224, 3), or the shape the registered "
        "`weights` were trained at."
    ),
    structure=(
        '`"bireal"` or `"normal"`; default `"bireal"` for 1w1a, `"normal"` for 1w32a (as '
        "the authors)."
    ),
)
def IRNetResNet34(
    *,
    input_shape: Sequence[int | None] | None = None,
    input_tensor: tf.Tensor | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    weights: str | os.PathLike | None = None,
    structure: str | None = None,
    bits: str = "1w1a",
    binarization: str = "irnet",
    pad_values: float = 1.0,
) -> tf.keras.Model:
    """IR-Net's ImageNet ResNet-34.

    The ImageNet ResNet-18 of `IRNetResNet18(stem="imagenet")` with 3-4-6-3 basic
    blocks: 32 binarizable 3x3 convolutions; full-precision stem, downsampling 1x1
    convolutions and classifier; Bi-Real structure for 1w1a. 21,798,696 trainable
    parameters for 1000 classes (the authors count 21,800,696, which includes their
    unused `bn3`; see `IRNetResNet18`).

    {arguments}

    # Returns
        A `tf.keras.Model`.

    # References
        - [Forward and Backward Information Retention for Accurate Binary Neural
          Networks (Qin et al., CVPR 2020)](https://arxiv.org/abs/1909.10788)
        - [Bi-Real Net (Liu et al., ECCV 2018)](https://arxiv.org/abs/1808.00278)
    """
    arguments = common.ModelArguments(
        input_shape=input_shape,
        input_tensor=input_tensor,
        include_top=include_top,
        num_classes=num_classes,
        weights=weights,
        bits=bits,
        binarization=binarization,
        pad_values=pad_values,
    )

    def architecture(resolved: common.ModelArguments) -> common.Architecture:
        return _resnet(_RESNET34, resolved, structure=structure)

    return common.build_model(
        arguments, default_input_shape=(224, 224, 3), architecture=architecture
    )
