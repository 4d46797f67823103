"""Deployment through Larq Compute Engine (`larq_irnet.converters`).

```python
import larq_irnet
from larq_irnet.converters import convert

result = convert(model, strict=True)
print(result.report)  # what each binarized layer became, MACs, operators, size
result.save("model.tflite")
```

Command line: `larq-irnet convert`, `larq-irnet evaluate`, `larq-irnet benchmark`
(see `docs/deploy.md`). Models load from a path with
`larq_irnet.zoo.loading.load_model`.
"""

from larq_irnet.converters.lce import ConversionError, ConversionResult, convert
from larq_irnet.converters.report import ConversionReport, LayerConversion

__all__ = [
    "ConversionError",
    "ConversionReport",
    "ConversionResult",
    "LayerConversion",
    "convert",
]
