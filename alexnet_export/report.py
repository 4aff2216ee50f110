"""Human-readable tables on the terminal (rich)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from converters.summary import WeightsSummary


def _g(value: float) -> str:
    return f"{value:.4g}"


def print_summary(summary: WeightsSummary, *, console: Console | None = None) -> None:
    """Print the ``inspect`` table and the checksum lines."""
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"{summary.path}" if summary.path else "weights")
    for column in ("tensor", "shape", "groups", "dtype", "params", "min", "max", "mean", "std", "NaN", "Inf"):
        table.add_column(column, justify="left" if column in ("tensor", "shape", "dtype") else "right")
    for layer in summary.layers:
        for label, stats in (("kernel", layer.kernel), ("bias", layer.bias)):
            table.add_row(
                f"{layer.name}/{label}", "x".join(map(str, stats.shape)),
                str(layer.groups) if label == "kernel" else "", stats.dtype,
                f"{layer.parameters:,}" if label == "kernel" else "",
                _g(stats.min), _g(stats.max), _g(stats.mean), _g(stats.std), str(stats.nan), str(stats.inf),
            )
    console.print(table)
    size = "full size" if summary.full_size else "not full size"
    console.print(f"parameters: {summary.parameters:,} ({size}), classes: {summary.num_classes}")
    verdict = "matches the published checksum" if summary.matches_published else "does NOT match the published checksum"
    console.print(f"sha256: {summary.sha256} ({verdict} {summary.published_sha256[:12]}...)")
    if summary.nonfinite:
        console.print(f"[red]{summary.nonfinite} NaN/Inf values: these weights cannot be exported[/]")
