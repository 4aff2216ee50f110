"""Weights only: read, validate, convert and write AlexNet weights with numpy (and h5py).

This package never imports TensorFlow, ONNX or tf2onnx.
"""

from __future__ import annotations

import os

from converters.bvlc_npy import read_npy, write_npy
from converters.errors import AlexNetExportError, InputError, OutputExistsError, UnsafePickleError, WeightsError
from converters.weights import AlexNetWeights, Layer, Source, build_weights

__all__ = [
    "AlexNetExportError",
    "AlexNetWeights",
    "InputError",
    "Layer",
    "OutputExistsError",
    "Source",
    "UnsafePickleError",
    "WeightsError",
    "build_weights",
    "read_npy",
    "read_weights",
    "write_npy",
]


def read_weights(
    path: str | os.PathLike[str], *, allow_cast: bool = False, check_finite: bool = True
) -> AlexNetWeights:
    """Read a weight file in any supported format (today: the bvlc_alexnet.npy layout).

    Args:
        path: the weight file.
        allow_cast: convert float64/float16 arrays to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values.

    """
    return read_npy(path, allow_cast=allow_cast, check_finite=check_finite)
