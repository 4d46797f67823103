"""The zoo's binary convolutions: `binarization=` and `bits=` resolved into settings.

Every model in `larq_irnet.zoo` takes `binarization=` (a key of
`larq_irnet.methods.PRESETS`, the one table of methods, re-exported by the zoo) and
`bits=` (a key of `BITS`) and hands them to `conv_settings`, which resolves what each
binary convolution gets: its kernel quantizer, its input quantizer, its padding value
and the activation function that feeds it.

Quantizers are stored as Keras/Larq identifiers (an alias string or a
`{"class_name", "config"}` dict), so each layer deserializes its own fresh, stateful
quantizer (EDE's t and k are per-layer variables) and a saved model's config shows
exactly what was used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from larq_irnet.methods import BINARIZATIONS, PRESETS, QuantizerId, standardizes

__all__ = ["BITS", "ConvSettings", "conv_settings"]

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
        """Whether the kernel quantizer standardizes each filter
        (`larq_irnet.methods.standardizes`): no `weight_clip`, no starved weights."""
        return standardizes(self.kernel_quantizer)

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
