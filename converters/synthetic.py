"""Seeded synthetic weights for any architecture, in the exact bvlc_alexnet.npy layout, for tests and demos.

The real files cannot be downloaded in tests, so these stand in for them: full size by default, or
width-scaled (every hidden width divided by ``width_divisor``) and with any class count. Values are
uniform with He-style scales, chosen so that activations stay finite and non-degenerate through every
layer, and so that the logits spread over a few units. BatchNormalization layers get non-trivial
statistics (gamma around 1, beta and moving means away from 0, variances between 0.5 and 2). Only
exact integer-to-float arithmetic is used, so the same seed gives the same bytes on any machine; for
bvlc-alexnet the bytes are those of earlier releases (streams are numbered by weight-layer index).
"""

from __future__ import annotations

import numpy as np

from converters.arch import (
    DEFAULT_ARCH,
    PRESETS,
    Architecture,
    BatchNorm,
    expected_kernel_shape,
    input_width,
    trace,
)
from converters.errors import InputError
from converters.weights import AlexNetWeights, build_weights

# Standard deviation of each kernel is GAIN / sqrt(fan_in); the logits layer is scaled down so that
# logits spread over a few units instead of saturating the softmax.
_GAIN, _LOGITS_GAIN = 2.0**0.5, 0.05
_BIAS_SCALE, _LOGITS_BIAS_SCALE = 1.0, 0.5
_BITS = 23
_NORM_STREAM = 1000  # stream numbers of BatchNormalization statistics start here


def synthetic_widths(
    *, num_classes: int | None = None, width_divisor: int = 1, arch: Architecture | None = None
) -> dict[str, int]:
    """Layer widths of a synthetic network: the architecture's, divided, with ``num_classes`` last.

    Raises:
        InputError: the divisor leaves a width that is not a whole number divisible by the layer's
            groups (and even, for layers feeding a grouped one), or the class count is below 1.

    """
    arch = arch or PRESETS[DEFAULT_ARCH]
    if num_classes is not None and num_classes < 1:
        raise InputError(f"--num-classes: expected a positive integer, received {num_classes}")
    if width_divisor < 1:
        raise InputError(f"--width-divisor: expected a positive integer, received {width_divisor}")
    need = max((conv.groups for conv in arch.convs.values()), default=1)
    widths = {}
    full = arch.widths()
    for name in arch.layer_names[:-1]:
        if full[name] % width_divisor or (full[name] // width_divisor) % need:
            raise InputError(
                f"--width-divisor: expected a divisor leaving every width a multiple of {need} for architecture "
                f"{arch.name}, received {width_divisor} ({name} has {full[name]} channels)"
            )
        widths[name] = full[name] // width_divisor
    widths[arch.layer_names[-1]] = num_classes if num_classes is not None else full[arch.layer_names[-1]]
    return widths


def _uniform(seed: int, stream: tuple[int, int], shape: tuple[int, ...], std: float) -> np.ndarray:
    rng = np.random.default_rng([seed, *stream])
    ints = rng.integers(-(2**_BITS), 2**_BITS, size=shape, dtype=np.int32)
    # uniform on [-a, a) has std a / sqrt(3); ints / 2**BITS is uniform on [-1, 1)
    scale = np.float32(std * 3.0**0.5 / 2.0**_BITS)
    out = ints.astype(np.float32)
    out *= scale
    return out


def _norm_stats(seed: int, index: int, channels: int) -> list[np.ndarray]:
    """Gamma in [0.75, 1.25), beta and mean in [-0.5, 0.5), variance in [0.5, 2): exact dyadic values."""
    stream = _NORM_STREAM + index
    gamma = _uniform(seed, (stream, 0), (channels,), 0.25 / 3.0**0.5) + np.float32(1.0)
    beta = _uniform(seed, (stream, 1), (channels,), 0.5 / 3.0**0.5)
    mean = _uniform(seed, (stream, 2), (channels,), 0.5 / 3.0**0.5)
    variance = _uniform(seed, (stream, 3), (channels,), 0.75 / 3.0**0.5) + np.float32(1.25)
    return [gamma, beta, mean, variance]


def synthesize(
    *, seed: int = 0, num_classes: int | None = None, width_divisor: int = 1, arch: Architecture | None = None
) -> AlexNetWeights:
    """Make a seeded synthetic weight set.

    Args:
        seed: any non-negative integer; the same seed gives bit-identical weights everywhere.
        num_classes: width of the logits layer (default: the architecture's).
        width_divisor: divide every hidden width by this (1 = full size, 8 for fast tests).
        arch: the architecture (default: bvlc-alexnet).

    """
    arch = arch or PRESETS[DEFAULT_ARCH]
    if seed < 0:
        raise InputError(f"--seed: expected a non-negative integer, received {seed}")
    widths = synthetic_widths(num_classes=num_classes, width_divisor=width_divisor, arch=arch)
    arrays: dict[str, list[np.ndarray]] = {}
    last = arch.layer_names[-1]
    for index, name in enumerate(arch.layer_names):
        shape = expected_kernel_shape(arch, name, widths)
        fan_in = int(np.prod(shape[:-1]))
        gain = _LOGITS_GAIN if name == last else _GAIN
        kernel = _uniform(seed, (index, 0), shape, gain / fan_in**0.5)
        bias = _uniform(seed, (index, 1), (widths[name],), _LOGITS_BIAS_SCALE if name == last else _BIAS_SCALE)
        arrays[name] = [kernel, bias]
    shapes = trace(arch, widths)
    norms = [(i, layer.name) for i, layer in enumerate(arch.layers) if isinstance(layer, BatchNorm)]
    for number, (position, name) in enumerate(norms):
        arrays[name] = _norm_stats(seed, number, shapes[position][2])
    return build_weights(arrays, arch=arch, where="synthetic weights")


def scaled_like(weights: AlexNetWeights, divisor: int, *, seed: int = 0) -> AlexNetWeights | None:
    """Seeded weights of ``weights``' architecture with every hidden width divided by ``divisor``.

    The class count stays. ``None`` when a width would not be whole or not divisible by its groups.
    Used to convert a network's *structure* cheaply (the values are arbitrary, all distinct).
    """
    arch = weights.arch
    full = weights.widths
    last = arch.layer_names[-1]
    widths = {name: (w if name == last else w // divisor) for name, w in full.items()}
    if any(name != last and (w % divisor or not widths[name]) for name, w in full.items()):
        return None
    for name, conv in arch.convs.items():
        if widths[name] % conv.groups or input_width(arch, name, widths) % conv.groups:
            return None
    rng = np.random.default_rng(seed)
    try:
        shapes = {name: expected_kernel_shape(arch, name, widths) for name in arch.layer_names}
        arrays: dict[str, list[np.ndarray]] = {
            name: [
                (rng.standard_normal(shape) * 0.05).astype(np.float32),
                (rng.standard_normal(widths[name]) * 0.05).astype(np.float32),
            ]
            for name, shape in shapes.items()
        }
        traced = trace(arch, widths)
        for position, layer in enumerate(arch.layers):
            if isinstance(layer, BatchNorm):
                channels = traced[position][2]
                arrays[layer.name] = [
                    (1 + rng.random(channels)).astype(np.float32),
                    (rng.standard_normal(channels) * 0.1).astype(np.float32),
                    (rng.standard_normal(channels) * 0.1).astype(np.float32),
                    (1 + rng.random(channels)).astype(np.float32),
                ]
        return build_weights(arrays, arch=arch, where=f"{arch.name} at width / {divisor}")
    except InputError:
        return None
