"""The 1000 ImageNet (ILSVRC-2012) classes in BVLC AlexNet's output order, shipped as package data.

``imagenet_classes.tsv`` names its sources in its header: WordNet ids (sorted: the standard index
order, index 0 = n01440764 tench) and full synset names from timm's ImageNet info files, short unique
labels from torchvision's ``_IMAGENET_CATEGORIES``. A model with another class count (a fine-tuned
fc8) gets ``class N`` labels instead of wrong names, or the names of a ``--labels`` file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from converters.errors import InputError

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClass:
    """One class: its output index, WordNet id, short label and full synset names."""

    index: int
    wnid: str
    label: str
    synset: str


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes, index order."""
    text = resources.files("alexnet_export").joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    classes = tuple(ImageNetClass(int(index), wnid, label, synset) for index, wnid, label, synset in rows)
    if [c.index for c in classes] != list(range(IMAGENET_CLASSES)):
        raise RuntimeError("imagenet_classes.tsv is damaged: expected indices 0..999 in order")
    return classes


def label(index: int, num_classes: int, labels: Sequence[str] | None = None) -> str:
    """``labels[index]`` when given; else the ImageNet label for a 1000-class model; else ``class INDEX``."""
    if labels is not None:
        return labels[index]
    if num_classes == IMAGENET_CLASSES:
        return imagenet_classes()[index].label
    return f"class {index}"


def read_labels(path: str | os.PathLike[str], num_classes: int) -> tuple[str, ...]:
    """Class names from a text file: one per line in output order (blank lines and ``#`` comments skipped).

    Raises:
        InputError: the file is unreadable or holds another number of names than the model's classes.

    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--labels {path}: cannot read as UTF-8 text ({exc})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    if len(names) != num_classes:
        raise InputError(
            f"--labels {path}: expected {num_classes} class names (one per line, the model's classes), "
            f"received {len(names)}"
        )
    return names


def top_k(probabilities: np.ndarray, k: int, labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image as ``{"index", "label", "probability"}``, most probable first.

    Ties keep the lower index first (a stable sort), so the order is deterministic.
    """
    order = np.argsort(-probabilities, kind="stable")[:k]
    classes = probabilities.shape[-1]
    return [
        {"index": int(i), "label": label(int(i), classes, labels), "probability": float(probabilities[i])}
        for i in order
    ]
