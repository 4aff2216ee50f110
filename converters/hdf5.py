"""Self-describing HDF5 weights (h5py only): a format that cannot run code, with per-tensor checksums.

Layout: one group per layer, ``/conv1/kernel`` and ``/conv1/bias`` float32 datasets in the canonical
layout (grouped HWIO conv kernels, ``(in, out)`` fc kernels with fc6 rows in (h, w, c) order). The
root carries ``format``, ``format_version``, ``layout`` and ``source_sha256``; every dataset carries
the sha256 of its C-order bytes, and conv kernels their ``groups``. Reading verifies all of them, so a
changed tensor or attribute is reported instead of silently exported.

Keras 3 ``.weights.h5`` files (``model.save_weights``, as :mod:`alexnet_export.keras_model` writes
them) are read here too, without Keras: each layer is ``/layers/<key>/vars`` with a ``name`` attribute
(``conv1`` .. ``fc8``) and datasets ``0`` (kernel) and ``1`` (bias). Keras conv kernels are grouped
HWIO and Dense kernels ``(in, out)`` after a channels-last Flatten, i.e. exactly the canonical layout.
Keras files carry no checksums: only this toolkit's own layout can prove a tensor unchanged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from converters.atomic import atomic_output
from converters.errors import InputError, WeightsError
from converters.spec import LAYER_NAMES
from converters.weights import AlexNetWeights, Source, build_weights, check_layer_names, file_sha256, groups_of

KERAS_SUFFIX = ".weights.h5"
FORMAT = "alexnet-export-weights"
FORMAT_VERSION = 1
LAYOUT = "conv HWIO grouped (kh, kw, C_in/G, C_out); fc (in, out); fc6 rows (h, w, c)"


def check_keras_name(path: Path) -> None:
    """Refuse a Keras weights path whose name does not end in ``.weights.h5`` (Keras' own rule).

    Raises:
        InputError: another name.

    """
    if not path.name.endswith(KERAS_SUFFIX):
        raise InputError(f"{path}: expected a file name ending in {KERAS_SUFFIX} (Keras' rule), received {path.name}")


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


def _read_keras(file: h5py.File, where: str) -> dict[str, tuple[object, object]]:
    """(kernel, bias) per layer of a Keras 3 ``.weights.h5`` file, found by each ``vars`` group's ``name``."""
    entries: dict[str, tuple[object, object]] = {}
    for key, layer in file["layers"].items():
        variables = layer.get("vars") if isinstance(layer, h5py.Group) else None
        if not isinstance(variables, h5py.Group) or len(variables) == 0:
            continue  # weightless layers: input, LRN, pooling, flatten, softmax
        name = variables.attrs.get("name")
        name = name.decode() if isinstance(name, bytes) else name
        if not isinstance(name, str):
            raise WeightsError(f"{where}: /layers/{key}/vars has no name attribute; expected a Keras 3 weights file")
        found = sorted(variables)
        if found != ["0", "1"]:
            raise WeightsError(
                f"{where}: layer {name} (/layers/{key}/vars): expected datasets 0 (kernel) and 1 (bias), "
                f"received {found}"
            )
        entries[name] = (np.asarray(variables["0"][()]), np.asarray(variables["1"][()]))
    check_layer_names(list(entries), where)
    return entries


def read_h5(path: str | os.PathLike[str], *, allow_cast: bool = False, check_finite: bool = True) -> AlexNetWeights:
    """Read HDF5 weights: :func:`write_h5`'s layout (format, checksums and attributes verified) or Keras 3's.

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
        if file.attrs.get("format") == FORMAT:
            check_layer_names(list(file), where)
            entries: dict[str, tuple[object, object]] = {
                name: (_read_dataset(file, name, "kernel", where), _read_dataset(file, name, "bias", where))
                for name in LAYER_NAMES
            }
            kind = "h5"
        elif isinstance(file.get("layers"), h5py.Group) and "format" not in file.attrs:
            entries = _read_keras(file, where)
            kind = "keras-h5"
        else:
            raise WeightsError(
                f"{where}: expected HDF5 weights with format={FORMAT!r} or a Keras 3 .weights.h5 file, "
                f"received format={file.attrs.get('format')!r} and no /layers group"
            )
    source = Source(path=where, sha256=file_sha256(path), format=kind)
    return build_weights(entries, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source)
