"""Logits parity: the figures that compare a runtime's logits with the float64 oracle, and the tolerances.

Tolerances are data, one row per precision, declared once here and used by the exporters' tests,
``npy2tflite``'s accuracy profile and ``verify``. Each row was chosen from measurements on full-size
weights (see the closing notes of issues 5 and 6); a row states what must hold for a pass:

- ``max_rel``: the largest ``|actual - expected|`` divided by the largest ``|expected|`` of the batch
  (relative to the logit scale; element-wise relative error is meaningless near zero logits);
- ``min_cosine``: the smallest per-image cosine similarity of the logit vectors;
- ``min_top1`` / ``min_top5``: the fraction of images whose top-1 class agrees, and the mean overlap
  of the top-5 sets. Classes are compared by index, never after sorting values;
- ``atol`` / ``rtol`` (optional, off in the profiles): additionally every element must satisfy
  ``|actual - expected| <= atol + rtol * |expected|`` (numpy's ``allclose``), for users who gate on that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8-dynamic", "int8")


@dataclass(frozen=True)
class Tolerance:
    """What a row must satisfy to pass (see the module docstring)."""

    max_rel: float
    min_cosine: float
    min_top1: float
    min_top5: float
    atol: float | None = None
    rtol: float | None = None


# Measured by benchmarks/tflite_accuracy.py on full-size (synthetic) weights, 35 images (32 synthetic + the 3
# photos in alexnet_export/sample_images), LiteRT XNNPACK vs the float64 oracle
# (max_rel / worst cosine / top-1 / top-5):
# fp32 2.3e-6 / 1.0 / 1 / 1; fp16 5.4e-4 / 1.0 / 1 / 1; int8-dynamic 1.45e-2 / 0.99989 / 1 / 0.99; int8
# 0.12 / 0.99962 / 1 / 0.98 (per-image median 0.018: one image is the worst by far). Each
# max_rel bound sits 2x (int8) to 9x above its measurement; the top-k floors leave room for genuine
# near-ties between logits, which a quantised model may swap without being wrong.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_rel=1e-5, min_cosine=0.99999, min_top1=1.0, min_top5=1.0),
    "fp16": Tolerance(max_rel=5e-3, min_cosine=0.9999, min_top1=0.8, min_top5=0.8),
    "int8-dynamic": Tolerance(max_rel=0.05, min_cosine=0.999, min_top1=0.6, min_top5=0.6),
    "int8": Tolerance(max_rel=0.25, min_cosine=0.99, min_top1=0.4, min_top5=0.5),
}


@dataclass(frozen=True)
class Metrics:
    """How ``actual`` logits differ from ``expected`` (both ``(batch, classes)``).

    Attributes:
        shape: the shape of ``actual``.
        max_abs: largest absolute difference.
        mean_abs: mean absolute difference.
        max_rel: ``max_abs`` over the largest ``|expected|``; also the smallest ``max_rel`` tolerance that passes.
        cosine: smallest per-image cosine similarity.
        top1: fraction of images with the same top-1 class.
        top5: mean overlap of the top-5 class sets.
        nonfinite: number of NaN or Inf values in ``actual``.

    """

    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    max_rel: float
    cosine: float
    top1: float
    top5: float
    nonfinite: int

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        figures = {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in asdict(self).items()}
        return {**figures, "shape": list(self.shape)}


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest logits per row, largest first (ties broken by lower index)."""
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def compare(actual: np.ndarray, expected: np.ndarray) -> Metrics:
    """The parity figures of ``actual`` against ``expected`` (the oracle)."""
    actual64 = np.asarray(actual, dtype=np.float64)
    expected64 = np.asarray(expected, dtype=np.float64)
    nonfinite = int(np.count_nonzero(~np.isfinite(actual64)))
    if actual64.shape != expected64.shape or nonfinite:
        nan = float("nan")
        return Metrics(tuple(actual64.shape), nan, nan, nan, nan, 0.0, 0.0, nonfinite)
    diff = np.abs(actual64 - expected64)
    scale = float(np.abs(expected64).max()) or 1.0
    norms = np.linalg.norm(actual64, axis=1) * np.linalg.norm(expected64, axis=1)
    cosine = np.sum(actual64 * expected64, axis=1) / np.where(norms == 0, 1.0, norms)
    top5_a, top5_e = top_k(actual64, 5), top_k(expected64, 5)
    overlap = [len(set(a) & set(e)) / len(e) for a, e in zip(top5_a, top5_e, strict=True)]
    return Metrics(
        shape=tuple(actual64.shape),
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        max_rel=float(diff.max()) / scale,
        cosine=float(cosine.min()),
        top1=float(np.mean(top5_a[:, 0] == top5_e[:, 0])),
        top5=float(np.mean(overlap)),
        nonfinite=nonfinite,
    )


def failures(metrics: Metrics, tolerance: Tolerance, expected_shape: tuple[int, ...]) -> list[str]:
    """Every way ``metrics`` misses ``tolerance`` (empty when it passes), in words."""
    found = []
    if metrics.shape != expected_shape:
        found.append(f"shape {metrics.shape}, expected {expected_shape}")
    if metrics.nonfinite:
        found.append(f"{metrics.nonfinite} NaN/Inf values")
    if found:
        return found
    if not metrics.max_rel <= tolerance.max_rel:
        found.append(f"max_rel {metrics.max_rel:.3g} > {tolerance.max_rel:g}")
    if not metrics.cosine >= tolerance.min_cosine:
        found.append(f"cosine {metrics.cosine:.6f} < {tolerance.min_cosine:g}")
    if not metrics.top1 >= tolerance.min_top1:
        found.append(f"top-1 agreement {metrics.top1:.2f} < {tolerance.min_top1:g}")
    if not metrics.top5 >= tolerance.min_top5:
        found.append(f"top-5 overlap {metrics.top5:.2f} < {tolerance.min_top5:g}")
    return found


def allclose_failures(actual: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> list[str]:
    """The element-wise ``atol``/``rtol`` check of ``tolerance`` (nothing when neither is set), in words.

    The message gives how many values miss, and the smallest ``atol`` that would pass at this ``rtol``.
    """
    if tolerance.atol is None and tolerance.rtol is None:
        return []
    atol, rtol = tolerance.atol or 0.0, tolerance.rtol or 0.0
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or not np.all(np.isfinite(a)):
        return []  # already reported by failures()
    excess = np.abs(a - e) - rtol * np.abs(e)
    missed = int(np.count_nonzero(excess > atol))
    if not missed:
        return []
    return [f"allclose(atol={atol:g}, rtol={rtol:g}) fails at {missed} of {a.size} values "
            f"(passes with atol >= {float(excess.max()):.3g})"]
