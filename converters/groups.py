"""Grouped convolution kernels (Caffe ``group``; conv2, conv4 and conv5 of AlexNet use G=2).

A grouped HWIO kernel has shape ``(kh, kw, C_in/G, C_out)``: group ``g`` reads input channels
``[g*C_in/G, (g+1)*C_in/G)`` and writes output channels ``[g*C_out/G, (g+1)*C_out/G)``. This is the
layout of bvlc_alexnet.npy and of ``tf.nn.conv2d`` with a grouped kernel. The four functions here
convert between it and the two other layouts runtimes need; every round trip is bit-exact.
"""

from __future__ import annotations

import numpy as np

from converters.errors import WeightsError


def _check_grouped(kernel: np.ndarray, groups: int, name: str) -> None:
    if kernel.ndim != 4:
        raise WeightsError(f"{name}: expected a 4-d HWIO kernel, received shape {kernel.shape}")
    if groups < 1 or kernel.shape[3] % groups:
        raise WeightsError(
            f"{name}: output channels must divide into {groups} groups, received shape {kernel.shape}"
        )


def split(kernel: np.ndarray, groups: int, *, name: str = "kernel") -> tuple[np.ndarray, ...]:
    """Split a grouped kernel into one ``(kh, kw, C_in/G, C_out/G)`` kernel per group.

    Args:
        kernel: grouped HWIO kernel.
        groups: number of groups G.
        name: layer name for error messages.

    Returns:
        G C-contiguous copies, group 0 first.

    """
    _check_grouped(kernel, groups, name)
    return tuple(np.ascontiguousarray(part) for part in np.split(kernel, groups, axis=3))


def merge(parts: tuple[np.ndarray, ...] | list[np.ndarray], *, name: str = "kernel") -> np.ndarray:
    """Merge per-group kernels (group 0 first) into one grouped kernel; the inverse of :func:`split`.

    Raises:
        WeightsError: when the parts are not 4-d or differ in shape or dtype.

    """
    if not parts:
        raise WeightsError(f"{name}: expected at least one group kernel, received none")
    first = parts[0]
    for index, part in enumerate(parts):
        if part.ndim != 4 or part.shape != first.shape or part.dtype != first.dtype:
            raise WeightsError(
                f"{name}: every group kernel must be 4-d with the shape and dtype of group 0 "
                f"{first.shape} {first.dtype}, received group {index} {part.shape} {part.dtype}"
            )
    return np.concatenate(parts, axis=3)


def to_dense(kernel: np.ndarray, groups: int, *, name: str = "kernel") -> np.ndarray:
    """Expand a grouped kernel to a dense block-diagonal ``(kh, kw, C_in, C_out)`` kernel.

    The dense kernel computes the same convolution with ``groups=1``; off-diagonal blocks are zero.
    """
    _check_grouped(kernel, groups, name)
    kh, kw, cin_g, cout = kernel.shape
    cout_g = cout // groups
    dense = np.zeros((kh, kw, cin_g * groups, cout), dtype=kernel.dtype)
    for g in range(groups):
        dense[:, :, g * cin_g : (g + 1) * cin_g, g * cout_g : (g + 1) * cout_g] = kernel[
            :, :, :, g * cout_g : (g + 1) * cout_g
        ]
    return dense


def from_dense(dense: np.ndarray, groups: int, *, name: str = "kernel") -> np.ndarray:
    """Recover the grouped kernel from a dense block-diagonal kernel; the inverse of :func:`to_dense`.

    Raises:
        WeightsError: naming the layer, when the shape does not divide into groups or an
            off-diagonal block holds a non-zero value (the dense kernel is not grouped).

    """
    _check_grouped(dense, groups, name)
    kh, kw, cin, cout = dense.shape
    if cin % groups:
        raise WeightsError(
            f"{name}: input channels must divide into {groups} groups, received shape {dense.shape}"
        )
    cin_g, cout_g = cin // groups, cout // groups
    grouped = np.empty((kh, kw, cin_g, cout), dtype=dense.dtype)
    for g in range(groups):
        rows = slice(g * cin_g, (g + 1) * cin_g)
        for h in range(groups):
            block = dense[:, :, rows, h * cout_g : (h + 1) * cout_g]
            if g != h and np.any(block):
                raise WeightsError(
                    f"{name}: expected a block-diagonal kernel for {groups} groups, received "
                    f"{int(np.count_nonzero(block))} non-zero values in block (input group {g}, "
                    f"output group {h})"
                )
        grouped[:, :, :, g * cout_g : (g + 1) * cout_g] = dense[:, :, rows, g * cout_g : (g + 1) * cout_g]
    return grouped
