"""Named layout transforms between the canonical weights and what each format stores.

The canonical layout (see ``shared/DESIGN.md``) is HWIO grouped conv kernels, ``(in, out)`` dense
kernels and the first dense layer's rows in ``(h, w, c)`` order (an NHWC flatten of the last feature
map; its shape comes from :func:`converters.arch.flatten_input`). ONNX stores conv kernels OIHW; an
NCHW ONNX export flattens ``(c, h, w)``, so those rows are permuted instead of inserting a Transpose.
Every transform here has its inverse next to it and round-trips bit-exactly.
"""

from __future__ import annotations

import numpy as np

from converters.errors import WeightsError


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel from TF's HWIO to ONNX's OIHW, as a C-contiguous copy."""
    _check_ndim(kernel, 4, "HWIO kernel")
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel from ONNX's OIHW to TF's HWIO; the inverse of :func:`hwio_to_oihw`."""
    _check_ndim(kernel, 4, "OIHW kernel")
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def _rows_view(kernel: np.ndarray, grid: tuple[int, int, int], order: str) -> None:
    _check_ndim(kernel, 2, "dense kernel")
    height, width, channels = grid
    if kernel.shape[0] != height * width * channels:
        raise WeightsError(
            f"expected {height}x{width}x{channels} = {height * width * channels} rows in {order} order, "
            f"received shape {kernel.shape}"
        )


def fc6_rows_hwc_to_chw(kernel: np.ndarray, grid: tuple[int, int, int] = (6, 6, 256)) -> np.ndarray:
    """Reorder the first dense layer's rows from an NHWC flatten ``(h, w, c)`` to an NCHW flatten ``(c, h, w)``.

    Args:
        kernel: ``(h * w * c, out)``.
        grid: ``(h, w, c)`` of the flattened map (pool5's 6x6x256 for full-size BVLC AlexNet).

    """
    _rows_view(kernel, grid, "(h, w, c)")
    height, width, channels = grid
    cube = kernel.reshape(height, width, channels, kernel.shape[1])
    return np.ascontiguousarray(cube.transpose(2, 0, 1, 3)).reshape(kernel.shape)


def fc6_rows_chw_to_hwc(kernel: np.ndarray, grid: tuple[int, int, int] = (6, 6, 256)) -> np.ndarray:
    """Reorder rows from ``(c, h, w)`` back to ``(h, w, c)``; the inverse of :func:`fc6_rows_hwc_to_chw`."""
    _rows_view(kernel, grid, "(c, h, w)")
    height, width, channels = grid
    cube = kernel.reshape(channels, height, width, kernel.shape[1])
    return np.ascontiguousarray(cube.transpose(1, 2, 0, 3)).reshape(kernel.shape)


def _check_ndim(array: np.ndarray, ndim: int, what: str) -> None:
    if array.ndim != ndim:
        raise WeightsError(f"expected a {ndim}-d {what}, received shape {array.shape}")
