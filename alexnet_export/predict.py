"""``predict``: the top-k ImageNet classes of image files, from weights or from any exported artifact.

Images go through :mod:`alexnet_export.preprocess` (Caffe's convention) and then one CPU runner:
the canonical TF graph for weight files, the artifact's own runtime otherwise (TF for a SavedModel,
ONNX Runtime for ``.onnx``, LiteRT for ``.tflite``), so the same images give comparable answers
everywhere. Probabilities are the softmax of the runner's logits, computed in float64. An artifact
exported with ``--embed-preprocessing`` gets each picture as decoded (uint8 RGB, its own size) and
preprocesses it in-graph.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_export.artifacts import embeds_preprocessing
from alexnet_export.labels import top_k
from alexnet_export.preprocess import MODES, fit_rgb, load_rgb, rgb_to_input
from alexnet_export.reference import softmax
from converters.errors import InputError
from converters.spec import check_choice

ARTIFACT_SUFFIXES = (".onnx", ".tflite")


@dataclass(frozen=True)
class Prediction:
    """One image's answer: its path and the top classes (``index``, ``label``, ``probability``)."""

    path: str
    top: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """``{"path": ..., "predictions": [{"index", "label", "probability"}, ...]}``."""
        return {"path": self.path, "predictions": self.top}


def model_runner(model: str | os.PathLike[str], *, allow_cast: bool = False) -> tuple[Any, str]:
    """A CPU runner for ``model`` (weights file or artifact) and a description of what runs it."""
    from alexnet_export.runtimes import Runner, artifact_rows, graph_rows

    path = Path(model)
    if path.is_dir() or path.suffix.lower() in ARTIFACT_SUFFIXES:
        rows = artifact_rows(path)
        what = f"{path} ({rows[0].format})"
    else:
        from converters import read_weights

        rows = graph_rows(read_weights(path, allow_cast=allow_cast))
        what = f"{path} (weights, canonical TF graph)"
    runner = next(row for row in rows if isinstance(row, Runner) and row.device == "cpu")
    return runner, f"{what} on {runner.runtime}"


def check_options(*, top: int, mode: str) -> None:
    """Refuse ``top`` below 1 and an unknown ``mode``, naming the CLI option (before any model loads).

    Raises:
        InputError: a bad value.

    """
    if top < 1:
        raise InputError(f"--top: expected 1 or more classes, received {top}")
    check_choice("--fit", mode, MODES)


def predict(
    model: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    *,
    top: int = 5,
    mode: str = "crop",
    allow_cast: bool = False,
) -> tuple[list[Prediction], str]:
    """Top-``top`` classes of each image under ``model``.

    Returns:
        One :class:`Prediction` per image, in order, and a description of the runner.

    Raises:
        InputError: an unreadable image, a bad model, or ``top`` outside 1..classes.

    """
    check_options(top=top, mode=mode)
    pictures = [load_rgb(path) for path in images]  # bad images fail before any model is loaded
    runner, what = model_runner(model, allow_cast=allow_cast)
    if embeds_preprocessing(Path(model)):  # the model resizes itself: each picture as it is, batch 1
        logits = np.concatenate([runner.run(picture[None]) for picture in pictures]).astype(np.float64)
        what += ", embedded preprocessing"
    else:
        batch = np.stack([rgb_to_input(fit_rgb(picture, mode)) for picture in pictures])
        logits = np.asarray(runner.run(batch), dtype=np.float64)
    if top > logits.shape[1]:
        raise InputError(f"--top: expected at most {logits.shape[1]} (the model's classes), received {top}")
    probabilities = softmax(logits)
    return [Prediction(str(path), top_k(p, top)) for path, p in zip(images, probabilities, strict=True)], what
