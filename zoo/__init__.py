"""The IR-Net model zoo (`larq_irnet.zoo`): the paper's networks in larq-zoo style.

```python
from larq_irnet.zoo import IRNetResNet20, IRNetResNet18, IRNetResNet34, IRNetVGGSmall

model = IRNetResNet20()  # CIFAR-10, 1w1a, Libra-PB + EDE, Bi-Real structure
ablation = [IRNetResNet20(binarization=name) for name in BINARIZATIONS]
```

Every model function is keyword-only, with `input_shape`, `input_tensor`,
`include_top`, `num_classes`, `weights` (None, a file path, or a name of
`registry.WEIGHTS`), `bits` (`"1w1a"`/`"1w32a"`), `binarization` (a row of the paper's
ablation table, `larq_irnet.methods.PRESETS`) and `pad_values`. Models take raw pixels
(0..255) and rescale them to [-1, 1] themselves, and end with a softmax. The one text of
these arguments is `common.ARGUMENTS`.

The zoo depends on the core only. It names the core's quantizers by their registered
names (`"ede_sign"`, `"LibraPB"`), so it imports `larq_irnet.quantizers`, which
registers them; and it selects Keras 2 with the core's `larq_irnet._keras` before
TensorFlow or Larq load (Larq needs Keras 2).
"""

from larq_irnet._keras import select_legacy_keras

select_legacy_keras()

from larq_irnet import quantizers  # noqa: E402, F401  (registers the quantizers presets name)
from larq_irnet.methods import BINARIZATIONS, PRESETS, Binarization  # noqa: E402
from larq_irnet.zoo import blocks, presets, registry  # noqa: E402
from larq_irnet.zoo.presets import BITS  # noqa: E402
from larq_irnet.zoo.resnet import IRNetResNet18, IRNetResNet20, IRNetResNet34  # noqa: E402
from larq_irnet.zoo.vgg import IRNetVGGSmall  # noqa: E402

__all__ = [
    "BINARIZATIONS",
    "BITS",
    "PRESETS",
    "Binarization",
    "IRNetResNet18",
    "IRNetResNet20",
    "IRNetResNet34",
    "IRNetVGGSmall",
    "blocks",
    "presets",
    "registry",
]
