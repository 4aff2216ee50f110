"""BatchNormalization folded into the neighbouring linear layer, in float64, cast once to float32.

Keras' inference BN is ``y = s * x + t`` per channel with ``s = gamma / sqrt(variance + epsilon)`` and
``t = beta - mean * s``. :func:`converters.arch.fold_plan` says which BN layers fold exactly:

- into the **previous** linear layer (BN right after it): ``W' = W * s`` per output, ``b' = b * s + t``;
- into the **next** one (BN after a ReLU or pool; only dropout/flatten in between; the next layer dense
  or an unpadded convolution, so no zero padding meets the shift): ``W' = W * s`` per *input* channel,
  ``b' = b + sum(W * t)`` over every input of each output.

For a dense layer after a flatten, input row ``r`` of an ``hwc`` flatten belongs to channel ``r % C``
(``chw``: ``r // (H * W)``). For a grouped convolution, kernel input index ``i`` of output group ``g``
is channel ``g * C_in/G + i``. Everything is computed in float64 and rounded to float32 once, so the
folded weights are within one float32 rounding of the exact fold; ``verify`` recomputes the fold
independently and compares with that tolerance.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from converters.arch import Conv, Dense, flatten_input, fold_plan, folded
from converters.weights import AlexNetWeights, Layer, Norm


def scale_shift(norm: Norm, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(s, t)`` of an inference BatchNormalization, in float64."""
    scale = norm.gamma.astype(np.float64) / np.sqrt(norm.variance.astype(np.float64) + epsilon)
    return scale, norm.beta.astype(np.float64) - norm.mean.astype(np.float64) * scale


def input_channel_map(weights: AlexNetWeights, name: str) -> np.ndarray:
    """For each kernel input index of layer ``name``, the feature-map channel it reads.

    Convolutions: ``(C_in/G, G)`` (column g: output group g). Dense layers: ``(in,)``.
    """
    arch = weights.arch
    layer = weights[name]
    spec = next(lay for lay in arch.layers if getattr(lay, "name", None) == name)
    if isinstance(spec, Conv):
        per_group = layer.kernel.shape[2]
        return np.asarray(np.arange(per_group)[:, None] + per_group * np.arange(spec.groups)[None, :])
    rows = layer.kernel.shape[0]
    names = [getattr(lay, "name", None) for lay in arch.layers]
    after_flatten = names.index(name) > next(i for i, lay in enumerate(arch.layers) if lay.type == "flatten")
    first = next(lay.name for lay in arch.param_layers if isinstance(lay, Dense)) == name
    if after_flatten and first:
        (h, w, c), order = flatten_input(arch, weights.widths)
        return np.arange(rows) % c if order == "hwc" else np.arange(rows) // (h * w)
    return np.arange(rows)


def _fold_next(weights: AlexNetWeights, name: str, scale: np.ndarray, shift: np.ndarray) -> Layer:
    layer = weights[name]
    kernel, bias = layer.kernel.astype(np.float64), layer.bias.astype(np.float64)
    channels = input_channel_map(weights, name)
    if kernel.ndim == 4:
        groups = channels.shape[1]
        out_per_group = kernel.shape[3] // groups
        per_out = channels[:, np.repeat(np.arange(groups), out_per_group)]  # (C_in/G, C_out)
        new_kernel = kernel * scale[per_out][None, None]
        new_bias = bias + np.einsum("hwio,io->o", kernel, shift[per_out])
    else:
        new_kernel = kernel * scale[channels][:, None]
        new_bias = bias + shift[channels] @ kernel
    return Layer(_frozen32(new_kernel), _frozen32(new_bias))


def _fold_previous(weights: AlexNetWeights, name: str, scale: np.ndarray, shift: np.ndarray) -> Layer:
    layer = weights[name]
    new_kernel = layer.kernel.astype(np.float64) * scale
    return Layer(_frozen32(new_kernel), _frozen32(layer.bias.astype(np.float64) * scale + shift))


def _frozen32(array: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=np.float32)
    out.flags.writeable = False
    return out


def fold_batchnorm(weights: AlexNetWeights) -> AlexNetWeights:
    """The weight set with every foldable BatchNormalization folded (``weights`` itself when none is).

    The result's architecture is :func:`converters.arch.folded` of the input's; BN layers that cannot
    fold exactly stay, with their statistics. The input is not modified.
    """
    plan = fold_plan(weights.arch)
    if not plan:
        return weights
    layers = dict(weights.layers)
    epsilons = {lay.name: lay.epsilon for lay in weights.arch.layers if lay.type == "batchnorm"}  # type: ignore[union-attr]
    current = weights
    for bn, into, where in plan:
        scale, shift = scale_shift(weights.norms[bn], epsilons[bn])
        fold = _fold_next if where == "next" else _fold_previous
        layers[into] = fold(current, into, scale, shift)
        current = AlexNetWeights(MappingProxyType(dict(layers)), weights.arch, weights.norms, weights.source)
    gone = {bn for bn, _, _ in plan}
    norms = {name: norm for name, norm in weights.norms.items() if name not in gone}
    return AlexNetWeights(
        MappingProxyType(layers), folded(weights.arch), MappingProxyType(norms), weights.source
    )

