"""Binarization presets: the rows of IR-Net's ablation table, as data.

A preset names the quantizers a binary convolution uses; it holds no model code. Every
model in `larq_irnet.zoo` takes `binarization=` (a key of `PRESETS`) and `bits=` (a key of
`BITS`) and hands them to `conv_settings`, which resolves what each binary convolution
gets: its kernel quantizer, its input quantizer, its padding value and the activation
function that feeds it.

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

__all__ = ["BINARIZATIONS", "BITS", "PRESETS", "Binarization", "ConvSettings", "conv_settings"]

QuantizerId = str | Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Binarization:
    """Which quantizers a binary convolution uses (one row of the ablation table).

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


def _libra_pb(**config: Any) -> dict[str, Any]:
    return {"class_name": "LibraPB", "config": config}


def _imb(**config: Any) -> dict[str, Any]:
    return {"class_name": "IMB", "config": config}


# Quantizers that binarize a standardized kernel (`ConvSettings.standardized_kernels`).
_STANDARDIZING = ("LibraPB", "IMB")


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

BITS: Mapping[str, str] = {
    "1w1a": "binary weights and binary activations (Hardtanh before every binary conv)",
    "1w32a": "binary weights, full-precision activations (ReLU, as the authors' 1w32a code)",
}
"""The accepted values of `bits=`."""


@dataclasses.dataclass(frozen=True)
class ConvSettings:
    """What every binarizable convolution of one model gets.

    # Arguments
        kernel_quantizer: Larq identifier for `QuantConv2D(kernel_quantizer=...)`.
        input_quantizer: Larq identifier for `QuantConv2D(input_quantizer=...)`.
        kernel_constraint: Keras identifier for `QuantConv2D(kernel_constraint=...)`.
        pad_values: `QuantConv2D(pad_values=...)`; nonzero only where the input is binary.
        activation: `"hardtanh"` or `"relu"`, the nonlinearity of the residual blocks.
        bits: the `bits=` value this was resolved from.
        binarization: the `binarization=` value this was resolved from.
    """

    kernel_quantizer: QuantizerId
    input_quantizer: QuantizerId
    kernel_constraint: str | None
    pad_values: float
    activation: str
    bits: str
    binarization: str

    @property
    def standardized_kernels(self) -> bool:
        """Whether the kernel quantizer is Libra-PB with standardization, or IMB.

        Such kernels cannot starve: the quantizer binarizes the standardized kernel, whose
        values do not grow with |w|, and every weight also gets gradient through its
        filter's mean and std, so they need no `weight_clip` (the authors' code clips
        none), and Larq's "starved weights" warning does not apply to them.
        """
        quantizer = self.kernel_quantizer
        return (
            isinstance(quantizer, Mapping)
            and quantizer.get("class_name") in _STANDARDIZING
            and quantizer.get("config", {}).get("standardize", True)
        )

    @property
    def binary_inputs(self) -> bool:
        """Whether the convolutions' inputs are binarized (the conv can be an LceBconv2d)."""
        return self.input_quantizer is not None


def conv_settings(*, binarization: str, bits: str, pad_values: float) -> ConvSettings:
    """Resolve `binarization=`, `bits=` and `pad_values=` into `ConvSettings`.

    `bits="1w32a"` drops the input quantizer and switches the blocks to ReLU; padding
    with `pad_values` only applies to convolutions whose input is binarized (padding a
    float input with ones would change the function, and LCE only needs it for binary
    convolutions), elsewhere padding is zero.

    # Arguments
        binarization: one of `BINARIZATIONS`.
        bits: one of `BITS`.
        pad_values: the padding value of binary convolutions, 1.0 (LCE's fast path) or
            0.0 (the authors' code).

    # Raises
        ValueError: for an unknown `binarization` or `bits`, or `pad_values` not 0 or 1.
    """
    if binarization not in PRESETS:
        raise ValueError(
            f"`binarization` must be one of {BINARIZATIONS}, got binarization={binarization!r}."
        )
    if bits not in BITS:
        raise ValueError(f"`bits` must be one of {tuple(BITS)}, got bits={bits!r}.")
    if pad_values not in (0.0, 1.0):
        raise ValueError(
            "`pad_values` must be 1.0 (what LCE runs fastest) or 0.0 (the authors' code), "
            f"got pad_values={pad_values!r}."
        )
    preset = PRESETS[binarization]
    input_quantizer = preset.input_quantizer if bits == "1w1a" else None
    return ConvSettings(
        kernel_quantizer=preset.kernel_quantizer,
        input_quantizer=input_quantizer,
        kernel_constraint=preset.kernel_constraint,
        pad_values=float(pad_values) if input_quantizer is not None else 0.0,
        activation="hardtanh" if bits == "1w1a" else "relu",
        bits=bits,
        binarization=binarization,
    )
