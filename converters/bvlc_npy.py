"""Safe reader and legacy-compatible writer of ``bvlc_alexnet.npy``.

The file (caffe-tensorflow's output, see ``shared/DESIGN.md``) is ``np.save`` of a dict, i.e. a
0-d object array whose payload is a Python 2 pickle: ``{"conv1": [W, b], ...}``. The usual loader,
``np.load(path, allow_pickle=True, encoding="latin1").item()``, executes whatever the pickle asks
for. :func:`read_npy` parses the ``.npy`` header itself and unpickles with :class:`SafeUnpickler`,
which resolves only the globals needed to rebuild numpy arrays; lists, tuples and dicts need none.

:func:`write_npy` writes the same layout byte for byte the way Python 2 numpy did (protocol 2,
``numpy.core.multiarray._reconstruct``, raw ``str`` payloads), so files made by this toolkit load in
the old scripts, and the synthetic stand-in exercises exactly the reader path of the real file.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import struct
import tokenize
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from converters.arch import Architecture
from converters.atomic import atomic_output
from converters.errors import UnsafePickleError, WeightsError
from converters.weights import AlexNetWeights, Source, build_weights, merge_group_entries

_RECONSTRUCT = cast(Callable[..., Any], np.ndarray((0,)).__reduce__()[0])
_FROMBUFFER = cast(Callable[..., Any], np.zeros(1).__reduce_ex__(5)[0])  # protocol 5 arrays


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol 2, restricted to latin-1."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


MAX_ARRAY_ELEMENTS = 1 << 28  # 1 GiB of float32 per array; full-size fc6 has 37.7 M elements


def _size(shape: object) -> int:
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise UnsafePickleError(f"refused an array shape {shape!r:.80}: expected a tuple of sizes")
    size = 1
    for dim in shape:
        size *= dim
        if size > MAX_ARRAY_ELEMENTS:
            raise UnsafePickleError(
                f"refused an array of shape {shape}: more than {MAX_ARRAY_ELEMENTS:,} elements declared"
            )
    return size


class _CheckedArray(np.ndarray):
    """What ``numpy.ndarray`` resolves to: rebuilt only from a state whose data is all there.

    ``_reconstruct`` creates it without calling ``__new__``; a pickle that calls ``numpy.ndarray(shape,
    dtype, buffer, offset, strides)`` itself (a zero-stride view declaring gigabytes) is refused.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _CheckedArray:
        raise UnsafePickleError(
            "refused a numpy.ndarray(...) call: arrays are rebuilt from their pickled state only "
            "(views with foreign buffers or zero strides are not)"
        )

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError(f"refused an array state of {type(state).__name__}: expected a 4- or 5-tuple")
        shape, dtype, data = state[-4], state[-3], state[-1]
        size = _size(shape)
        if not isinstance(dtype, np.dtype):
            raise UnsafePickleError(f"refused an array state with dtype {dtype!r:.80}")
        if dtype.hasobject:
            if shape != () or not isinstance(data, list) or len(data) != 1:
                raise UnsafePickleError(
                    f"refused an object array of shape {shape}: only np.save's 0-d holder of one object is expected"
                )
        elif not isinstance(data, bytes | bytearray) or len(data) != size * dtype.itemsize:
            given = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
            raise UnsafePickleError(
                f"refused an array of shape {shape} and dtype {dtype}: expected {size * dtype.itemsize} data bytes, "
                f"received {given}"
            )
        super().__setstate__(state)


def _reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for the one call np.save's pickles make: an empty array to fill."""
    if subtype is not _CheckedArray or shape != (0,) or dtype not in (b"b", "b"):
        raise UnsafePickleError(f"refused _reconstruct({subtype!r:.40}, {shape!r:.40}, {dtype!r:.20})")
    return cast(np.ndarray, _RECONSTRUCT(_CheckedArray, shape, dtype))


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """Protocol 5's ``_frombuffer``, with the buffer's length checked against the declared shape."""
    size = _size(shape)
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(buffer, bytes | bytearray | memoryview):
        raise UnsafePickleError(f"refused _frombuffer with dtype {dtype!r:.40}")
    if len(memoryview(buffer).cast("B")) != size * dtype.itemsize:
        raise UnsafePickleError(f"refused an array of shape {shape}: its buffer does not hold {size} elements")
    return cast(np.ndarray, _FROMBUFFER(buffer, dtype, shape, order))


# The only globals a pickled numpy array needs (Python 2 and 3 spellings), each checked. Nothing else resolves.
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _CheckedArray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class SafeUnpickler(pickle._Unpickler):
    """An unpickler that refuses every global outside :data:`ALLOWED_GLOBALS`.

    It is the standard library's pure-Python unpickler, not the C one: for a counted string (``BINSTRING``,
    how Python 2 pickled every array's bytes) the C unpickler reads the payload into a buffer of its own
    and then copies it into the ``bytes`` object, so every weight was copied twice; here the ``bytes`` the
    file object returns is the payload itself (``benchmarks/read_npy.py``, full size: 0.37 s and 301 MiB
    peak against 0.53 s and 331 MiB with the C unpickler). The file holds a few hundred opcodes, so
    interpreting them in Python costs nothing measurable, and :func:`scan_pickle` has bounded their number,
    nesting and lengths before this runs.
    """

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle API
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused global {module}.{name}: only numpy array reconstruction is allowed "
                "(the file may be hostile)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle API
        raise UnsafePickleError("refused a persistent id: only numpy arrays, lists, tuples and dicts")


class _HashingReader(io.RawIOBase):
    """Wraps a binary file; hashes every byte read through it."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.sha256.update(memoryview(buffer)[:count])
        return count or 0

    def drain(self) -> None:
        """Hash the rest of the file."""
        for chunk in iter(lambda: self._raw.read(1 << 20), b""):
            self.sha256.update(chunk)


def _open_checked(path: Path) -> io.BufferedReader:
    if not path.exists():
        raise WeightsError(f"{path}: no such file")
    if path.is_dir():
        raise WeightsError(f"{path}: expected a weights file, received a directory")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: expected an .npy weights file, received an empty file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise WeightsError(f"{path}: cannot open: {exc.strerror}") from None


MAX_PICKLE_DEPTH = 32  # np.save's dict of layer lists of arrays nests 5 deep
MAX_PICKLE_OPS = 1_000_000  # the real bvlc_alexnet.npy has a few hundred

# Arguments that are counted bytes: the scan reads the count and seeks past the payload.
_COUNTED = {"bytes1": 1, "string1": 1, "bytes4": 4, "string4": 4, "unicodestring4": 4, "bytes8": 8,
            "unicodestring8": 8, "bytearray8": 8}
_SIGNED = {"string4"}  # BINSTRING's count is a signed int32


def scan_pickle(stream: IO[bytes], where: str) -> None:
    """Walk the pickle's opcodes without building anything and refuse what the unpickler should never see.

    Python's unpickler recurses in C over nested containers (building, hashing, freeing them), so a
    small file of deeply nested tuples overflows the C stack and kills the process. Here the stack
    is simulated with a nesting depth per item (:mod:`pickletools`' stack effects; containers that
    grow in place keep their own depth), counted payloads are skipped rather than read, and the
    walk stops at :data:`MAX_PICKLE_DEPTH` or :data:`MAX_PICKLE_OPS`.

    Raises:
        WeightsError: too deep, too many opcodes, or not a pickle.

    """
    import pickletools

    mark = -1
    stack: list[int] = []
    memo: dict[object, int] = {}
    for count in range(MAX_PICKLE_OPS + 1):
        code = stream.read(1)
        if not code:
            raise WeightsError(f"{where}: truncated file: the pickle ends early")
        op = cast(Any, pickletools).code2op.get(code.decode("latin1"))  # not in typeshed
        if op is None:
            raise WeightsError(f"{where}: corrupt pickle: unknown opcode {code!r}")
        arg = None
        if op.arg is not None:
            size = _COUNTED.get(op.arg.name)
            if size is not None:
                raw = stream.read(size)
                length = int.from_bytes(raw, "little", signed=op.arg.name in _SIGNED)
                if len(raw) < size or length < 0:
                    raise WeightsError(f"{where}: corrupt pickle: bad length at opcode {op.name}")
                stream.seek(length, io.SEEK_CUR)
            else:
                try:
                    arg = op.arg.reader(stream)
                except ValueError as exc:
                    raise WeightsError(f"{where}: corrupt pickle: {exc}") from None
        if op.name == "STOP":
            return
        if op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):  # no stack effect: remember the top's depth
            if not stack:
                raise WeightsError(f"{where}: corrupt pickle: {op.name} on an empty stack")
            memo[len(memo) if op.name == "MEMOIZE" else arg] = stack[-1]
            continue
        if op.name == "DUP" and stack:
            stack.append(stack[-1])
            continue
        if op.name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg, 0))
            continue
        if op.name == "MARK":
            stack.append(mark)
            continue
        before, after = op.stack_before, op.stack_after
        popped: list[int] = []
        if pickletools.stackslice in before:
            while stack and stack[-1] != mark:
                popped.append(stack.pop())
            if not stack:
                raise WeightsError(f"{where}: corrupt pickle: {op.name} without a MARK")
            stack.pop()
            fixed = before[: before.index(pickletools.markobject)]
        else:
            fixed = before
        items = popped[:]
        for _ in fixed:
            if not stack:
                raise WeightsError(f"{where}: corrupt pickle: {op.name} on an empty stack")
            popped.append(stack.pop())
        grows = fixed and after and fixed[0] is after[0] and op.name not in ("DUP",)
        if grows:  # APPEND(S), SETITEM(S), ADDITEMS, BUILD: the container keeps its depth unless an item is deeper
            container = popped[-1]
            rest = items + popped[len(items) : -1]
            depth = max([container, *[d + 1 for d in rest]])
        else:
            depth = max(popped, default=-1) + 1
        if depth > MAX_PICKLE_DEPTH:
            raise WeightsError(
                f"{where}: refused a pickle nesting more than {MAX_PICKLE_DEPTH} levels deep (at opcode {count}, "
                f"{op.name}); the layer dict needs 5"
            )
        stack.extend([depth] * len(after))
    raise WeightsError(f"{where}: refused a pickle of more than {MAX_PICKLE_OPS} opcodes")


def _read_header(stream: IO[bytes], where: str) -> None:
    start = stream.read(6)
    if start != b"\x93NUMPY":
        raise WeightsError(f"{where}: expected an .npy file (starting with \\x93NUMPY), received {start!r}")
    version = tuple(stream.read(2))
    try:
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise WeightsError(f"{where}: expected .npy format version 1.0 or 2.0, received {version}")
    except (ValueError, SyntaxError, tokenize.TokenError) as exc:  # numpy parses the header with tokenize
        raise WeightsError(f"{where}: corrupt .npy header: {exc}") from None
    if dtype != np.dtype(object) or shape != ():
        raise WeightsError(
            f"{where}: expected a pickled dict of layers (object dtype, shape ()), received a "
            f"{dtype} array of shape {shape}"
        )


def _text(key: object) -> object:
    return key.decode("latin1") if isinstance(key, bytes) else key


_NORM_KEYS = (("gamma", "beta", "moving_mean", "moving_variance"), ("gamma", "beta", "mean", "variance"))


def _plain(value: object) -> object:
    """A checked array as a plain ndarray (same memory); anything else unchanged."""
    return value.view(np.ndarray) if isinstance(value, _CheckedArray) else value


def _entry(value: object, where: str, name: str) -> tuple[object, ...]:
    """``[W, b]``, ``(W, b)`` or ``{"weights", "biases"}``; BatchNormalization ``[gamma, beta, mean, var]``."""
    if isinstance(value, (list, tuple)) and len(value) in (2, 4):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        fields = {_text(k): v for k, v in value.items()}
        if set(fields) == {"weights", "biases"}:
            return _plain(fields["weights"]), _plain(fields["biases"])
        for keys in _NORM_KEYS:
            if set(fields) == set(keys):
                return tuple(_plain(fields[k]) for k in keys)
    shown = type(value).__name__ + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else "")
    raise WeightsError(
        f"{where}: layer {name}: expected [W, b], {{'weights', 'biases'}} or a BatchNormalization "
        f"[gamma, beta, moving_mean, moving_variance], received {shown}"
    )


def entries_from_pickle(obj: object, where: str) -> dict[str, tuple[object, ...]]:
    """Turn the unpickled object into ``{layer: arrays}``; keys may be str or bytes.

    ``np.save`` wraps the dict in a 0-d object array; a bare dict is accepted too.
    """
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj[()]
    if not isinstance(obj, dict):
        raise WeightsError(f"{where}: expected a dict of layers, received {type(obj).__name__}")
    entries: dict[str, tuple[object, ...]] = {}
    for key, value in obj.items():
        name = _text(key)
        if not isinstance(name, str):
            raise WeightsError(f"{where}: expected layer names as str or bytes, received {key!r}")
        if name in entries:
            raise WeightsError(f"{where}: layer {name} appears twice (as str and bytes)")
        entries[name] = _entry(value, where, name)
    return entries


def read_npy(
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read ``bvlc_alexnet.npy`` (or a file in its layout) without executing code from it.

    Args:
        path: the ``.npy`` file.
        allow_cast: convert float64/float16 arrays to float32 instead of refusing them.
        check_finite: refuse NaN and Inf values.
        arch: the architecture whose layer names the dict uses (default: bvlc-alexnet).

    Returns:
        The validated canonical weight set, with the file's sha256 as its source.

    Raises:
        UnsafePickleError: the pickle asked for a global other than numpy array reconstruction.
        WeightsError: the file is missing, empty, truncated, not an ``.npy`` or not AlexNet.

    """
    path = Path(path)
    where = str(path)
    with _open_checked(path) as plain:  # first a walk over the opcodes that builds nothing
        _read_header(plain, where)
        scan_pickle(plain, where)
    with _open_checked(path) as raw:
        reader = _HashingReader(raw)
        stream = io.BufferedReader(reader, buffer_size=1 << 16)
        _read_header(stream, where)
        try:
            obj = SafeUnpickler(stream, encoding="bytes").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{where}: {exc}") from None
        except EOFError:
            raise WeightsError(f"{where}: truncated file: the pickle ends early") from None
        except pickle.UnpicklingError as exc:
            if "truncated" in str(exc):
                raise WeightsError(f"{where}: truncated file: the pickle ends early") from None
            raise WeightsError(f"{where}: corrupt pickle: {exc}") from None
        except Exception as exc:
            raise WeightsError(f"{where}: corrupt pickle: {type(exc).__name__}: {exc}") from None
        reader.drain()  # bytes already buffered were hashed when read from the file
    entries = merge_group_entries(entries_from_pickle(obj, where), where=where, arch=arch)
    source = Source(path=where, sha256=reader.sha256.hexdigest(), format="npy")
    return build_weights(
        entries, arch=arch, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source
    )


# --- writer: the Python 2 protocol-2 byte layout of caffe-tensorflow's output --------------------


def _int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    return b"J" + struct.pack("<i", value)


def _str(value: bytes) -> bytes:
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<I", len(value)) + value


def _dtype(code: bytes, byteorder: bytes, flags: int) -> bytes:
    state = b"(" + _int(3) + _str(byteorder) + b"NNN" + b"J\xff\xff\xff\xff" * 2 + _int(flags) + b"tb"
    return b"cnumpy\ndtype\n" + _str(code) + _int(0) + _int(1) + b"\x87R" + state


_RECONSTRUCT_NDARRAY = (
    b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _int(0) + b"\x85" + _str(b"b") + b"\x87R"
)
_DTYPE_F4 = _dtype(b"f4", b"<", 0)
_DTYPE_OBJECT = _dtype(b"O8", b"|", 63)


def _write_array(out: IO[bytes], array: np.ndarray) -> None:
    assert array.dtype == np.float32 and array.flags.c_contiguous
    dims = b"".join(_int(d) for d in array.shape)
    shape = {1: dims + b"\x85", 2: dims + b"\x86", 3: dims + b"\x87"}.get(array.ndim, b"(" + dims + b"t")
    out.write(_RECONSTRUCT_NDARRAY + b"(" + _int(1) + shape + _DTYPE_F4 + b"\x89")
    out.write(b"T" + struct.pack("<I", array.nbytes))
    out.write(array.data.cast("B"))
    out.write(b"tb")


def write_pickle(out: IO[bytes], layers: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Write ``{name: [kernel, bias]}`` (BatchNormalization: four arrays) in a 0-d object array, as ``np.save`` does.

    The bytes are those of Python 2's protocol-2 pickler: ``str`` keys and array payloads as
    ``SHORT_BINSTRING``/``BINSTRING``; float32 arrays only.
    """
    out.write(b"\x80\x02" + _RECONSTRUCT_NDARRAY + b"(" + _int(1) + b")" + _DTYPE_OBJECT + b"\x89]}(")
    for name, arrays in layers.items():
        out.write(_str(name.encode("ascii")) + b"](")
        for array in arrays:
            _write_array(out, array)
        out.write(b"e")
    out.write(b"uatb.")


def write_npy(weights: AlexNetWeights, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write ``weights`` in the legacy ``bvlc_alexnet.npy`` layout, atomically.

    The file loads with ``np.load(path, allow_pickle=True, encoding="latin1").item()`` and gives
    ``{"conv1": [W, b], ...}``; the same weights always give the same bytes.

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.

    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": ()}
    )
    with atomic_output(path, force=force) as tmp, open(tmp, "wb") as out:
        out.write(header.getvalue())
        entries: dict[str, Sequence[np.ndarray]] = {n: (lay.kernel, lay.bias) for n, lay in weights.layers.items()}
        entries.update({name: norm.arrays() for name, norm in weights.norms.items()})
        write_pickle(out, entries)
