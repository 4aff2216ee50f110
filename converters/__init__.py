"""Weights only: architectures as data; read, validate, convert and write their weights with numpy (and h5py).

This package never imports TensorFlow, ONNX or tf2onnx.

Its import name is generic (a distribution called ``converters`` exists on the public index), so it
says whose it is: ``alexnet_export.converters_owner`` checks this line before the CLI imports it.
"""

from __future__ import annotations

import os

__distribution__ = "alexnet-export"

from converters.arch import Architecture
from converters.bvlc_npy import read_npy, write_npy
from converters.errors import AlexNetExportError, InputError, OutputExistsError, UnsafePickleError, WeightsError
from converters.weights import AlexNetWeights, Layer, Source, build_weights

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

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
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read a weight file: the bvlc_alexnet.npy layout, or HDF5 (this toolkit's or Keras'), by magic bytes.

    Args:
        path: the weight file.
        allow_cast: convert float64/float16 arrays to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values.
        arch: the architecture (default: the one this toolkit's HDF5 records, else bvlc-alexnet).

    """
    try:
        with open(path, "rb") as stream:
            is_hdf5 = stream.read(len(HDF5_MAGIC)) == HDF5_MAGIC
    except OSError:
        is_hdf5 = False  # read_npy reports missing files and directories
    if is_hdf5:
        from converters.hdf5 import read_h5

        return read_h5(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
    return read_npy(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
