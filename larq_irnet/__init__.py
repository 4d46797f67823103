"""larq-irnet: IR-Net binary neural networks for Larq, deployable with LCE.

Importing this package registers the quantizers `"libra_pb"`, `"ede_sign"` and DIR-Net's
`"imb"`, `"imb_sign"` and `"dte_sign"` (our design, following the DIR-Net paper's
description), so that they can be named in any Larq layer:

```python
import larq as lq
import larq_irnet

layer = lq.layers.QuantConv2D(
    64, 3, kernel_quantizer="libra_pb", input_quantizer="ede_sign", use_bias=False
)
```
"""

from larq_irnet._keras import select_legacy_keras

select_legacy_keras()

from larq_irnet import (  # noqa: E402
    callbacks,
    distillation,
    estimators,
    layers,
    quantizers,
    schedules,
    transform,
)
from larq_irnet.callbacks import (  # noqa: E402
    DTECallback,
    EDECallback,
    EstimatorScheduler,
    InformationDiagnostics,
    set_ede,
)
from larq_irnet.quantizers import IMB, DTESign, EDESign, IMBSign, LibraPB  # noqa: E402
from larq_irnet.transform import IRNetifyReport, irnetify  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "IMB",
    "DTECallback",
    "DTESign",
    "EDECallback",
    "EDESign",
    "IMBSign",
    "EstimatorScheduler",
    "IRNetifyReport",
    "InformationDiagnostics",
    "LibraPB",
    "callbacks",
    "distillation",
    "estimators",
    "irnetify",
    "layers",
    "quantizers",
    "schedules",
    "set_ede",
    "transform",
]
