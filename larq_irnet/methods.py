"""The binarization methods as data: the one table of which quantizers a binary layer uses.

A row names the quantizers of a binary layer's weights and inputs; it holds no model or
formula code (the quantizers, in `quantizers.py`, do). The rows are IR-Net's ablation
table and DIR-Net's 2x2 design; the one table serves every caller: the zoo's
`binarization=` (`larq_irnet.zoo.presets.conv_settings`) and `irnetify`'s `method=`
(`transform.METHODS`, the rows `"irnet"` and `"dirnet"`).

Quantizers are stored as Keras/Larq identifiers (an alias string or a
`{"class_name", "config"}` dict), so each layer deserializes its own fresh, stateful
quantizer (EDE's t and k are per-layer variables) and a saved model's config shows
exactly what was used.

| binarization | weights | activations (1w1a) | paper's ablation row |
|---|---|---|---|
| `"fp"` | float | float | full precision |
| `"bnn"` | `ste_sign` (+ `weight_clip`) | `ste_sign` | plain binary (sign + STE) |
| `"libra_pb_no_std"` | `LibraPB(standardize=False, gradient="ste")` | `ste_sign` | w/o std |
| `"libra_pb_no_scale"` | `LibraPB(bit_shift=False, gradient="ste")` | `ste_sign` | w/o scale |
| `"libra_pb"` | `LibraPB(gradient="ste")` | `ste_sign` | Libra-PB |
| `"ede"` | `EDESign` | `EDESign` | EDE |
| `"irnet"` | `LibraPB` (EDE gradient) | `EDESign` | IR-Net = Libra-PB + EDE |
| `"imb"` | `IMB(gradient="ede")` | `EDESign` | IR-Net with IMB's weights |
| `"dte"` | `LibraPB(gradient="dte")` | `DTESign` | IR-Net with DTE's gradient |
| `"dirnet"` | `IMB` (DTE gradient) | `DTESign` | DIR-Net = IMB + DTE |
| `"dirnet_act"` | `IMB` (DTE gradient) | `IMBSign` (DTE gradient) | + IMB's activations |

("w/o std": Libra-PB without weight standardization; "w/o scale": Libra-PB without
the bit-shift scale.) The ablation rows before "EDE" isolate Libra-PB's forward pass,
so they keep Larq's straight-through estimator for both weights and activations; the
EDE rows use EDE for both, as the authors' `IRConv2d` does.

The DIR-Net rows (our design, following the DIR-Net paper's description; Qin et al.,
IJCV 2023, arXiv 2109.12338) are a 2x2 design around `"irnet"`, each changing one thing:
`"imb"` only the weights' forward pass (IMB's mean-magnitude scale instead of the
power of two; EDE kept), `"dte"` only the estimator (DTE instead of EDE, on weights and
activations), `"dirnet"` both, and `"dirnet_act"` adds IMB's balanced activation
threshold to `"dirnet"`. Training drives EDE quantizers with `EDECallback` and DTE
quantizers with `DTECallback`.

# References
    - [Forward and Backward Information Retention for Accurate Binary Neural Networks
      (Qin et al., CVPR 2020), Table 2](https://arxiv.org/abs/1909.10788)
    - [Distribution-Sensitive Information Retention for Accurate Binary Neural Network
      (Qin et al., IJCV 2023)](https://arxiv.org/abs/2109.12338)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["BINARIZATIONS", "PRESETS", "Binarization", "QuantizerId", "standardizes"]

QuantizerId = str | Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Binarization:
    """Which quantizers a binary layer uses (one row of the table).

    # Arguments
        kernel_quantizer: Larq identifier of the weight quantizer, or None (float).
        input_quantizer: Larq identifier of the activation quantizer used by 1w1a
            models, or None (float).
        kernel_constraint: Keras identifier of the kernel constraint, or None.
        description: the paper's name for the row.
    """

    kernel_quantizer: QuantizerId
    input_quantizer: QuantizerId
    kernel_constraint: str | None = None
    description: str = ""

    @property
    def standardized_kernels(self) -> bool:
        """Whether the kernel quantizer standardizes each filter (`standardizes`)."""
        return standardizes(self.kernel_quantizer)


def _libra_pb(**config: Any) -> dict[str, Any]:
    return {"class_name": "LibraPB", "config": config}


def _imb(**config: Any) -> dict[str, Any]:
    return {"class_name": "IMB", "config": config}


# Quantizers that binarize a standardized kernel (`standardizes`).
_STANDARDIZING = ("LibraPB", "IMB")


def standardizes(kernel_quantizer: QuantizerId) -> bool:
    """Whether a kernel quantizer binarizes the standardized kernel: Libra-PB with
    standardization, or IMB.

    Such kernels cannot starve: the quantizer binarizes the standardized kernel, whose
    values do not grow with |w|, and every weight also gets gradient through its
    filter's mean and std, so they need no `weight_clip` (the authors' code clips
    none), and Larq's "starved weights" warning does not apply to them.
    """
    return (
        isinstance(kernel_quantizer, Mapping)
        and kernel_quantizer.get("class_name") in _STANDARDIZING
        and kernel_quantizer.get("config", {}).get("standardize", True)
    )


PRESETS: Mapping[str, Binarization] = {
    "fp": Binarization(None, None, description="full precision"),
    # The STE's |x| <= 1 mask starves weights that leave [-1, 1]; Larq clips them.
    "bnn": Binarization("ste_sign", "ste_sign", "weight_clip", "plain binary (sign, STE)"),
    "libra_pb_no_std": Binarization(
        _libra_pb(gradient="ste", standardize=False),
        "ste_sign",
        description="Libra-PB without weight standardization",
    ),
    "libra_pb_no_scale": Binarization(
        _libra_pb(gradient="ste", bit_shift=False),
        "ste_sign",
        description="Libra-PB without bit-shift scales",
    ),
    "libra_pb": Binarization(_libra_pb(gradient="ste"), "ste_sign", description="Libra-PB"),
    "ede": Binarization("ede_sign", "ede_sign", description="EDE"),
    "irnet": Binarization(_libra_pb(), "ede_sign", description="IR-Net (Libra-PB + EDE)"),
    "imb": Binarization(_imb(gradient="ede"), "ede_sign", description="IR-Net with IMB weights"),
    "dte": Binarization(
        _libra_pb(gradient="dte"), "dte_sign", description="IR-Net with DTE (Libra-PB + DTE)"
    ),
    "dirnet": Binarization(_imb(), "dte_sign", description="DIR-Net (IMB + DTE)"),
    "dirnet_act": Binarization(
        _imb(), "imb_sign", description="DIR-Net with IMB activations (IMB + DTE + imb_sign)"
    ),
}

BINARIZATIONS: tuple[str, ...] = tuple(PRESETS)
"""The accepted values of `binarization=`, in the order of the paper's ablation table."""
