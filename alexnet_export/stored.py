"""The arrays a graph stores for a weight set: BatchNormalization folded where exact, grouped kernels per mode.

No TensorFlow here: TFLite placement lays these arrays into a flatbuffer without building a graph.
"""

from __future__ import annotations

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
