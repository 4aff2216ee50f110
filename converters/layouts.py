"""Named layout transforms between the canonical weights and what each format stores.

The canonical layout (see ``shared/DESIGN.md``) is HWIO grouped conv kernels, ``(in, out)`` fc
kernels and fc6 rows in ``(h, w, c)`` order (an NHWC flatten of pool5). ONNX stores conv kernels
OIHW; an NCHW ONNX export flattens pool5 as ``(c, h, w)``, so its fc6 rows are permuted instead of
inserting a Transpose. Every transform here has its inverse next to it and round-trips bit-exactly.
"""

from __future__ import annotations

import numpy as np

from converters.errors import WeightsError
from converters.spec import POOL5_SIZE


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel from TF's HWIO to ONNX's OIHW, as a C-contiguous copy."""
    _check_ndim(kernel, 4, "HWIO kernel")
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    """A conv kernel from ONNX's OIHW to TF's HWIO; the inverse of :func:`hwio_to_oihw`."""
    _check_ndim(kernel, 4, "OIHW kernel")
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def _fc6_view(kernel: np.ndarray, order: str) -> tuple[np.ndarray, int]:
    _check_ndim(kernel, 2, "fc6 kernel")
    cells = POOL5_SIZE * POOL5_SIZE
    if kernel.shape[0] % cells:
        raise WeightsError(
            f"fc6: expected rows divisible by {cells} ({POOL5_SIZE}x{POOL5_SIZE} pool5 cells) in {order} order, "
            f"received shape {kernel.shape}"
        )
    return kernel, kernel.shape[0] // cells


def fc6_rows_hwc_to_chw(kernel: np.ndarray) -> np.ndarray:
    """Reorder fc6 rows from an NHWC flatten ``(h, w, c)`` to an NCHW flatten ``(c, h, w)``."""
    kernel, channels = _fc6_view(kernel, "(h, w, c)")
    grid = kernel.reshape(POOL5_SIZE, POOL5_SIZE, channels, kernel.shape[1])
    return np.ascontiguousarray(grid.transpose(2, 0, 1, 3)).reshape(kernel.shape)


def fc6_rows_chw_to_hwc(kernel: np.ndarray) -> np.ndarray:
    """Reorder fc6 rows from ``(c, h, w)`` back to ``(h, w, c)``; the inverse of :func:`fc6_rows_hwc_to_chw`."""
    kernel, channels = _fc6_view(kernel, "(c, h, w)")
    grid = kernel.reshape(channels, POOL5_SIZE, POOL5_SIZE, kernel.shape[1])
    return np.ascontiguousarray(grid.transpose(1, 2, 0, 3)).reshape(kernel.shape)


def _check_ndim(array: np.ndarray, ndim: int, what: str) -> None:
    if array.ndim != ndim:
        raise WeightsError(f"expected a {ndim}-d {what}, received shape {array.shape}")
