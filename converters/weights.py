"""The canonical weight set of an architecture and its validation against :mod:`converters.arch`.

One frozen :class:`AlexNetWeights` holds a (kernel, bias) pair of read-only, C-contiguous float32
arrays per convolution and dense layer (``conv1``..``fc8`` for BVLC AlexNet) and the four statistics
of every BatchNormalization layer: conv kernels in grouped HWIO layout ``(kh, kw, C_in/G, C_out)``,
dense kernels ``(in, out)`` with the first dense layer's rows in the flatten order the architecture
states (``(h, w, c)``, an NHWC flatten, for every preset). It carries its architecture. Every
reader in ``converters`` produces one through :func:`build_weights`; everything downstream consumes it
and never re-derives layout facts from a file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from converters import groups as groups_mod
from converters.arch import (
    DEFAULT_ARCH,
    PRESETS,
    Architecture,
    BatchNorm,
    expected_kernel_shape,
    input_width,
    trace,
)
from converters.errors import WeightsError

_CASTABLE = (np.dtype(np.float64), np.dtype(np.float16))


@dataclass(frozen=True)
class Source:
    """Where a weight set came from.

    Attributes:
        path: the file as the user named it.
        sha256: hex digest of the file's bytes.
        format: ``npy``, ``h5`` (this toolkit's HDF5), ``keras-h5`` (a Keras 3 ``.weights.h5``), ``keras``
            (a ``.keras`` model), ``keras-h5-model`` (a legacy Keras full model) or ``tf-checkpoint``.
        origins: ``(layer, where in the file)`` for readers that map file entries to layers.

    """

    path: str
    sha256: str
    format: str
    origins: tuple[tuple[str, str], ...] = ()


_DIGESTS: dict[tuple[int, int, int, int, int], str] = {}


def _digest_key(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What :func:`file_sha256` remembers a digest by: device, inode, size, modification and change time."""
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


HASH_CHUNK = 16 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 16 MiB chunks into one buffer.

    Remembered for the process, keyed by the open file's device, inode, size and modification time
    and change time (nanoseconds), so an artifact that export writes, lists in its manifest and verify reports is read
    once, while any change to the file is hashed afresh. Reads and hashing release the GIL; the large
    chunks keep the times this takes it back few, so hashing on a thread beside GIL-bound work is not held up.
    """
    with open(path, "rb") as stream:
        key = _digest_key(os.fstat(stream.fileno()))
        if key in _DIGESTS:
            return _DIGESTS[key]
        digest = hashlib.sha256()
        buffer = bytearray(min(HASH_CHUNK, max(key[2], 1)))
        view = memoryview(buffer)
        while read := stream.readinto(buffer):
            digest.update(view[:read])
    after = os.stat(path)
    if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == key[2:]:  # unchanged while it was read
        _DIGESTS[key] = digest.hexdigest()
    return digest.hexdigest()


def write_hashed(path: str | os.PathLike[str], pieces: Iterable[bytes | memoryview], *, chunk: int = 16 << 20) -> str:
    """Write ``pieces`` to a new file at ``path`` and return its sha256, remembered for :func:`file_sha256`.

    The digest is computed on a second thread while the bytes are written (hashlib and file writes
    both release the GIL), so a manifest's sha256 of a 244 MB artifact costs no second read.
    """
    from concurrent.futures import ThreadPoolExecutor

    digest = hashlib.sha256()
    with ThreadPoolExecutor(1, thread_name_prefix="alexnet-export-sha256") as hasher, open(path, "wb") as stream:
        for piece in pieces:
            view = memoryview(piece).cast("B")
            for start in range(0, len(view), chunk):
                part = view[start : start + chunk]
                hashed = hasher.submit(digest.update, part)  # one worker: the parts are hashed in order
                stream.write(part)
                hashed.result()
    _DIGESTS[_digest_key(os.stat(path))] = digest.hexdigest()
    return digest.hexdigest()


def carry_sha256(path: str | os.PathLike[str], digest: str, before: os.stat_result) -> None:
    """Remember ``digest`` for ``path``, which a rename just moved there from where ``before`` was taken.

    A rename changes a file's ctime, so :func:`file_sha256` would read the renamed file again; the
    digest carries over only if device, inode, size and modification time are still ``before``'s.
    """
    after = _digest_key(os.stat(path))
    if after[:4] == _digest_key(before)[:4]:
        _DIGESTS[after] = digest


@dataclass(frozen=True, eq=False)
class Layer:
    """Kernel and bias of one layer (read-only float32 arrays)."""

    kernel: np.ndarray
    bias: np.ndarray


NORM_PARTS: tuple[str, ...] = ("gamma", "beta", "mean", "variance")


@dataclass(frozen=True, eq=False)
class Norm:
    """The four statistics of one BatchNormalization layer (read-only float32 arrays of one length)."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """gamma, beta, moving mean, moving variance (Keras' order)."""
        return self.gamma, self.beta, self.mean, self.variance


@dataclass(frozen=True, eq=False)
class AlexNetWeights:
    """The canonical weight set of one architecture; build it with :func:`build_weights`.

    Attributes:
        layers: kernel and bias of every convolution and dense layer, in network order.
        arch: the architecture the weights were validated against.
        norms: the BatchNormalization statistics, in network order.
        source: the file the weights were read from, if any.

    """

    layers: Mapping[str, Layer]
    arch: Architecture = field(default_factory=lambda: PRESETS[DEFAULT_ARCH])
    norms: Mapping[str, Norm] = field(default_factory=lambda: MappingProxyType({}))
    source: Source | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    def bit_equal(self, other: AlexNetWeights) -> bool:
        """Whether ``other`` holds the same layers and statistics, bit for bit."""
        mine, theirs = self.all_arrays(), other.all_arrays()
        return list(mine) == list(theirs) and all(
            a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in zip(mine.values(), theirs.values(), strict=True)
        )

    def all_arrays(self) -> dict[str, np.ndarray]:
        """Every array keyed ``layer/part`` (``conv1/kernel``, ``bn1/gamma``), in network order."""
        out: dict[str, np.ndarray] = {}
        for name, layer in self.layers.items():
            out[f"{name}/kernel"], out[f"{name}/bias"] = layer.kernel, layer.bias
        for name, norm in self.norms.items():
            out.update({f"{name}/{part}": array for part, array in zip(NORM_PARTS, norm.arrays(), strict=True)})
        return out

    @property
    def widths(self) -> dict[str, int]:
        """Output width of every layer with weights (the last one's width is the class count)."""
        return {name: int(layer.kernel.shape[-1]) for name, layer in self.layers.items()}

    @property
    def num_classes(self) -> int:
        """Number of output classes (columns of the last dense kernel)."""
        return int(list(self.layers.values())[-1].kernel.shape[-1])

    @property
    def parameter_count(self) -> int:
        """Total number of weights, biases and BatchNormalization statistics."""
        return sum(array.size for array in self.all_arrays().values())

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(array.nbytes for array in self.all_arrays().values())

    def groups_of(self, name: str) -> int:
        """Channel groups of layer ``name`` (1 for dense layers)."""
        return self.arch.groups_of(name)


def groups_of(name: str, arch: Architecture | None = None) -> int:
    """Number of channel groups of layer ``name`` in ``arch`` (default: bvlc-alexnet; 1 for dense)."""
    return (arch or PRESETS[DEFAULT_ARCH]).groups_of(name)


def _frozen(array: np.ndarray) -> np.ndarray:
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def _check_array(value: object, what: str, ndim: int, allow_cast: bool) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise WeightsError(f"{what}: expected a numpy array, received {type(value).__name__}")
    if value.ndim != ndim:
        raise WeightsError(
            f"{what}: expected a {ndim}-d array, received {value.ndim}-d with shape {value.shape}"
        )
    if value.dtype == np.float32:
        return value
    if value.dtype in _CASTABLE:
        if allow_cast:
            return value.astype(np.float32)
        raise WeightsError(
            f"{what}: expected float32, received {value.dtype} (pass --allow-cast to convert to float32)"
        )
    raise WeightsError(f"{what}: expected float32, received {value.dtype}")


def _check_finite(array: np.ndarray, what: str) -> None:
    if not np.isfinite(array).all():
        nans = int(np.isnan(array).sum())
        infs = int(np.isinf(array).sum())
        raise WeightsError(f"{what}: expected finite values, received {nans} NaN and {infs} Inf")


def check_layer_names(names: list[str], where: str, arch: Architecture | None = None) -> None:
    """Refuse unknown layer names first, then missing ones, naming the file and the architecture."""
    arch = arch or PRESETS[DEFAULT_ARCH]
    expected = arch.layer_names + arch.norm_names
    unknown = [n for n in names if n not in expected]
    if unknown:
        raise WeightsError(
            f"{where}: unknown layer {unknown[0]!r}; expected only {', '.join(expected)} (architecture {arch.name})"
        )
    missing = [n for n in expected if n not in names]
    if missing:
        raise WeightsError(
            f"{where}: missing layer {', '.join(missing)}; expected all of {', '.join(expected)} "
            f"(architecture {arch.name})"
        )


def _entry(value: Sequence[object], count: int, where: str, name: str) -> Sequence[object]:
    if len(value) != count:
        what = "[kernel, bias]" if count == 2 else "[gamma, beta, moving_mean, moving_variance]"
        raise WeightsError(f"{where}: layer {name}: expected {what}, received {len(value)} arrays")
    return value


def build_weights(
    arrays: Mapping[str, Sequence[object]],
    *,
    arch: Architecture | None = None,
    where: str = "weights",
    allow_cast: bool = False,
    check_finite: bool = True,
    source: Source | None = None,
) -> AlexNetWeights:
    """Validate ``{layer: arrays}`` against ``arch`` and freeze it as :class:`AlexNetWeights`.

    Layers with weights take ``(kernel, bias)``; BatchNormalization layers ``(gamma, beta, moving_mean,
    moving_variance)``. Widths and the class count are read from the kernels' last axes; every other
    dimension must agree with the architecture. A grouped layer given a dense block-diagonal kernel is
    converted to the grouped layout. The caller's arrays are not modified; float32 C-contiguous input is
    not copied.

    Args:
        arrays: arrays per layer name.
        arch: the architecture (default: bvlc-alexnet).
        where: the file (or other origin) named in error messages.
        allow_cast: convert float64/float16 to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values (only ``inspect`` turns this off, to count them).
        source: provenance recorded on the result.

    Raises:
        WeightsError: a missing or unknown layer, a wrong rank, shape or dtype, or NaN/Inf values.

    """
    arch = arch or PRESETS[DEFAULT_ARCH]
    check_layer_names(list(arrays), where, arch)
    checked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in arch.layer_names:
        kernel, bias = _entry(arrays[name], 2, where, name)
        ndim = 4 if name in arch.convs else 2
        checked[name] = (
            _check_array(kernel, f"{where}: layer {name} kernel", ndim, allow_cast),
            _check_array(bias, f"{where}: layer {name} bias", 1, allow_cast),
        )
    widths = {name: int(kernel.shape[-1]) for name, (kernel, _) in checked.items()}
    layers: dict[str, Layer] = {}
    for name, (kernel, bias) in checked.items():
        kernel = _canonical_kernel(arch, name, kernel, widths, where)
        if bias.shape != (widths[name],):
            raise WeightsError(
                f"{where}: layer {name} bias: expected shape ({widths[name]},), received {bias.shape}"
            )
        if check_finite:
            _check_finite(kernel, f"{where}: layer {name} kernel")
            _check_finite(bias, f"{where}: layer {name} bias")
        layers[name] = Layer(kernel=_frozen(kernel), bias=_frozen(bias))
    norms = _check_norms(arch, arrays, widths, where, allow_cast, check_finite)
    return AlexNetWeights(layers=MappingProxyType(layers), arch=arch, norms=norms, source=source)


def with_arch(weights: AlexNetWeights, arch: Architecture, *, where: str | None = None) -> AlexNetWeights:
    """``weights`` validated against another architecture (e.g. guerzhoy for bvlc weights); the same arrays.

    Returns ``weights`` itself when ``arch`` is already theirs.

    Raises:
        WeightsError: the arrays do not fit ``arch``.

    """
    if arch.to_json() == weights.arch.to_json():
        return weights
    arrays: dict[str, Sequence[object]] = {name: (lay.kernel, lay.bias) for name, lay in weights.layers.items()}
    arrays.update({name: norm.arrays() for name, norm in weights.norms.items()})
    origin = where or (weights.source.path if weights.source else "weights")
    return build_weights(arrays, arch=arch, where=origin, source=weights.source)


def _check_norms(
    arch: Architecture,
    arrays: Mapping[str, Sequence[object]],
    widths: Mapping[str, int],
    where: str,
    allow_cast: bool,
    check_finite: bool,
) -> Mapping[str, Norm]:
    shapes = trace(arch, widths)
    norms: dict[str, Norm] = {}
    for index, layer in enumerate(arch.layers):
        if not isinstance(layer, BatchNorm):
            continue
        channels = shapes[index][2]
        parts = []
        for part, value in zip(NORM_PARTS, _entry(arrays[layer.name], 4, where, layer.name), strict=True):
            what = f"{where}: layer {layer.name} {part}"
            array = _check_array(value, what, 1, allow_cast)
            if array.shape != (channels,):
                raise WeightsError(f"{what}: expected shape ({channels},), received {array.shape}")
            if check_finite:
                _check_finite(array, what)
            parts.append(_frozen(array))
        if check_finite and (parts[3] < 0).any():
            raise WeightsError(f"{where}: layer {layer.name} variance: expected values >= 0, received negative ones")
        norms[layer.name] = Norm(*parts)
    return MappingProxyType(norms)


def _canonical_kernel(
    arch: Architecture, name: str, kernel: np.ndarray, widths: dict[str, int], where: str
) -> np.ndarray:
    expected = expected_kernel_shape(arch, name, widths)
    groups = arch.groups_of(name)
    if groups > 1:
        c_in, c_out = input_width(arch, name, widths), widths[name]
        if c_in % groups or c_out % groups:
            raise WeightsError(
                f"{where}: layer {name}: expected input and output channels divisible by {groups} "
                f"groups, received {c_in} input and {c_out} output channels"
            )
        if kernel.shape == (*expected[:2], c_in, c_out):
            kernel = groups_mod.from_dense(kernel, groups, name=f"{where}: layer {name}")
    if kernel.shape != expected:
        raise WeightsError(
            f"{where}: layer {name} kernel: expected shape {expected}, received {kernel.shape}"
        )
    return kernel


_GROUP_KEY = re.compile(r"^(\w+?)_(\d+)$")


def merge_group_entries(
    entries: Mapping[str, Sequence[object]], *, where: str = "weights", arch: Architecture | None = None
) -> dict[str, Sequence[object]]:
    """Merge per-group entries such as ``conv2_1``, ``conv2_2`` into one grouped ``conv2`` entry.

    Some converters store each group of a grouped layer as its own layer (numbered from 1). Kernels
    are concatenated along the output axis, biases likewise. Returns a new dict; the input is not
    modified.

    Raises:
        WeightsError: if a layer is given both whole and per group, the group numbers are not
            1..G, or the parts do not fit together.

    """
    arch = arch or PRESETS[DEFAULT_ARCH]
    grouped = {name for name, conv in arch.convs.items() if conv.groups > 1}
    merged: dict[str, Sequence[object]] = {}
    parts: dict[str, dict[int, Sequence[object]]] = {}
    for key, value in entries.items():
        match = _GROUP_KEY.match(key)
        if match and match.group(1) in grouped and key not in arch.layer_names and len(value) == 2:
            parts.setdefault(match.group(1), {})[int(match.group(2))] = value
        else:
            merged[key] = value
    for name, by_index in parts.items():
        expected = list(range(1, arch.groups_of(name) + 1))
        if name in merged or sorted(by_index) != expected:
            raise WeightsError(
                f"{where}: layer {name}: expected either {name} or per-group entries "
                f"{', '.join(f'{name}_{i}' for i in expected)}, received "
                f"{', '.join(([name] if name in merged else []) + [f'{name}_{i}' for i in sorted(by_index)])}"
            )
        kernels = [by_index[i][0] for i in expected]
        biases = [by_index[i][1] for i in expected]
        if not all(isinstance(a, np.ndarray) for a in kernels + biases):
            raise WeightsError(f"{where}: layer {name}: expected numpy arrays in every group entry")
        merged[name] = (
            groups_mod.merge([np.asarray(k) for k in kernels], name=f"{where}: layer {name}"),
            np.concatenate([np.asarray(b) for b in biases]),
        )
    return merged
