"""Self-describing HDF5 weights (h5py only): a format that cannot run code, with per-tensor checksums.

Layout: one group per layer, ``/conv1/kernel`` and ``/conv1/bias`` float32 datasets in the canonical
layout (grouped HWIO conv kernels, ``(in, out)`` fc kernels with fc6 rows in (h, w, c) order). The
root carries ``format``, ``format_version``, ``layout`` and ``source_sha256``; every dataset carries
the sha256 of its C-order bytes, and conv kernels their ``groups``. Reading verifies all of them, so a
changed tensor or attribute is reported instead of silently exported.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from converters.atomic import atomic_output
from converters.errors import WeightsError
from converters.spec import LAYER_NAMES
from converters.weights import AlexNetWeights, Source, build_weights, check_layer_names, file_sha256, groups_of

FORMAT = "alexnet-export-weights"
FORMAT_VERSION = 1
LAYOUT = "conv HWIO grouped (kh, kw, C_in/G, C_out); fc (in, out); fc6 rows (h, w, c)"


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def write_h5(weights: AlexNetWeights, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write ``weights`` as self-describing HDF5, atomically.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.

    """
    with atomic_output(path, force=force) as tmp, h5py.File(tmp, "w", track_order=True) as out:
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["layout"] = LAYOUT
        out.attrs["source_sha256"] = weights.source.sha256 if weights.source else ""
        for name, layer in weights.layers.items():
            group = out.create_group(name)
            for part, array in (("kernel", layer.kernel), ("bias", layer.bias)):
                dataset = group.create_dataset(part, data=array, track_times=False)
                dataset.attrs["sha256"] = _digest(array)
            group["kernel"].attrs["groups"] = groups_of(name)


def _read_dataset(file: h5py.File, name: str, part: str, where: str) -> np.ndarray:
    key = f"/{name}/{part}"
    dataset = file.get(key)
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError(f"{where}: missing dataset {key}; expected /conv1/kernel .. /fc8/bias")
    array = np.asarray(dataset[()])
    stored = dataset.attrs.get("sha256")
    if stored is None:
        raise WeightsError(f"{where}: dataset {key} has no sha256 attribute; expected one per tensor")
    actual = _digest(array)
    if actual != str(stored):
        raise WeightsError(
            f"{where}: checksum mismatch in {key}: expected sha256 {str(stored)[:16]}... (stored), "
            f"received {actual[:16]}... (computed); the tensor was modified"
        )
    if part == "kernel" and int(dataset.attrs.get("groups", -1)) != groups_of(name):
        raise WeightsError(
            f"{where}: attribute groups of {key}: expected {groups_of(name)}, "
            f"received {dataset.attrs.get('groups')}"
        )
    return array


def read_h5(path: str | os.PathLike[str], *, allow_cast: bool = False, check_finite: bool = True) -> AlexNetWeights:
    """Read HDF5 weights written by :func:`write_h5`, verifying format, checksums and attributes.

    Raises:
        WeightsError: not this format, a missing dataset or layer, an unknown layer, a checksum or
            attribute mismatch, or a wrong shape or dtype.

    """
    path = Path(path)
    where = str(path)
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{where}: cannot read as HDF5: {exc}") from None
    with file:
        if file.attrs.get("format") != FORMAT:
            raise WeightsError(
                f"{where}: expected HDF5 weights with format={FORMAT!r}, received format={file.attrs.get('format')!r}"
            )
        check_layer_names(list(file), where)
        entries: dict[str, tuple[object, object]] = {
            name: (_read_dataset(file, name, "kernel", where), _read_dataset(file, name, "bias", where))
            for name in LAYER_NAMES
        }
    source = Source(path=where, sha256=file_sha256(path), format="h5")
    return build_weights(entries, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source)
