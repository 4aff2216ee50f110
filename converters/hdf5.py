"""Self-describing HDF5 weights (h5py only): a format that cannot run code, with per-tensor checksums.

Layout: one group per layer, ``/conv1/kernel`` and ``/conv1/bias`` float32 datasets in the canonical
layout (grouped HWIO conv kernels, ``(in, out)`` fc kernels with the first dense layer's rows in the
architecture's flatten order), and ``/bn1/gamma``, ``beta``, ``mean``, ``variance`` for
BatchNormalization. The root carries ``format``, ``format_version``, ``layout``, ``source_sha256`` and
``architecture`` (JSON); every dataset carries the sha256 of its C-order bytes, and conv kernels their
``groups``. Reading verifies all of them, so a
changed tensor or attribute is reported instead of silently exported.

Keras 3 ``.weights.h5`` files (``model.save_weights``, as :mod:`alexnet_export.keras_model` writes
them) are read here too, without Keras: each layer is ``/layers/<key>/vars`` with a ``name`` attribute
(``conv1`` .. ``fc8``) and datasets ``0`` (kernel) and ``1`` (bias). Keras conv kernels are grouped
HWIO and Dense kernels ``(in, out)`` after a channels-last Flatten, i.e. exactly the canonical layout.
Keras files carry no checksums: only this toolkit's own layout can prove a tensor unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from converters.arch import DEFAULT_ARCH, PRESETS, Architecture, from_json
from converters.atomic import atomic_output
from converters.errors import InputError, WeightsError
from converters.weights import NORM_PARTS, AlexNetWeights, Source, build_weights, check_layer_names, file_sha256

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
    """Write ``weights`` as self-describing HDF5 (its architecture as JSON in the root), atomically.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.

    """
    with atomic_output(path, force=force) as tmp, h5py.File(tmp, "w", track_order=True) as out:
        out.attrs["format"] = FORMAT
        out.attrs["format_version"] = FORMAT_VERSION
        out.attrs["layout"] = LAYOUT
        out.attrs["source_sha256"] = weights.source.sha256 if weights.source else ""
        out.attrs["architecture"] = weights.arch.dumps()
        for name, layer in weights.layers.items():
            group = out.create_group(name)
            for part, array in (("kernel", layer.kernel), ("bias", layer.bias)):
                dataset = group.create_dataset(part, data=array, track_times=False)
                dataset.attrs["sha256"] = _digest(array)
            group["kernel"].attrs["groups"] = weights.groups_of(name)
        for name, norm in weights.norms.items():
            group = out.create_group(name)
            for part, array in zip(NORM_PARTS, norm.arrays(), strict=True):
                dataset = group.create_dataset(part, data=array, track_times=False)
                dataset.attrs["sha256"] = _digest(array)


MAX_EXPANSION = 64  # random float weights compress ~1.1x; a dataset inflating more than this is a bomb
MAX_DATASET_BYTES = 4 << 30


def check_storage(dataset: h5py.Dataset, what: str) -> None:
    """Refuse a dataset before reading it: stored outside the file, virtual, unwritten or inflating too much.

    Raises:
        WeightsError: external or virtual storage, no stored data (only a fill value), a compression ratio over
            :data:`MAX_EXPANSION`, or more than :data:`MAX_DATASET_BYTES`.

    """
    if dataset.external:
        raise WeightsError(f"{what}: stored in an external file ({dataset.external[0][0]!r}); refused")
    if dataset.is_virtual:
        raise WeightsError(f"{what}: a virtual dataset (data from other files); refused")
    if dataset.dtype.kind not in "fiu" or dataset.dtype.hasobject:
        raise WeightsError(f"{what}: expected numeric data, received {dataset.dtype}")
    declared = int(dataset.size) * dataset.dtype.itemsize
    if declared > MAX_DATASET_BYTES:
        raise WeightsError(f"{what}: declares {declared:,} bytes; expected at most {MAX_DATASET_BYTES:,}")
    stored = int(dataset.id.get_storage_size())
    if declared and not stored:
        raise WeightsError(f"{what}: no data stored (only a fill value for {declared:,} bytes); refused")
    if declared > MAX_EXPANSION * max(stored, 1) and declared > 1 << 20:
        raise WeightsError(
            f"{what}: {stored:,} stored bytes expand to {declared:,} (more than {MAX_EXPANSION}x); refused"
        )


def _read_dataset(file: h5py.File, name: str, part: str, where: str, arch: Architecture) -> np.ndarray:
    key = f"/{name}/{part}"
    dataset = file.get(key, getlink=True)
    if isinstance(dataset, h5py.ExternalLink | h5py.SoftLink):
        raise WeightsError(f"{where}: {key} is a link ({type(dataset).__name__}); expected a dataset in the file")
    dataset = file.get(key)
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError(f"{where}: missing dataset {key}; expected one per tensor of architecture {arch.name}")
    check_storage(dataset, f"{where}: dataset {key}")
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
    if part == "kernel" and int(dataset.attrs.get("groups", -1)) != arch.groups_of(name):
        raise WeightsError(
            f"{where}: attribute groups of {key}: expected {arch.groups_of(name)}, "
            f"received {dataset.attrs.get('groups')}"
        )
    return array


def _natural(key: str) -> tuple[str, int]:
    """``conv2d_10`` after ``conv2d_9``: Keras names layers ``kind``, ``kind_1``, ... and h5py sorts them as text."""
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", key)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def _keras_vars(file: h5py.File, where: str) -> list[tuple[str, list[np.ndarray]]]:
    """Every Keras layer with variables: (its name, its arrays in Keras' order)."""
    found = []
    for key, layer in file["layers"].items():
        variables = layer.get("vars") if isinstance(layer, h5py.Group) else None
        if not isinstance(variables, h5py.Group) or len(variables) == 0:
            continue  # weightless layers: input, pooling, flatten, dropout, softmax
        name = variables.attrs.get("name", key)
        name = name.decode() if isinstance(name, bytes) else str(name)
        keys = sorted(variables, key=lambda k: int(k) if k.isdigit() else -1)
        if keys not in (["0", "1"], ["0", "1", "2", "3"]):
            raise WeightsError(
                f"{where}: layer {name} (/layers/{key}/vars): expected datasets 0, 1 (kernel, bias) or 0..3 "
                f"(BatchNormalization), received {keys}"
            )
        datasets = [variables.get(k) for k in keys]
        for k, dataset in zip(keys, datasets, strict=True):
            if not isinstance(dataset, h5py.Dataset) or isinstance(variables.get(k, getlink=True), h5py.ExternalLink):
                raise WeightsError(f"{where}: /layers/{key}/vars/{k}: expected a dataset in the file")
            check_storage(dataset, f"{where}: /layers/{key}/vars/{k}")
        found.append((name, [np.asarray(dataset[()]) for dataset in datasets]))
    return found


def _read_keras(file: h5py.File, where: str, arch: Architecture) -> dict[str, Sequence[object]]:
    """Arrays per layer of a Keras 3 ``.weights.h5`` file.

    Layers named as the architecture names them are taken by name. Otherwise (Keras' own names such as
    ``conv2d_3``) they are matched by kind and order: convolutions, dense layers and BatchNormalization
    layers each in their natural name order, against the architecture's layers of that kind; the
    shapes are then checked by :func:`converters.weights.build_weights`.
    """
    found = _keras_vars(file, where)
    expected = arch.layer_names + arch.norm_names
    if sorted(name for name, _ in found) == sorted(expected):
        return dict(found)
    kinds: dict[str, list[tuple[str, list[np.ndarray]]]] = {"conv": [], "dense": [], "batchnorm": []}
    for name, arrays in sorted(found, key=lambda item: _natural(item[0])):
        kind = "batchnorm" if len(arrays) == 4 else "conv" if arrays[0].ndim == 4 else "dense"
        kinds[kind].append((name, arrays))
    slots = {
        "conv": list(arch.convs),
        "dense": [n for n in arch.layer_names if n not in arch.convs],
        "batchnorm": list(arch.norm_names),
    }
    entries: dict[str, Sequence[object]] = {}
    for kind, names in slots.items():
        if len(kinds[kind]) != len(names):
            raise WeightsError(
                f"{where}: expected {len(names)} {kind} layers for architecture {arch.name}, received "
                f"{len(kinds[kind])} ({', '.join(n for n, _ in kinds[kind]) or 'none'})"
            )
        for target, (_name, arrays) in zip(names, kinds[kind], strict=True):
            entries[target] = arrays
    return entries


def stored_architecture(path: str | os.PathLike[str]) -> Architecture | None:
    """The architecture recorded in this toolkit's HDF5 file, or ``None`` (Keras files, older files)."""
    try:
        with h5py.File(path, "r") as file:
            text = file.attrs.get("architecture")
    except OSError:
        return None
    if text is None:
        return None
    try:
        data = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    except ValueError:
        raise WeightsError(f"{path}: attribute architecture: expected JSON, received invalid JSON") from None
    return from_json(data, where=f"{path}: attribute architecture")


def read_h5(
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read HDF5 weights: :func:`write_h5`'s layout (format, checksums and attributes verified) or Keras 3's.

    This toolkit's files carry their architecture; ``arch`` must then agree with it. Keras files need
    ``arch`` (default: bvlc-alexnet).

    Raises:
        WeightsError: not this format, a missing dataset or layer, an unknown layer, a checksum or
            attribute mismatch, an architecture that disagrees, or a wrong shape or dtype.

    """
    path = Path(path)
    where = str(path)
    stored = stored_architecture(path)
    if stored is not None and arch is not None and stored.to_json() != arch.to_json():
        raise WeightsError(
            f"{where}: expected architecture {arch.name} (--arch), received a file written for {stored.name}"
        )
    arch = stored or arch or PRESETS[DEFAULT_ARCH]
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(f"{where}: cannot read as HDF5: {exc}") from None
    with file:
        if file.attrs.get("format") == FORMAT:
            check_layer_names(list(file), where, arch)
            entries: dict[str, Sequence[object]] = {
                name: [_read_dataset(file, name, part, where, arch) for part in ("kernel", "bias")]
                for name in arch.layer_names
            }
            for name in arch.norm_names:
                entries[name] = [_read_dataset(file, name, part, where, arch) for part in NORM_PARTS]
            kind = "h5"
        elif isinstance(file.get("layers"), h5py.Group) and "format" not in file.attrs:
            entries = _read_keras(file, where, arch)
            kind = "keras-h5"
        else:
            raise WeightsError(
                f"{where}: expected HDF5 weights with format={FORMAT!r} or a Keras 3 .weights.h5 file, "
                f"received format={file.attrs.get('format')!r} and no /layers group"
            )
    source = Source(path=where, sha256=file_sha256(path), format=kind)
    return build_weights(
        entries, arch=arch, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source
    )
