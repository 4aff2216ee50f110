"""Per-layer statistics of a weight set: what ``alexnet-export inspect`` prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from converters.spec import FULL_PARAMETER_COUNT, PUBLISHED_SHA256
from converters.weights import AlexNetWeights, groups_of


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
    """One layer: its groups, parameter count and the statistics of kernel and bias."""

    name: str
    groups: int
    parameters: int
    kernel: TensorStats
    bias: TensorStats


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

    @property
    def nonfinite(self) -> int:
        """Total NaN and Inf values over all layers."""
        return sum(t.nan + t.inf for lay in self.layers for t in (lay.kernel, lay.bias))

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
    layers = tuple(
        LayerSummary(
            name=name,
            groups=groups_of(name),
            parameters=int(layer.kernel.size + layer.bias.size),
            kernel=tensor_stats(layer.kernel),
            bias=tensor_stats(layer.bias),
        )
        for name, layer in weights.layers.items()
    )
    sha = weights.source.sha256 if weights.source else None
    return WeightsSummary(
        path=weights.source.path if weights.source else None,
        sha256=sha,
        matches_published=sha == PUBLISHED_SHA256,
        published_sha256=PUBLISHED_SHA256,
        parameters=weights.parameter_count,
        full_size=weights.parameter_count == FULL_PARAMETER_COUNT,
        num_classes=weights.num_classes,
        layers=layers,
    )
