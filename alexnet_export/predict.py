"""``predict``: the top-k classes of image files, from weights or from any exported artifact.

Images go through :mod:`alexnet_export.preprocess` as the model's architecture says (Caffe's BGR mean
for BVLC AlexNet, RGB scaled to [0, 1] for the Keras networks, 28x28 grey for MNIST) and then one CPU runner:
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
from alexnet_export.labels import read_labels, top_k
from alexnet_export.preprocess import MODES, fit_rgb, load_rgb, rgb_to_input, to_gray
from alexnet_export.reference import softmax
from converters.arch import Architecture, check_choice
from converters.errors import InputError

ARTIFACT_SUFFIXES = (".onnx", ".tflite")


@dataclass(frozen=True)
class Prediction:
    """One image's answer: its path and the top classes (``index``, ``label``, ``probability``)."""

    path: str
    top: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        """``{"path": ..., "predictions": [{"index", "label", "probability"}, ...]}``."""
        return {"path": self.path, "predictions": self.top}


def model_runner(
    model: str | os.PathLike[str], *, allow_cast: bool = False, arch: Architecture | None = None
) -> tuple[Any, str, Architecture]:
    """A CPU runner for ``model`` (weights file or artifact), a description of it, and its architecture.

    An artifact's architecture is read from the artifact; a weight file's is ``arch`` (default: the one
    an HDF5 file records, else bvlc-alexnet).
    """
    from alexnet_export.artifacts import artifact_architecture
    from alexnet_export.checkpoint import checkpoint_prefix
    from alexnet_export.runtimes import Runner, artifact_rows, graph_rows

    path = Path(model)
    is_checkpoint = checkpoint_prefix(path) is not None
    if (path.is_dir() and not is_checkpoint) or path.suffix.lower() in ARTIFACT_SUFFIXES:
        used = arch or artifact_architecture(path)
        rows = artifact_rows(path)
        what = f"{path} ({rows[0].format}, {used.name})"
    else:
        from alexnet_export.sources import read_weights

        weights = read_weights(path, allow_cast=allow_cast, arch=arch)
        used = weights.arch
        rows = graph_rows(weights)
        what = f"{path} (weights, {used.name}, canonical TF graph)"
    runner = next(row for row in rows if isinstance(row, Runner) and row.device == "cpu")
    return runner, f"{what} on {runner.runtime}", used


def check_options(*, top: int, mode: str | None) -> None:
    """Refuse ``top`` below 1 and an unknown ``mode``, naming the CLI option (before any model loads).

    Raises:
        InputError: a bad value.

    """
    if top < 1:
        raise InputError(f"--top: expected 1 or more classes, received {top}")
    if mode is not None:
        check_choice("--fit", mode, MODES)


def predict(
    model: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str]],
    *,
    top: int = 5,
    mode: str | None = None,
    allow_cast: bool = False,
    arch: Architecture | None = None,
    labels: str | os.PathLike[str] | None = None,
) -> tuple[list[Prediction], str]:
    """Top-``top`` classes of each image under ``model``, preprocessed as its architecture says.

    Args:
        model: weights or an artifact.
        images: picture files.
        top: classes per image.
        mode: ``crop`` or ``resize`` (default: the architecture's ``fit``).
        allow_cast: accept float64/float16 weights.
        arch: the architecture of a weight file (artifacts record their own).
        labels: a file of class names (default: recorded at export, else ImageNet's for 1000 classes).

    Returns:
        One :class:`Prediction` per image, in order, and a description of the runner.

    Raises:
        InputError: an unreadable image, a bad model, or ``top`` outside 1..classes.

    """
    check_options(top=top, mode=mode)
    pictures = [load_rgb(path) for path in images]  # bad images fail before any model is loaded
    runner, what, used = model_runner(model, allow_cast=allow_cast, arch=arch)
    spec = used.input
    if embeds_preprocessing(Path(model)):  # the model resizes itself: each picture as it is, batch 1
        fed = [picture if spec.channels == 3 else to_gray(picture) for picture in pictures]
        logits = np.concatenate([runner.run(picture[None]) for picture in fed]).astype(np.float64)
        what += ", embedded preprocessing"
    else:
        batch = np.stack([rgb_to_input(fit_rgb(picture, mode or spec.fit, spec), spec) for picture in pictures])
        logits = np.asarray(runner.run(batch), dtype=np.float64)
    if top > logits.shape[1]:
        raise InputError(f"--top: expected at most {logits.shape[1]} (the model's classes), received {top}")
    names = _labels(model, labels, logits.shape[1])
    probabilities = softmax(logits)
    return [Prediction(str(path), top_k(p, top, names)) for path, p in zip(images, probabilities, strict=True)], what


def _labels(
    model: str | os.PathLike[str], labels: str | os.PathLike[str] | None, classes: int
) -> tuple[str, ...] | None:
    """``--labels``, else the names recorded at export (the manifest's ``labels``), else ``None``."""
    if labels is not None:
        return read_labels(labels, classes)
    from alexnet_export.artifacts import MANIFEST_NAME, artifact_manifest

    path = Path(model)
    recorded = artifact_manifest(path).get("labels") if path.exists() else None
    if recorded is None and path.exists():  # an artifact inside an export folder: the folder's manifest
        folder = artifact_manifest(path.parent) if (path.parent / MANIFEST_NAME).is_file() else {}
        recorded = folder.get("labels") if folder.get("format") == "export" else None
    if isinstance(recorded, list) and len(recorded) == classes and all(isinstance(n, str) for n in recorded):
        return tuple(recorded)
    return None
