"""TFLite export of the canonical graph in four precisions, run with the LiteRT interpreter.

The converter reads a SavedModel of the canonical module (its ``serve`` function), so the signature is
``serving_default`` with input ``images`` (float32 NHWC, dynamic batch) and outputs ``logits`` and
``probabilities`` in every precision:

- ``fp32``: no optimisation; the weights as they are.
- ``fp16``: weights stored as float16 (``Optimize.DEFAULT`` + ``supported_types=[float16]``).
- ``int8-dynamic``: int8 weights, activations quantised on the fly (``Optimize.DEFAULT``).
- ``int8``: full-integer quantisation calibrated on a representative dataset in the network's own
  input space: images from a folder, preprocessed as the architecture says
  (:mod:`alexnet_export.preprocess`), or seeded synthetic images when no folder is given. The
  interface stays float32 (quantise/dequantise at the edges) so the contract holds; TFLite has no int8
  LRN kernel, so LRN ops stay float (``TFLITE_BUILTINS`` fallback).

TFLite files have no metadata field the LiteRT interpreter reads, so provenance goes in the manifest
beside the file (``OUT.tflite.alexnet-export.json``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_export.artifacts import check_output, file_artifact, sidecar_manifest_path
from alexnet_export.cache import cached_bytes
from alexnet_export.parity import PRECISIONS
from alexnet_export.preprocess import image_files, input_to_rgb, preprocess_batch, synthetic_images
from alexnet_export.progress import QUIET, Progress
from alexnet_export.quiet import fds_silenced
from converters.arch import GROUP_MODES, Architecture, check_choice, load_arch
from converters.errors import InputError
from converters.weights import AlexNetWeights, write_hashed

SIGNATURE_KEY = "serving_default"
SYNTHETIC_CALIBRATION = 16  # images when no folder is given
CALIBRATION_SEED = 1234


@dataclass(frozen=True)
class TFLiteOptions:
    """Options of a TFLite export.

    Attributes:
        precision: ``fp32``, ``fp16``, ``int8-dynamic`` or ``int8``.
        calibration: folder of images for ``int8`` (default: seeded synthetic images).
        groups: grouped-layer mode (``native``, ``split`` or ``dense``).
        embed_preprocessing: input uint8 RGB ``[batch, H, W, 3]``, preprocessed in-graph.

    """

    precision: str = "fp32"
    calibration: str | None = None
    groups: str = "native"
    embed_preprocessing: bool = False

    def check(self) -> None:
        """Refuse unknown values and a calibration folder without ``int8``, naming the option.

        Raises:
            InputError: a bad option value.

        """
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--groups", self.groups, GROUP_MODES)
        if self.calibration is not None and self.precision != "int8":
            raise InputError(f"--calibration: only used with --precision int8, received --precision {self.precision}")


@dataclass(frozen=True)
class Calibration:
    """The representative dataset of an ``int8`` export.

    Attributes:
        images: preprocessed float32 NHWC images.
        description: where they came from, for the summary and the manifest.
        sha256: digest of the image array, so the manifest pins the exact inputs.

    """

    images: np.ndarray
    description: str

    @property
    def sha256(self) -> str:
        """sha256 of the float32 image bytes."""
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()


def load_calibration(folder: str | None, arch: Architecture | None = None) -> Calibration:
    """Calibration images in the network's own input space: from ``folder``, or seeded synthetic ones.

    Raises:
        InputError: the folder is missing or empty, or an image cannot be decoded.

    """
    spec = (arch or load_arch(None)).input
    if folder is None:
        images = synthetic_images(SYNTHETIC_CALIBRATION, seed=CALIBRATION_SEED, spec=spec)
        return Calibration(
            images,
            f"{SYNTHETIC_CALIBRATION} seeded synthetic images (seed {CALIBRATION_SEED}; no --calibration folder)",
        )
    files = image_files(folder)
    return Calibration(
        preprocess_batch(files, spec=spec), f"{len(files)} images from {folder}, preprocessed as {spec.describe()}"
    )


def _representative(images: np.ndarray) -> Iterator[list[np.ndarray]]:
    for index in range(len(images)):
        yield [images[index : index + 1]]


PLACED_PRECISIONS = ("fp32", "fp16")


def convert(
    weights: AlexNetWeights,
    options: TFLiteOptions,
    calibration: Calibration | None = None,
    *,
    savedmodel: Path | None = None,
    placement: bool = True,
) -> bytes | memoryview:
    """The ``.tflite`` flatbuffer of ``weights`` at ``options.precision`` (placement: a view of the packed bytes).

    fp32 and fp16 convert the structure at two small widths and place the weights
    (:mod:`alexnet_export.exporters.tflite_placement`): the converter's bytes without pushing 244 MB
    through it. Where placement does not model a structure, and for the int8 precisions (which need
    the converter to quantise), the converter runs on the weights (``placement=False`` forces that).
    """
    options.check()
    if placement and options.precision in PLACED_PRECISIONS:
        from alexnet_export.exporters import tflite_placement
        from alexnet_export.stored import graph_params

        try:
            model = tflite_placement.placed_model(
                weights,
                lambda small: convert_small(small, options),
                lambda source: graph_params(source, options.groups)[1],
            )
        except tflite_placement.NotPlaceable:
            pass
        else:
            return tflite_placement.pack(model)
    return _convert_with_converter(weights, options, calibration, savedmodel=savedmodel)


_SMALL: dict[str, bytes] = {}


def small_key(small: AlexNetWeights, options: TFLiteOptions) -> str:
    """What a small conversion depends on, hashed: toolkit and TensorFlow versions, architecture, options, arrays."""
    from alexnet_export import __version__

    digest = hashlib.sha256()
    for part in (__version__, _tensorflow_version(), small.arch.dumps(), repr(sorted(asdict(options).items()))):
        digest.update(part.encode() + b"\0")
    for layer in small.layers.values():
        for array in (layer.kernel, layer.bias):
            digest.update(repr(array.shape).encode())
            digest.update(np.ascontiguousarray(array).data)  # the buffer itself, not a copy
    for norm in small.norms.values():
        for array in norm.arrays():
            digest.update(np.ascontiguousarray(array).data)  # the buffer itself, not a copy
    return digest.hexdigest()


def convert_small(small: AlexNetWeights, options: TFLiteOptions) -> bytes:
    """The converter's output for one of placement's small, seeded weight sets: converted once.

    The small sets are a function of the architecture and widths (:func:`converters.synthetic.scaled_like`
    with fixed seeds), so the conversion is kept for the process (``export`` and the ``verify`` that
    follows share it) and on disk (:mod:`alexnet_export.cache`), keyed by :func:`small_key`, for the next
    process. A cached entry is used only if it passes the TFLite trust check; placement then proves the
    layout on it bit for bit, so an entry that is not this conversion makes placement fall back to the
    converter.
    """
    from alexnet_export.trust import check_tflite_bytes

    key = small_key(small, options)
    if key not in _SMALL:
        _SMALL[key] = cached_bytes(
            "tflite-structure", f"{key}.tflite", lambda: _convert_with_converter(small, options), check_tflite_bytes
        )
    return _SMALL[key]


def _convert_with_converter(
    weights: AlexNetWeights,
    options: TFLiteOptions,
    calibration: Calibration | None = None,
    *,
    savedmodel: Path | None = None,
) -> bytes:
    """The converter's ``.tflite`` flatbuffer of ``weights`` at ``options.precision``.

    The converter reads a SavedModel of the canonical module: ``savedmodel`` when given (it must hold
    ``weights`` with ``options.groups``, as ``export`` does), else one written to a
    temporary folder. The module's variables are gone before the converter starts, so no second copy
    of the weights is alive during conversion: full size, TF 2.21, ``npy2tflite`` fp32 peaked at
    2,280 MiB this way against 2,516 MiB with ``from_concrete_functions`` on the live module
    (``benchmarks/npy2tflite.py``; the direct-script anchor: 2,275 and 2,271 MiB in those runs).

    Args:
        weights: the canonical weight set.
        options: export options.
        calibration: representative images for ``int8`` (loaded from ``options`` when omitted).
        savedmodel: an existing SavedModel of ``weights`` with these options.

    """
    from alexnet_export.quiet import import_tensorflow

    import_tensorflow()  # only here: placed fp32/fp16 exports from cached small conversions never need it
    import tensorflow as tf

    options.check()
    if savedmodel is None:
        from alexnet_export.exporters.savedmodel import SavedModelOptions, write_savedmodel

        with tempfile.TemporaryDirectory(prefix="alexnet-export-tflite-") as tmp:
            folder = Path(tmp) / "savedmodel"
            graph_options = SavedModelOptions(groups=options.groups, embed_preprocessing=options.embed_preprocessing)
            write_savedmodel(weights, folder, graph_options)
            return _convert_with_converter(weights, options, calibration, savedmodel=folder)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=[SIGNATURE_KEY])
    if options.precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if options.precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if options.precision == "int8":
        images = (calibration or load_calibration(options.calibration, weights.arch)).images
        if options.embed_preprocessing:
            images = input_to_rgb(images, weights.arch.input)
        converter.representative_dataset = lambda: _representative(images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    with fds_silenced(1, 2):  # the MLIR converter logs to both fds
        return bytes(converter.convert())


@dataclass(frozen=True)
class TFLiteSummary:
    """What :func:`export_tflite` wrote.

    Attributes:
        path: the ``.tflite`` file.
        size: its size in bytes.
        calibration: where the int8 calibration images came from (``None`` for other precisions).

    """

    path: Path
    size: int
    calibration: str | None


def export_tflite(
    weights: AlexNetWeights,
    out: str | os.PathLike[str],
    *,
    options: TFLiteOptions = TFLiteOptions(),
    force: bool = False,
    progress: Progress = QUIET,
    savedmodel: Path | None = None,
) -> TFLiteSummary:
    """Export ``weights`` to a ``.tflite`` file and its manifest, atomically.

    Calibration images are read and checked before TensorFlow does any work. ``savedmodel``: an
    existing SavedModel of ``weights`` with the same groups to convert from (see :func:`convert`).

    Raises:
        OutputExistsError: an output exists and ``force`` is false.
        InputError: a bad option, or an empty or unreadable calibration folder.

    """
    out = Path(out)
    options.check()
    check_output(out, force=force)
    check_output(sidecar_manifest_path(out), force=force)
    calibration = load_calibration(options.calibration, weights.arch) if options.precision == "int8" else None
    with progress.step(f"converting to TFLite ({options.precision})"):
        flatbuffer = convert(weights, options, calibration, savedmodel=savedmodel)
    extra: dict[str, Any] = {}
    if calibration is not None:
        extra = {"calibration": {"description": calibration.description, "sha256": calibration.sha256}}
    with (
        progress.step(f"writing {out}"),
        file_artifact(
            out, force=force, kind="tflite", weights=weights, options=asdict(options), versions=_versions(), extra=extra
        ) as tmp,
    ):
        write_hashed(tmp, [flatbuffer])  # its sha256 made while writing, for the manifest
    return TFLiteSummary(out, len(flatbuffer), calibration.description if calibration else None)


def _tensorflow_version() -> str:
    """The installed TensorFlow's version, read from its metadata (placed exports never import it)."""
    import importlib.metadata

    return importlib.metadata.version("tensorflow")


def _versions() -> dict[str, str]:
    return {"tensorflow": _tensorflow_version(), "numpy": np.__version__}
