"""The 1000 ImageNet (ILSVRC-2012) classes in BVLC AlexNet's output order, shipped as package data.

``imagenet_classes.tsv`` names its sources in its header: WordNet ids (sorted: the standard index
order, index 0 = n01440764 tench) and full synset names from timm's ImageNet info files, short unique
labels from torchvision's ``_IMAGENET_CATEGORIES``. A model with another class count (a fine-tuned
fc8) gets ``class N`` labels instead of wrong names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

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


def label(index: int, num_classes: int) -> str:
    """The ImageNet label of ``index`` for a 1000-class model, else ``class INDEX``."""
    if num_classes == IMAGENET_CLASSES:
        return imagenet_classes()[index].label
    return f"class {index}"


def top_k(probabilities: np.ndarray, k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image as ``{"index", "label", "probability"}``, most probable first.

    Ties keep the lower index first (a stable sort), so the order is deterministic.
    """
    order = np.argsort(-probabilities, kind="stable")[:k]
    classes = probabilities.shape[-1]
    return [{"index": int(i), "label": label(int(i), classes), "probability": float(probabilities[i])} for i in order]
