"""Per-layer statistics of a weight set: what ``alexnet-export inspect`` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from converters.arch import parameter_count, trace
from converters.weights import AlexNetWeights


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one array (min/max/mean/std over finite values)."""

    shape: tuple[int, ...]
    dtype: str
    count: int
    min: float
    max: float
    mean: float
    std: float
    nan: int
    inf: int


@dataclass(frozen=True)
class LayerSummary:
    """One layer: its groups, parameter count and the statistics of its arrays (kernel and bias, or BN's four)."""

    name: str
    kind: str
    groups: int
    parameters: int
    kernel: TensorStats
    bias: TensorStats
    extra: tuple[TensorStats, ...] = ()


@dataclass(frozen=True)
class WeightsSummary:
    """What ``inspect`` reports about a weight file."""

    path: str | None
    sha256: str | None
    matches_published: bool
    published_sha256: str
    parameters: int
    full_size: bool
    num_classes: int
    layers: tuple[LayerSummary, ...]
    architecture: str = "bvlc-alexnet"
    shapes: tuple[dict[str, Any], ...] = ()
    source_format: str | None = None

    @property
    def nonfinite(self) -> int:
        """Total NaN and Inf values over all layers."""
        return sum(t.nan + t.inf for lay in self.layers for t in (lay.kernel, lay.bias, *lay.extra))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)


def tensor_stats(array: np.ndarray) -> TensorStats:
    """Statistics of ``array``; NaN and Inf are counted and left out of min/max/mean/std."""
    finite = np.isfinite(array)
    values = array if finite.all() else array[finite]
    nan = int(np.isnan(array).sum())
    if values.size:
        lo, hi = float(values.min()), float(values.max())
        mean, std = float(values.mean(dtype=np.float64)), float(values.std(dtype=np.float64))
    else:
        lo = hi = mean = std = float("nan")
    return TensorStats(
        shape=tuple(array.shape), dtype=str(array.dtype), count=int(array.size),
        min=lo, max=hi, mean=mean, std=std, nan=nan, inf=int(array.size - finite.sum()) - nan,
    )


def summarize(weights: AlexNetWeights) -> WeightsSummary:
    """Summarize every layer of ``weights`` and compare the source file with the published pin."""
    arch = weights.arch
    layers = [
        LayerSummary(
            name=name, kind="conv" if name in arch.convs else "dense", groups=weights.groups_of(name),
            parameters=int(layer.kernel.size + layer.bias.size),
            kernel=tensor_stats(layer.kernel), bias=tensor_stats(layer.bias),
        )
        for name, layer in weights.layers.items()
    ]
    layers += [
        LayerSummary(
            name=name, kind="batchnorm", groups=1, parameters=4 * int(norm.gamma.size),
            kernel=tensor_stats(norm.gamma), bias=tensor_stats(norm.beta),
            extra=(tensor_stats(norm.mean), tensor_stats(norm.variance)),
        )
        for name, norm in weights.norms.items()
    ]
    named = [getattr(lay, "name", None) for lay in arch.layers]
    order = {name: i for i, name in enumerate(n for n in named if n)}
    sha = weights.source.sha256 if weights.source else None
    return WeightsSummary(
        path=weights.source.path if weights.source else None,
        sha256=sha,
        matches_published=bool(arch.published_sha256) and sha == arch.published_sha256,
        published_sha256=arch.published_sha256,
        parameters=weights.parameter_count,
        full_size=weights.parameter_count == parameter_count(arch, {arch.layer_names[-1]: weights.num_classes}),
        num_classes=weights.num_classes,
        layers=tuple(sorted(layers, key=lambda lay: order[lay.name])),
        architecture=arch.name,
        shapes=layer_shapes(weights),
        source_format=weights.source.format if weights.source else None,
    )


def layer_shapes(weights: AlexNetWeights) -> tuple[dict[str, Any], ...]:
    """Every layer of the architecture with its output feature-map shape (h, w, c) for these widths."""
    arch = weights.arch
    shapes = trace(arch, weights.widths)
    origins = dict(weights.source.origins) if weights.source else {}
    rows = []
    for index, layer in enumerate(arch.layers):
        params = {k: v for k, v in layer.__dict__.items() if k != "name"}
        rows.append(
            {"layer": getattr(layer, "name", "") or layer.type, "type": layer.type, "output": list(shapes[index + 1]),
             "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}}
        )
        if origins:
            rows[-1]["source"] = origins.get(getattr(layer, "name", ""), "")
    return tuple(rows)
