r"""IR-Net's information measures of binary weights, computed in NumPy.

IR-Net argues that a binary network loses the least information when its binary weights
have maximal entropy (about half +1, half -1) and stay close to the real-valued weights
they stand for (a small quantization error); Libra-PB is built to achieve both. These
functions measure exactly that on a model's weights, so that training can be watched
through the paper's own lens (`larq_irnet.callbacks.InformationDiagnostics` logs them
every epoch; `larq-irnet report` plots them).

```python
from larq_irnet.information import binarized_kernels, quantization_error, sign_entropy

for kernel in binarized_kernels(model):
    w, w_std, binary = kernel.arrays()
    print(kernel.name, sign_entropy(binary, channel_axes=kernel.channel_axes),
          quantization_error(w_std, binary))
```

Which weights are binarized, and which kernel axes are their output channels, comes from
`larq_irnet.layers` (one rule for Libra-PB and for these measures).

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Sec. 3.1](https://arxiv.org/abs/1909.10788)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from larq_irnet.layers import binarized_weights, is_binary_quantizer
from larq_irnet.quantizers import LibraPB, libra_standardize

import numpy as np
import tensorflow as tf

__all__ = [
    "BinarizedKernel",
    "binarized_kernels",
    "binary_entropy",
    "flip_ratio",
    "is_binary_quantizer",
    "quantization_error",
    "sign_entropy",
    "standardized_kernel",
]


def binary_entropy(p: np.ndarray | float) -> np.ndarray:
    r"""Entropy in bits of a binary variable that is +1 with probability `p` (IR-Net, Sec. 3.1).

    \\[
    H(p) = -p \log_2 p - (1 - p) \log_2 (1 - p), \qquad 0 \log_2 0 = 0
    \\]

    1.0 means balanced (half +1, half -1), 0.0 means every weight has the same sign. The
    paper writes H with the natural log (maximum ln 2); bits make 1.0 the maximum.

    # Arguments
        p: the fraction of +1, in [0, 1]; any shape.

    # Returns
        H(p) elementwise, as float64.
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"binary_entropy: `p` must lie in [0, 1], got values in {p!r}.")
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log2(p), 0.0) - np.where(q > 0, q * np.log2(q), 0.0)
    return h


def _per_channel(values: np.ndarray, channel_axes: Sequence[int]) -> np.ndarray:
    """`values` as (entries per filter, filters): the filters along `channel_axes`."""
    channels = [a % values.ndim for a in channel_axes]
    reduced = [a for a in range(values.ndim) if a not in channels]
    moved = np.transpose(values, reduced + channels)
    return moved.reshape(-1, int(np.prod([values.shape[a] for a in channels])))


def sign_entropy(
    binary: np.ndarray, *, per_channel: bool = True, channel_axes: Sequence[int] = (-1,)
) -> float:
    r"""Entropy in bits of the signs of binary weights (IR-Net, Sec. 3.1).

    With p the fraction of +1 (entries > 0; Larq's sign maps 0 to +1, a binary
    quantizer never outputs 0): per output channel o (along `channel_axes`, by default
    the last kernel axis; `larq_irnet.layers.kernel_channel_axes` gives them per layer)
    \\(\frac{1}{C}\sum_o H(p_o)\\), or over the whole kernel \\(H(p)\\).

    Per channel is the default because Libra-PB balances each output channel: a layer
    whose filters are each all +1 or all -1 has whole-kernel entropy up to 1.0 but
    per-channel entropy 0.0, and every one of its filters carries no information.

    # Arguments
        binary: the quantizer's output, any scale (e.g. +-s_o for Libra-PB).
        per_channel: average over output channels (default) or treat the kernel as one.
        channel_axes: the axes that index output channels.
    """
    positive = np.asarray(binary) > 0
    if per_channel:
        p = _per_channel(positive, channel_axes).mean(axis=0)
        return float(binary_entropy(p).mean())
    return float(binary_entropy(positive.mean()))


def quantization_error(w_std: np.ndarray, binary: np.ndarray) -> float:
    r"""Mean squared quantization error of binary weights (IR-Net, Sec. 3.1).

    \\[
    \frac{1}{n} \left\lVert w_{std} - Q(w) \right\rVert_2^2
    \\]

    over the n weights of a kernel, with \\(w_{std}\\) the weights as the quantizer sees
    them before the sign (`standardized_kernel`) and \\(Q(w)\\) its output.
    """
    w_std = np.asarray(w_std, dtype=np.float64)
    binary = np.asarray(binary, dtype=np.float64)
    if w_std.shape != binary.shape:
        raise ValueError(
            "quantization_error: `w_std` and `binary` must have the same shape, got "
            f"{w_std.shape} and {binary.shape}."
        )
    return float(np.mean(np.square(w_std - binary)))


def flip_ratio(previous: np.ndarray, current: np.ndarray) -> float:
    """Fraction of binary weights whose sign differs between `previous` and `current`.

    Both are binary weights (or their signs, as booleans "is +1"); an entry counts as
    +1 when it is > 0 (or True).
    """
    previous, current = np.asarray(previous) > 0, np.asarray(current) > 0
    if previous.shape != current.shape:
        raise ValueError(
            "flip_ratio: `previous` and `current` must have the same shape, got "
            f"{previous.shape} and {current.shape}."
        )
    return float(np.mean(previous != current))


def standardized_kernel(
    quantizer: Any, kernel: np.ndarray, channel_axes: Sequence[int] | None = None
) -> np.ndarray:
    r"""The kernel as `quantizer` sees it right before its sign: \\(w_{std}\\).

    For `LibraPB` the balanced (and, unless `standardize=False`, standardized) kernel of
    `larq_irnet.quantizers.libra_standardize`, with the quantizer's own settings; for
    any other sign quantizer (`ste_sign`, `ede_sign`, ...) the kernel itself. Output
    channels along `channel_axes`, default the quantizer's own (else the last axis).
    """
    kernel = np.asarray(kernel)
    if isinstance(quantizer, LibraPB):
        w_std = libra_standardize(
            tf.constant(kernel),
            standardize=quantizer.standardize,
            epsilon=quantizer.epsilon,
            channel_axes=channel_axes or quantizer.channel_axes,
        )
        return w_std.numpy()
    return kernel


@dataclasses.dataclass
class BinarizedKernel:
    """One binarized weight of a model: its log name, layer, weight attribute, quantizer,
    and the kernel axes of its output channels (`larq_irnet.layers.kernel_channel_axes`).

    `quantize` and `value` read the current weight, so one `BinarizedKernel` serves a
    whole training run.
    """

    name: str
    layer: tf.keras.layers.Layer
    weight: str
    quantizer: tf.keras.layers.Layer
    channel_axes: tuple[int, ...] = (-1,)
    _clone: tf.keras.layers.Layer | None = dataclasses.field(default=None, repr=False)

    def value(self) -> np.ndarray:
        """The latent (real-valued) weight, as NumPy; under tf.distribute, replica 0's."""
        return np.asarray(getattr(self.layer, self.weight).numpy())

    def quantize(self, kernel: np.ndarray) -> np.ndarray:
        """Q(kernel) with this layer's quantizer, as NumPy."""
        if self._clone is None:
            # A metric-free twin (metrics are not part of the config): calling the layer's
            # own quantizer would also step Larq's flip-ratio metric, if enabled.
            self._clone = type(self.quantizer).from_config(self.quantizer.get_config())
            if isinstance(self._clone, LibraPB):
                self._clone.channel_axes = self.channel_axes
        # `call`, not `__call__`: the forward pass of a sign quantizer needs no state, and
        # building the twin would create variables (EDE's t and k), which under
        # MultiWorkerMirroredStrategy is a collective operation.
        return np.asarray(self._clone.call(tf.constant(kernel)).numpy())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current latent weight w, its `standardized_kernel` w_std and Q(w)."""
        w = self.value()
        return w, standardized_kernel(self.quantizer, w, self.channel_axes), self.quantize(w)


def binarized_kernels(model: tf.Module) -> list[BinarizedKernel]:
    """Every binarized weight of `model`, nested layers and models included, in layer order.

    Found by `larq_irnet.layers.binarized_weights` (every Larq layer kind, nested models,
    in layer order; its errors for layer kinds without filter axes). Each is named
    after its layer (`"<layer>/<weight>"` for layers with several such weights; a suffix
    `_<i>` keeps names unique across nested models).
    """
    weights = binarized_weights(model)
    per_layer: dict[int, int] = {}
    for found_weight in weights:
        per_layer[id(found_weight.layer)] = per_layer.get(id(found_weight.layer), 0) + 1
    found = []
    for w in weights:
        name = w.layer.name if per_layer[id(w.layer)] == 1 else f"{w.layer.name}/{w.weight}"
        found.append(BinarizedKernel(name, w.layer, w.weight, w.quantizer, w.channel_axes))
    names: dict[str, int] = {}
    for kernel in found:
        count = names.get(kernel.name, 0)
        names[kernel.name] = count + 1
        if count:
            kernel.name = f"{kernel.name}_{count}"
    return found
