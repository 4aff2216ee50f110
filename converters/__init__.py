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
    """Read a weight file by its magic bytes: the npy dict, HDF5, or a ``.keras`` zip.

    HDF5 is this toolkit's, a Keras ``.weights.h5`` or a legacy Keras full model; full models (``.h5`` and
    ``.keras``) carry their architecture in their config, read as data.

    Args:
        path: the weight file.
        allow_cast: convert float64/float16 arrays to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values.
        arch: the architecture (default: the one the file records or describes, else bvlc-alexnet).

    """
    try:
        with open(path, "rb") as stream:
            magic = stream.read(len(HDF5_MAGIC))
    except OSError:
        magic = b""  # read_npy reports missing files and directories
    if magic == HDF5_MAGIC:
        import h5py

        from converters.hdf5 import read_h5
        from converters.keras_file import is_keras_h5_model, read_keras_model

        try:
            with h5py.File(path, "r") as file:
                full_model = is_keras_h5_model(file)
        except OSError:
            full_model = False  # read_h5 reports what is wrong with the file
        read = read_keras_model if full_model else read_h5
        return read(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
    if magic.startswith(b"PK\x03\x04"):
        from converters.keras_file import read_keras_model

        return read_keras_model(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
    return read_npy(path, allow_cast=allow_cast, check_finite=check_finite, arch=arch)
