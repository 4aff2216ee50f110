"""SavedModel export of any architecture's canonical graph (``serving_default``: images -> logits, probabilities)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from alexnet_export.artifacts import MANIFEST_NAME, atomic_output, check_output, manifest, write_manifest
from alexnet_export.graph import AlexNet, check_options
from alexnet_export.progress import QUIET, Progress
from converters.weights import AlexNetWeights

SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class SavedModelOptions:
    """Options of a SavedModel export.

    Attributes:
        groups: grouped-layer mode (``native``, ``split`` or ``dense``).
        embed_preprocessing: input uint8 RGB ``[batch, H, W, 3]``, preprocessed in-graph.

    """

    groups: str = "native"
    embed_preprocessing: bool = False


def save_module(module: AlexNet, path: Path) -> None:
    """Save ``module`` as a SavedModel at ``path`` with the contract's serving signature."""
    signature = module.signature()
    tf.saved_model.save(module, str(path), signatures={SIGNATURE_KEY: signature})


def write_savedmodel(weights: AlexNetWeights, path: Path, options: SavedModelOptions, module: Any = None) -> None:
    """Save the canonical module of ``weights`` at ``path`` (no manifest, not atomic).

    ``module``: that module when the caller built it (and keeps it); else it is built here and dropped
    before returning, so a caller that goes on (the TFLite converter) does not hold a second copy of the
    weights.
    """
    if module is None:
        module = AlexNet(weights, groups=options.groups, embed_preprocessing=options.embed_preprocessing)
    save_module(module, path)
    del module


def export_savedmodel(
    weights: AlexNetWeights,
    out_dir: str | os.PathLike[str],
    *,
    options: SavedModelOptions = SavedModelOptions(),
    force: bool = False,
    progress: Progress = QUIET,
    module: Any = None,
) -> Path:
    """Export ``weights`` as a SavedModel folder with a manifest, atomically.

    Args:
        weights: the canonical weight set.
        out_dir: the SavedModel folder to create.
        options: graph options.
        force: replace an existing ``out_dir``.
        progress: where to announce the steps.
        module: ``AlexNet(weights)`` with ``options``, when the caller built it to use it again
            (``export`` runs it for verify's graph rows); else it is built and dropped here.

    Returns:
        The SavedModel folder.

    Raises:
        OutputExistsError: ``out_dir`` exists and ``force`` is false.
        InputError: an unknown option value.

    """
    out = Path(out_dir)
    check_options(groups=options.groups)
    check_output(out, force=force)
    with atomic_output(out, force=force) as tmp:
        with progress.step(f"writing SavedModel {out}"):
            write_savedmodel(weights, tmp, options, module)
        with progress.step("hashing files for the manifest"):
            content = manifest(
                artifact=tmp, kind="savedmodel", weights=weights, options=asdict(options),
                versions={"tensorflow": tf.__version__, "numpy": np.__version__},
            )
            write_manifest(tmp / MANIFEST_NAME, content)
    return out
