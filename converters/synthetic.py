"""Seeded synthetic weights in the exact bvlc_alexnet.npy layout, for tests and demos.

The real file cannot be downloaded in tests, so this stands in for it: full size by default, or
width-scaled (every width divided by ``width_divisor``) and with any class count. Values are uniform
with He-style scales, chosen so that activations stay finite and non-degenerate through all eight
layers on mean-subtracted 0-255 images, and so that the logits spread over a few units. Only exact
integer-to-float arithmetic is used, so the same seed gives the same bytes on any machine.
"""

from __future__ import annotations

import numpy as np

from converters.errors import InputError
from converters.spec import CONV_BY_NAME, FULL_WIDTHS, LAYER_NAMES, expected_kernel_shape
from converters.weights import AlexNetWeights, build_weights

# Standard deviation of each kernel is GAIN / sqrt(fan_in); fc8 is scaled down so that logits
# spread over a few units instead of saturating the softmax.
_GAIN: dict[str, float] = {name: 2.0**0.5 for name in LAYER_NAMES} | {"fc8": 0.05}
_BIAS_SCALE: dict[str, float] = {name: 1.0 for name in LAYER_NAMES} | {"fc8": 0.5}
_BITS = 23


def synthetic_widths(*, num_classes: int = 1000, width_divisor: int = 1) -> dict[str, int]:
    """Layer widths of a synthetic network.

    Raises:
        InputError: the divisor does not divide every width into an even number (grouped layers
            need even widths), or the class count is below 1.

    """
    if num_classes < 1:
        raise InputError(f"--num-classes: expected a positive integer, received {num_classes}")
    if width_divisor < 1:
        raise InputError(f"--width-divisor: expected a positive integer, received {width_divisor}")
    widths = {}
    for name in LAYER_NAMES[:-1]:
        full = FULL_WIDTHS[name]
        if full % width_divisor or (full // width_divisor) % 2:
            raise InputError(
                f"--width-divisor: expected a divisor leaving every width even (1, 2, 4, 8 or 16), "
                f"received {width_divisor} ({name} has {full} channels)"
            )
        widths[name] = full // width_divisor
    widths["fc8"] = num_classes
    return widths


def _uniform(seed: int, stream: tuple[int, int], shape: tuple[int, ...], std: float) -> np.ndarray:
    rng = np.random.default_rng([seed, *stream])
    ints = rng.integers(-(2**_BITS), 2**_BITS, size=shape, dtype=np.int32)
    # uniform on [-a, a) has std a / sqrt(3); ints / 2**BITS is uniform on [-1, 1)
    scale = np.float32(std * 3.0**0.5 / 2.0**_BITS)
    out = ints.astype(np.float32)
    out *= scale
    return out


def synthesize(*, seed: int = 0, num_classes: int = 1000, width_divisor: int = 1) -> AlexNetWeights:
    """Make a seeded synthetic weight set.

    Args:
        seed: any non-negative integer; the same seed gives bit-identical weights everywhere.
        num_classes: width of fc8.
        width_divisor: divide every hidden width by this (1 = full size, 8 for fast tests).

    """
    if seed < 0:
        raise InputError(f"--seed: expected a non-negative integer, received {seed}")
    widths = synthetic_widths(num_classes=num_classes, width_divisor=width_divisor)
    arrays: dict[str, tuple[object, object]] = {}
    for index, name in enumerate(LAYER_NAMES):
        shape = expected_kernel_shape(name, widths)
        fan_in = int(np.prod(shape[:-1])) if name in CONV_BY_NAME else shape[0]
        kernel = _uniform(seed, (index, 0), shape, _GAIN[name] / fan_in**0.5)
        bias = _uniform(seed, (index, 1), (widths[name],), _BIAS_SCALE[name])
        arrays[name] = (kernel, bias)
    return build_weights(arrays, where="synthetic weights")
