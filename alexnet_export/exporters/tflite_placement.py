"""TFLite fp32/fp16 without pushing the weights through the converter: convert the structure, place the weights.

The TFLite converter's cost grows with the weights (full-size fp32: ~3 s in MLIR plus ~2 s repacking
the 244 MB flatbuffer in Python), while the structure is the same at any width. So:

1. The converter runs twice on the same architecture at two small widths (hidden widths divided by
   ``d1`` and ``d2``, e.g. 16 and 8), with arbitrary distinct weights. Each gives a ``ModelT`` (the
   schema's generated object API, TensorFlow's ``schema_py_generated``, loaded by
   :mod:`alexnet_export.exporters.tflite_schema` without importing TensorFlow).
2. The two models are walked side by side. Everything must be equal except numbers that depend on the
   width: tensor shapes, a Reshape's target shape. Such a number is ``p + q / d`` (every AlexNet width
   is linear in ``1/d``), so the two points give its value at full width (``d = 1``), which must be a
   whole number. Anything else that differs (an op, an option, a float constant) means the structure
   depends on the width in another way: the caller falls back to the converter.
3. Every weight tensor (found by name, ``conv1/Conv2D``, ``fc6/MatMul``, ``.../BiasAdd``) gets the real
   array in the layout its op expects: conv filters OHWI, fully connected (out, in), grouped ``split``
   kernels cut along O, fp16 as float16 (round to nearest even, as the converter does). The layout is
   proven on the small model first: the small weights, placed the same way, must give the converter's
   own buffers bit for bit, or the caller falls back.
4. The model is packed with the same object API the converter's last pass (buffer deduplication) uses,
   so the bytes are those the converter writes (the structure hash in CONVERSION_METADATA recomputed);
   if two read-only buffers would be identical (which the converter would merge), the caller falls back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from alexnet_export.stored import strided, tiles
from converters.weights import AlexNetWeights

DIVISOR_PAIRS: tuple[tuple[int, int], ...] = ((16, 8), (8, 4), (4, 2))
FLOAT16 = 1  # schema TensorType


class NotPlaceable(Exception):
    """The structure depends on the width in a way placement does not model; use the converter."""


def _schema() -> Any:
    from alexnet_export.exporters.tflite_schema import schema

    return schema()


def _extrapolate(a: Any, b: Any, d1: int, d2: int, where: str) -> Any:
    """The value at divisor 1 of a number that is ``a`` at ``d1`` and ``b`` at ``d2``."""
    if isinstance(a, bool) or a == b:
        if a != b:
            raise NotPlaceable(f"{where}: {a} != {b}")
        return a
    q = (a - b) * d1 * d2 / (d2 - d1)
    value = a - q / d1 + q
    if abs(value - round(value)) > 1e-6:
        raise NotPlaceable(f"{where}: {a} at /{d1}, {b} at /{d2}: not linear in the width")
    return round(value)


def _walk(a: Any, b: Any, d1: int, d2: int, where: str) -> Any:
    """``a`` with every width-dependent integer extrapolated to full width; equal elsewhere."""
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        if not isinstance(b, (int, np.integer)):
            raise NotPlaceable(where)
        return _extrapolate(int(a), int(b), d1, d2, where)
    if isinstance(a, np.ndarray):
        if not isinstance(b, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
            raise NotPlaceable(f"{where}: arrays differ in shape or type")
        if np.array_equal(a, b):
            return a
        if a.dtype.kind not in "iu":
            raise NotPlaceable(f"{where}: non-integer values differ")
        return np.array([_extrapolate(int(x), int(y), d1, d2, where) for x, y in zip(a, b, strict=True)], a.dtype)
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            raise NotPlaceable(f"{where}: lists differ in length")
        return [_walk(x, y, d1, d2, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
    if hasattr(a, "__dict__") and not isinstance(a, type):
        if type(a) is not type(b):
            raise NotPlaceable(f"{where}: {type(a).__name__} != {type(b).__name__}")
        for key, value in vars(a).items():
            setattr(a, key, _walk(value, getattr(b, key), d1, d2, f"{where}.{key}"))
        return a
    if a != b:
        raise NotPlaceable(f"{where}: {a!r} != {b!r}")
    return a


def _name(tensor: Any) -> str:
    raw = tensor.name
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def weight_slots(
    model: Any, params: dict[str, tuple[np.ndarray, np.ndarray]], convs: set[str]
) -> dict[int, Slot]:
    """Buffer index -> its :class:`Slot` (byte length, and a writer of its bytes) from the arrays in ``params``.

    Each buffer gets its array in the layout the model's op expects (conv OHWI, dense (out, in), split
    parts cut along O, fp16 as float16); made only when called, so a full-size model never holds a
    second copy of every weight at once.

    Raises:
        NotPlaceable: a layer's tensors are not found, or not in a layout modelled here.

    """
    graph = model.subgraphs[0]
    constants = [
        t for t in graph.tensors if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)
    ]
    out: dict[int, Slot] = {}
    for name, (kernel, bias) in params.items():
        op = "Conv2D" if name in convs else "MatMul"
        kernels = sorted((t for t in constants if re.fullmatch(rf"{re.escape(name)}/{op}(_\d+)?", _name(t))), key=_name)
        biases = [
            t for t in constants if _name(t).startswith(f"{name}/") and len(t.shape) == 1 and "BiasAdd" in _name(t)
        ]
        if not kernels or not biases:
            raise NotPlaceable(f"{name}: weight tensors not found by name")
        if kernel.shape[-1] % len(kernels) or bias.shape[0] % len(biases):
            raise NotPlaceable(f"{name}: {len(kernels)} kernel tensors do not split its kernel evenly")
        layout = kernel.transpose(3, 0, 1, 2) if kernel.ndim == 4 else kernel.T  # a view: copied when made
        for tensors, whole in ((kernels, layout), (biases, bias)):
            size = whole.shape[0] // len(tensors)
            for part, tensor in enumerate(tensors):
                dtype = np.dtype("<f2" if tensor.type == FLOAT16 else "<f4")
                piece = whole[part * size : (part + 1) * size]
                if list(tensor.shape) != list(piece.shape):
                    raise NotPlaceable(f"{_name(tensor)}: shape {list(tensor.shape)} != {list(piece.shape)}")
                out[tensor.buffer] = Slot(piece, dtype)
    return out


class Slot:
    """One weight buffer: a view of the source array in the op's layout and the stored type, written on demand."""

    def __init__(self, piece: np.ndarray, dtype: np.dtype[Any]) -> None:
        self.piece = piece
        self.dtype = dtype
        self.length = piece.size * dtype.itemsize

    def write(self, out: np.ndarray) -> None:
        """Write the buffer's bytes into ``out`` (``length`` uint8s), cast and laid out, with no copy between."""
        target = out.view(self.dtype).reshape(self.piece.shape)
        if not strided(self.piece):
            np.copyto(target, self.piece, casting="same_kind")
            return
        for block in tiles(self.piece):  # a dense kernel's transpose, in cache-sized blocks
            np.copyto(target[block], self.piece[block], casting="same_kind")

    def make(self) -> np.ndarray:
        """The buffer's bytes as a new uint8 array."""
        out = np.empty(self.length, np.uint8)
        self.write(out)
        return out


def weight_buffers(
    model: Any, params: dict[str, tuple[np.ndarray, np.ndarray]], convs: set[str]
) -> dict[int, np.ndarray]:
    """:func:`weight_slots`, made: buffer index -> its bytes."""
    return {index: slot.make() for index, slot in weight_slots(model, params, convs).items()}


class _Length:
    """Stands for a buffer's data where only its length is read (the converter's structure hash)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


def _create_vector_in_place(builder: Any, slot: Slot) -> int:
    """``builder.CreateNumpyVector(slot.make())`` without making it: the bytes are written into the builder.

    The same steps as flatbuffers' ``CreateNumpyVector`` for a uint8 array (``StartVector``, move the
    head back by the length, fill, ``EndVector``), but the fill is :meth:`Slot.write` on a view of the
    builder's own bytes: fc6's 151 MB is neither copied to a contiguous array nor to ``bytes`` first.
    """
    builder.StartVector(1, slot.length, 1)
    builder.head = builder.head - slot.length
    view = np.frombuffer(builder.Bytes, np.uint8, count=slot.length, offset=builder.Head())
    slot.write(view)
    del view  # a live export of the bytearray would stop the builder from growing it
    builder.vectorNumElems = slot.length
    return int(builder.EndVector())


def _placed_buffer(slot: Slot) -> Any:
    """A schema ``BufferT`` whose bytes are written straight into the builder while it is packed."""
    schema = _schema()

    class Placed(schema.BufferT):  # type: ignore[name-defined]
        def materialize(self) -> np.ndarray:
            return slot.make()

        def Pack(self, builder: Any) -> Any:
            data = _create_vector_in_place(builder, slot)
            schema.BufferStart(builder)
            schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset)
            schema.BufferAddSize(builder, self.size)
            return schema.BufferEnd(builder)

    buffer = Placed()
    buffer.data = _Length(slot.length)
    return buffer


def _full_constant(data1: Any, data2: Any, tensors: list[Any], d1: int, d2: int, index: int) -> np.ndarray:
    """A non-weight constant at full width: integers extrapolated, or a uniform fill (a zero bias) widened.

    Raises:
        NotPlaceable: any other constant that depends on the width.

    """
    if not tensors:
        raise NotPlaceable(f"buffer {index} differs between widths and no tensor uses it")
    kind = tensors[0].type
    if kind == 2:  # INT32: shape-like constants
        values = np.frombuffer(np.asarray(data1).tobytes(), "<i4")
        others = np.frombuffer(np.asarray(data2).tobytes(), "<i4")
        full = _walk(values.copy(), others.copy(), d1, d2, f"buffer {index}")
        return np.frombuffer(full.astype("<i4").tobytes(), np.uint8)
    if kind in (0, FLOAT16):  # FLOAT32, FLOAT16: only a uniform fill (e.g. the zero bias of a split conv)
        dtype = "<f4" if kind == 0 else "<f2"
        values = np.frombuffer(np.asarray(data1).tobytes(), dtype)
        others = np.frombuffer(np.asarray(data2).tobytes(), dtype)
        if values.size and np.all(values == values[0]) and np.all(others == values[0]):
            count = int(np.prod(tensors[0].shape)) if len(tensors[0].shape) else 1
            return np.frombuffer(np.full(count, values[0], dtype).tobytes(), np.uint8)
    raise NotPlaceable(f"buffer {index} ({_name(tensors[0])}) differs between widths in its values")


def _bytes_of(buffer: Any) -> bytes:
    data = buffer.materialize() if hasattr(buffer, "materialize") else buffer.data
    return np.asarray(data).tobytes()


def _read_only_duplicates(model: Any) -> bool:
    """Whether two buffers of constant op inputs are identical (the converter's last pass would merge them)."""
    graph = model.subgraphs[0]
    inputs = {int(i) for op in graph.operators for i in (op.inputs if op.inputs is not None else []) if i >= 0}
    written = {int(i) for op in graph.operators for i in (op.outputs if op.outputs is not None else [])}
    written |= {int(i) for i in graph.inputs}
    indices = {graph.tensors[i].buffer for i in inputs - written}
    by_length: dict[int, list[Any]] = {}
    for index in sorted(indices):
        buffer = model.buffers[index]
        if buffer.data is not None and len(buffer.data):
            by_length.setdefault(len(buffer.data), []).append(buffer)
    for same in by_length.values():  # only buffers of equal length can be equal: hash those alone
        digests = [hashlib.md5(_bytes_of(d)).hexdigest() for d in same] if len(same) > 1 else []
        if len(set(digests)) < len(digests):
            return True
    return False


def full_structure(
    weights: AlexNetWeights,
    convert_small: Callable[[AlexNetWeights], bytes],
    graph_params: Callable[[AlexNetWeights], dict[str, tuple[np.ndarray, np.ndarray]]],
) -> tuple[Any, dict[int, np.ndarray]]:
    """The full-width ``ModelT`` of ``weights``' structure, and which buffers hold weights.

    Every shape and width-dependent constant is at full width; the weight buffers still hold the small
    conversion's arrays (:func:`placed_model` puts the real ones in).

    Raises:
        NotPlaceable: no divisor pair fits these widths, or the structure is not modelled here.

    """
    from converters.synthetic import scaled_like

    schema = _schema()
    for d1, d2 in DIVISOR_PAIRS:
        small1, small2 = scaled_like(weights, d1, seed=1), scaled_like(weights, d2, seed=2)
        if small1 is None or small2 is None:
            continue
        first = schema.ModelT.InitFromPackedBuf(bytearray(convert_small(small1)), 0)
        second = schema.ModelT.InitFromPackedBuf(bytearray(convert_small(small2)), 0)
        convs = set(weights.arch.convs)
        mine1 = weight_buffers(first, graph_params(small1), convs)
        mine2 = weight_buffers(second, graph_params(small2), convs)
        for model, mine in ((first, mine1), (second, mine2)):  # the layout, proven on the converter's own output
            for index, data in mine.items():
                if not np.array_equal(np.asarray(model.buffers[index].data), data):
                    raise NotPlaceable(f"buffer {index}: the converter's layout is not the one modelled")
        if set(mine1) != set(mine2):
            raise NotPlaceable("weight buffers differ between the two widths")
        metadata = {m.buffer for m in first.metadata or []}  # CONVERSION_METADATA holds a hash of the structure
        buffers1, buffers2 = first.buffers, second.buffers
        first.buffers = second.buffers = []
        _walk(first, second, d1, d2, "model")
        for index, (b1, b2) in enumerate(zip(buffers1, buffers2, strict=True)):
            if index in mine1 or index in metadata:
                continue
            if b1.data is None or np.array_equal(b1.data, b2.data):
                continue
            tensors = [t for t in first.subgraphs[0].tensors if t.buffer == index]
            b1.data = _full_constant(b1.data, b2.data, tensors, d1, d2, index)
        first.buffers = buffers1
        return first, mine1
    raise NotPlaceable(f"no width divisor pair of {DIVISOR_PAIRS} fits these widths")


def placed_model(
    weights: AlexNetWeights,
    convert_small: Callable[[AlexNetWeights], bytes],
    graph_params: Callable[[AlexNetWeights], dict[str, tuple[np.ndarray, np.ndarray]]],
) -> Any:
    """The full-size ``ModelT`` of ``weights``: :func:`full_structure` with the real weights placed.

    ``convert_small`` runs the converter on a small weight set (same architecture and options);
    ``graph_params`` gives a weight set's arrays as the graph stores them (folded, grouped mode applied).

    Raises:
        NotPlaceable: see :func:`full_structure`; or two weight buffers would be identical.

    """
    from alexnet_export.exporters.tflite_schema import refresh_conversion_metadata

    model, _ = full_structure(weights, convert_small, graph_params)
    for index, slot in weight_slots(model, graph_params(weights), set(weights.arch.convs)).items():
        model.buffers[index] = _placed_buffer(slot)
    if _read_only_duplicates(model):
        raise NotPlaceable("two weight buffers are identical (the converter would merge them)")
    refresh_conversion_metadata(model)
    return model


def pack(model: Any) -> memoryview:
    """The flatbuffer of ``model``, packed as the converter's buffer-deduplication pass packs it."""
    import flatbuffers

    size = sum(len(b.data) for b in model.buffers if b.data is not None)
    builder = flatbuffers.Builder(size + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return memoryview(builder.Bytes)[builder.Head() :]  # Output() and bytes() would each copy 244 MB
