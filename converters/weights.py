"""The canonical AlexNet weight set and its validation against :mod:`converters.spec`.

One frozen :class:`AlexNetWeights` holds a (kernel, bias) pair of read-only, C-contiguous float32
arrays per layer ``conv1``..``fc8``: conv kernels in grouped HWIO layout ``(kh, kw, C_in/G, C_out)``,
fc kernels ``(in, out)`` with fc6 rows in ``(h, w, c)`` order (an NHWC flatten of pool5). Every
reader in ``converters`` produces one through :func:`build_weights`; everything downstream consumes it
and never re-derives layout facts from a file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from converters import groups as groups_mod
from converters.errors import WeightsError
from converters.spec import CONV_BY_NAME, LAYER_NAMES, expected_kernel_shape, input_channels

_CASTABLE = (np.dtype(np.float64), np.dtype(np.float16))


@dataclass(frozen=True)
class Source:
    """Where a weight set came from.

    Attributes:
        path: the file as the user named it.
        sha256: hex digest of the file's bytes.
        format: ``npy``, ``h5`` (this toolkit's HDF5) or ``keras-h5`` (a Keras 3 ``.weights.h5``).

    """

    path: str
    sha256: str
    format: str


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Layer:
    """Kernel and bias of one layer (read-only float32 arrays)."""

    kernel: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True, eq=False)
class AlexNetWeights:
    """The canonical weight set; build it with :func:`build_weights`.

    Attributes:
        layers: ``conv1``..``fc8`` in network order.
        source: the file the weights were read from, if any.

    """

    layers: Mapping[str, Layer]
    source: Source | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    def bit_equal(self, other: AlexNetWeights) -> bool:
        """Whether ``other`` holds the same layers with bit-identical kernels and biases."""
        return list(self.layers) == list(other.layers) and all(
            a.kernel.shape == b.kernel.shape
            and a.kernel.tobytes() == b.kernel.tobytes()
            and a.bias.tobytes() == b.bias.tobytes()
            for a, b in zip(self.layers.values(), other.layers.values(), strict=True)
        )

    @property
    def widths(self) -> dict[str, int]:
        """Output width of every layer (``fc8``'s width is the class count)."""
        return {name: int(layer.kernel.shape[-1]) for name, layer in self.layers.items()}

    @property
    def num_classes(self) -> int:
        """Number of output classes (columns of fc8)."""
        return int(self.layers["fc8"].kernel.shape[1])

    @property
    def parameter_count(self) -> int:
        """Total number of weights and biases."""
        return sum(layer.kernel.size + layer.bias.size for layer in self.layers.values())

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays."""
        return sum(layer.kernel.nbytes + layer.bias.nbytes for layer in self.layers.values())


def groups_of(name: str) -> int:
    """Number of channel groups of layer ``name`` (1 for fc layers)."""
    spec = CONV_BY_NAME.get(name)
    return spec.groups if spec else 1


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


def check_layer_names(names: list[str], where: str) -> None:
    """Refuse unknown layer names first, then missing ones, naming the file."""
    unknown = [n for n in names if n not in LAYER_NAMES]
    if unknown:
        raise WeightsError(
            f"{where}: unknown layer {unknown[0]!r}; expected only {', '.join(LAYER_NAMES)}"
        )
    missing = [n for n in LAYER_NAMES if n not in names]
    if missing:
        raise WeightsError(
            f"{where}: missing layer {', '.join(missing)}; expected all of {', '.join(LAYER_NAMES)}"
        )


def build_weights(
    arrays: Mapping[str, tuple[object, object]],
    *,
    where: str = "weights",
    allow_cast: bool = False,
    check_finite: bool = True,
    source: Source | None = None,
) -> AlexNetWeights:
    """Validate ``{layer: (kernel, bias)}`` against the spec and freeze it as :class:`AlexNetWeights`.

    Widths and the class count are read from the kernels' last axes; every other dimension must agree
    with the spec. A grouped layer given a dense block-diagonal kernel is converted to the grouped
    layout. The caller's arrays are not modified; float32 C-contiguous input is not copied.

    Args:
        arrays: kernel and bias per layer name.
        where: the file (or other origin) named in error messages.
        allow_cast: convert float64/float16 to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values (only ``inspect`` turns this off, to count them).
        source: provenance recorded on the result.

    Raises:
        WeightsError: a missing or unknown layer, a wrong rank, shape or dtype, or NaN/Inf values.

    """
    check_layer_names(list(arrays), where)
    checked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in LAYER_NAMES:
        kernel, bias = arrays[name]
        ndim = 4 if name in CONV_BY_NAME else 2
        checked[name] = (
            _check_array(kernel, f"{where}: layer {name} kernel", ndim, allow_cast),
            _check_array(bias, f"{where}: layer {name} bias", 1, allow_cast),
        )
    widths = {name: int(kernel.shape[-1]) for name, (kernel, _) in checked.items()}
    layers: dict[str, Layer] = {}
    for name, (kernel, bias) in checked.items():
        kernel = _canonical_kernel(name, kernel, widths, where)
        if bias.shape != (widths[name],):
            raise WeightsError(
                f"{where}: layer {name} bias: expected shape ({widths[name]},), received {bias.shape}"
            )
        if check_finite:
            _check_finite(kernel, f"{where}: layer {name} kernel")
            _check_finite(bias, f"{where}: layer {name} bias")
        layers[name] = Layer(kernel=_frozen(kernel), bias=_frozen(bias))
    return AlexNetWeights(layers=MappingProxyType(layers), source=source)


def _canonical_kernel(name: str, kernel: np.ndarray, widths: dict[str, int], where: str) -> np.ndarray:
    expected = expected_kernel_shape(name, widths)
    groups = groups_of(name)
    if groups > 1:
        c_in, c_out = input_channels(name, widths), widths[name]
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


_GROUP_KEY = re.compile(r"^(conv\d)_(\d+)$")


def merge_group_entries(
    entries: Mapping[str, tuple[object, object]], *, where: str = "weights"
) -> dict[str, tuple[object, object]]:
    """Merge per-group entries such as ``conv2_1``, ``conv2_2`` into one grouped ``conv2`` entry.

    Some converters store each group of a grouped layer as its own layer (numbered from 1). Kernels
    are concatenated along the output axis, biases likewise. Returns a new dict; the input is not
    modified.

    Raises:
        WeightsError: if a layer is given both whole and per group, the group numbers are not
            1..G, or the parts do not fit together.

    """
    merged: dict[str, tuple[object, object]] = {}
    parts: dict[str, dict[int, tuple[object, object]]] = {}
    for key, value in entries.items():
        match = _GROUP_KEY.match(key)
        if match and match.group(1) in CONV_BY_NAME:
            parts.setdefault(match.group(1), {})[int(match.group(2))] = value
        else:
            merged[key] = value
    for name, by_index in parts.items():
        expected = list(range(1, groups_of(name) + 1))
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
