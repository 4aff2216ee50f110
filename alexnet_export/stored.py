"""The arrays a graph stores for a weight set: BatchNormalization folded where exact, grouped kernels per mode.

No TensorFlow here: TFLite placement lays these arrays into a flatbuffer without building a graph.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from converters import groups as groups_mod
from converters.arch import Architecture, BatchNorm
from converters.fold import fold_batchnorm, scale_shift
from converters.weights import AlexNetWeights


def stored_kernel(arch: Architecture, name: str, kernel: np.ndarray, groups: str) -> np.ndarray:
    """The kernel as the graph stores it: dense block-diagonal in ``dense`` mode, else grouped."""
    if groups == "dense" and arch.groups_of(name) > 1:
        return groups_mod.to_dense(kernel, arch.groups_of(name), name=name)
    return kernel


def graph_params(weights: AlexNetWeights, groups: str) -> tuple[Architecture, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The architecture the graph computes (BN folded where exact) and its arrays per layer.

    Layers with weights give ``(kernel as stored, bias)``; a BN that stays gives ``(scale, offset)``.
    """
    graph_weights = fold_batchnorm(weights)
    arch = graph_weights.arch
    params = {
        name: (stored_kernel(arch, name, layer.kernel, groups), layer.bias)
        for name, layer in graph_weights.layers.items()
    }
    epsilons = {layer.name: layer.epsilon for layer in arch.layers if isinstance(layer, BatchNorm)}
    for name, norm in graph_weights.norms.items():
        scale, shift = scale_shift(norm, epsilons[name])
        params[name] = (scale.astype(np.float32), shift.astype(np.float32))
    return arch, params


TILE = 1024  # rows and columns of one block when a large 2-d array is read across its strides


def tiles(array: np.ndarray) -> Iterator[tuple[slice, slice]]:
    """Square blocks covering a 2-d ``array``, row by row.

    A transposed view (a TFLite dense kernel is the transpose of the source's) read in these blocks
    stays in cache: copying fc6's 151 MB across its strides takes 0.160 s in 1024 x 1024 blocks against
    0.284 s for one ``np.copyto``, and comparing it 0.165 s against 0.297 s (``benchmarks/tiles.py``).
    Each block is a numpy call that lets the GIL go and takes it back, which beside a thread holding the
    GIL (``export`` imports TensorFlow beside verify) waits up to the switch interval: 256 x 256 blocks,
    slightly faster alone (0.116 / 0.134 s), took 3.1 / 3.3 s there, against 0.35 / 0.56 s for these.
    """
    rows, cols = array.shape
    for r in range(0, rows, TILE):
        for c in range(0, cols, TILE):
            yield slice(r, r + TILE), slice(c, c + TILE)


def strided(array: np.ndarray) -> bool:
    """Whether ``array`` is a large 2-d view that is not C-contiguous: one to read in :func:`tiles`."""
    return array.ndim == 2 and array.size >= TILE * TILE and not array.flags.c_contiguous
