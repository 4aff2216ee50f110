"""Checks that run on an artifact's bytes *before* any runtime loads it.

Nothing in an artifact runs before these pass: a SavedModel's ``saved_model.pb`` is parsed as a
protobuf and every op of its graph and function library is checked against the ops the toolkit's own
graphs use (file I/O, ``py_function``, custom resources, lookups and control flow are refused by
name); ONNX models must use the default domain, allow-listed op types and no external data outside
their folder; TFLite files must use builtin operators from the same kind of list. Declared sizes are
checked here too, so a runtime never allocates what a hostile file declares.

Each check raises :class:`InputError` with one line naming the file, the op and where it is.
"""

from __future__ import annotations

import mmap
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from converters.errors import InputError

MAX_GRAPH_BYTES = 64 * 2**20  # saved_model.pb holds the graph only (variables live beside it): ~100 kB here
MAX_WEIGHT_ELEMENTS = 2**28  # one tensor; the largest AlexNet tensor (fc6) has 37.7 M
MAX_TOTAL_ELEMENTS = 2**29  # all tensors of one artifact; full-size AlexNet has 61 M
MAX_ARTIFACT_BYTES = 4 * 2**30  # an .onnx or .tflite file

# The ops of the toolkit's own SavedModels (collected by exporting every preset with every option),
# the call and plumbing ops TensorFlow adds around them, and the few pure tensor ops other converters'
# AlexNets use (so ``diagnose`` opens them). No file, string, lookup, random, control-flow or Python op.
SAVEDMODEL_COMPUTE_OPS = frozenset(
    {
        "Add",
        "AddV2",
        "AvgPool",
        "BiasAdd",
        "Cast",
        "ConcatV2",
        "Const",
        "Conv2D",
        "ExpandDims",
        "FusedBatchNormV3",
        "GatherV2",
        "Identity",
        "IdentityN",
        "LRN",
        "MatMul",
        "MaxPool",
        "Maximum",
        "Mean",
        "Minimum",
        "Mul",
        "NoOp",
        "Pack",
        "Pad",
        "PartitionedCall",
        "Placeholder",
        "ReadVariableOp",
        "RealDiv",
        "Relu",
        "Relu6",
        "Reshape",
        "ResizeBilinear",
        "Rsqrt",
        "Shape",
        "Sigmoid",
        "Softmax",
        "Split",
        "SplitV",
        "Squeeze",
        "StatefulPartitionedCall",
        "StridedSlice",
        "Sub",
        "Tanh",
        "Transpose",
        "VarHandleOp",
    }
)
# What tf.saved_model.save puts in its ``_traced_save``/``_traced_restore`` functions, which only the
# saver (saver_def) reaches: allowed there and nowhere else.
SAVEDMODEL_SAVER_OPS = frozenset(
    {
        "AssignVariableOp",
        "DisableCopyOnRead",
        "MergeV2Checkpoints",
        "RestoreV2",
        "SaveV2",
        "Select",
        "ShardedFilename",
        "StaticRegexFullMatch",
        "StringJoin",
    }
)
SAVEDMODEL_OBJECT_KINDS = frozenset({"user_object", "function", "bare_concrete_function", "variable"})
SAVEDMODEL_USER_OBJECTS = frozenset({"_generic_user_object", "signature_map"})

# Default-domain ONNX ops: the toolkit's (every preset, option and opset) and the usual pure CNN ops of
# other converters; no control flow (If/Loop/Scan carry subgraphs), no random or sequence ops.
ONNX_OPS = frozenset(
    {
        "Add",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Clip",
        "Concat",
        "Constant",
        "Conv",
        "Div",
        "Dropout",
        "Flatten",
        "Gather",
        "Gemm",
        "GlobalAveragePool",
        "Identity",
        "LRN",
        "MatMul",
        "Max",
        "MaxPool",
        "Min",
        "Mul",
        "Pad",
        "ReduceMean",
        "Relu",
        "Reshape",
        "Resize",
        "Shape",
        "Sigmoid",
        "Slice",
        "Softmax",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Tanh",
        "Transpose",
        "Unsqueeze",
    }
)
# TFLite builtins: the toolkit's (every precision) and the usual pure CNN ops; no control flow
# (WHILE/IF/CALL_ONCE), resource variables, hash tables, random ops or custom ops.
TFLITE_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CAST",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "DEQUANTIZE",
        "DIV",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "GATHER",
        "LOCAL_RESPONSE_NORMALIZATION",
        "LOGISTIC",
        "MAX_POOL_2D",
        "MAXIMUM",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PADV2",
        "QUANTIZE",
        "RELU",
        "RELU6",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "TANH",
        "TRANSPOSE",
        "UNPACK",
    }
)


def _count(shape: Iterable[int]) -> int:
    total = 1
    for dim in shape:
        total *= max(int(dim), 0)
    return total


# --- SavedModel ---------------------------------------------------------------------------------


def read_savedmodel_proto(folder: Path) -> Any:
    """``folder/saved_model.pb`` parsed as a ``SavedModel`` protobuf (nothing imported or run).

    Raises:
        InputError: missing, too large, or not a SavedModel protobuf.

    """
    pb = folder / "saved_model.pb"
    if not pb.is_file():
        raise InputError(f"{folder}: expected a SavedModel folder (saved_model.pb), received a folder without one")
    size = pb.stat().st_size
    if size > MAX_GRAPH_BYTES:
        raise InputError(
            f"{pb}: expected a graph of at most {MAX_GRAPH_BYTES // 2**20} MiB, received {size / 2**20:.0f} MiB"
        )
    return parse_savedmodel(pb.read_bytes(), pb)


def parse_savedmodel(data: bytes, where: Path) -> Any:
    """``data`` parsed as a ``SavedModel`` protobuf with one MetaGraph (``where`` names it in errors).

    Raises:
        InputError: not a SavedModel protobuf, or not one MetaGraph.

    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{where}: expected a SavedModel protobuf, received unreadable data ({exc})") from None
    if len(proto.meta_graphs) != 1:
        raise InputError(f"{where}: expected one MetaGraph, received {len(proto.meta_graphs)}")
    return proto


def _called(node: Any) -> list[str]:
    """Names of the library functions a node refers to (``f`` of a call, any func attribute)."""
    found = []
    for value in node.attr.values():
        if value.HasField("func"):
            found.append(value.func.name)
        found.extend(f.name for f in value.list.func)
    return found


def _reachable(roots: Iterable[str], library: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    todo = [name for name in roots if name in library]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(c for node in library[name].node_def for c in _called(node) if c in library and c not in seen)
    return seen


def check_savedmodel(folder: Path) -> Any:
    """Refuse a SavedModel that uses any op, object or size the toolkit's SavedModels do not; return its proto.

    Checks, before anything is loaded: one MetaGraph; no assets; every object of the object graph a
    plain module, function, signature map or variable (no custom resources, no registered classes,
    no Keras layers whose Python is revived on load); every variable's declared size; every op of the
    main graph and of every library function in :data:`SAVEDMODEL_COMPUTE_OPS`, with the saver's
    file ops allowed only in the functions the saver alone reaches.

    Raises:
        InputError: naming the op and the function (or the object) that is not allowed.

    """
    proto = read_savedmodel_proto(folder)
    check_savedmodel_proto(proto, folder / "saved_model.pb")
    return proto


def check_savedmodel_proto(proto: Any, where: Path) -> None:
    """:func:`check_savedmodel`'s checks of a parsed ``SavedModel`` (``where`` names it in errors).

    Raises:
        InputError: naming the op and the function (or the object) that is not allowed.

    """
    meta = proto.meta_graphs[0]
    if meta.asset_file_def:
        raise InputError(f"{where}: expected no assets, received {len(meta.asset_file_def)} (a file the graph reads)")
    total = 0
    for index, obj in enumerate(meta.object_graph_def.nodes):
        kind = obj.WhichOneof("kind")
        if kind not in SAVEDMODEL_OBJECT_KINDS:
            raise InputError(f"{where}: object {index} is a {kind}, which the toolkit's SavedModels never hold")
        if obj.registered_name or obj.HasField("serialized_user_proto"):
            raise InputError(f"{where}: object {index} is a registered class ({obj.registered_name}), refused")
        if kind == "user_object" and obj.user_object.identifier not in SAVEDMODEL_USER_OBJECTS:
            raise InputError(
                f"{where}: object {index} is a {obj.user_object.identifier!r}, whose Python code loading would run"
            )
        if kind == "variable":
            shape = [d.size for d in obj.variable.shape.dim]
            count = _count(shape)
            total += count
            if obj.variable.shape.unknown_rank or any(d < 0 for d in shape) or count > MAX_WEIGHT_ELEMENTS:
                raise InputError(
                    f"{where}: variable {obj.variable.name!r}: expected a known shape of at most "
                    f"{MAX_WEIGHT_ELEMENTS} values, received {shape}"
                )
    if total > MAX_TOTAL_ELEMENTS:
        raise InputError(f"{where}: expected at most {MAX_TOTAL_ELEMENTS} weight values, received {total}")
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    saver = meta.saver_def
    saver_nodes = {name.split(":")[0] for name in (saver.save_tensor_name, saver.restore_op_name) if name}
    others = [c for node in meta.graph_def.node if node.name not in saver_nodes for c in _called(node)]
    others += [c for obj in meta.object_graph_def.nodes for c in _object_functions(obj)]
    saver_roots = [c for node in meta.graph_def.node if node.name in saver_nodes for c in _called(node)]
    saver_only = _reachable(saver_roots, library) - _reachable(others, library)
    for node in meta.graph_def.node:
        _check_op(node, SAVEDMODEL_COMPUTE_OPS, f"{where}: main graph")
    for name, function in library.items():
        allowed = SAVEDMODEL_COMPUTE_OPS | SAVEDMODEL_SAVER_OPS if name in saver_only else SAVEDMODEL_COMPUTE_OPS
        for node in function.node_def:
            _check_op(node, allowed, f"{where}: function {name}")
            missing = [c for c in _called(node) if c not in library]
            if missing:
                raise InputError(
                    f"{where}: function {name}: node {node.name!r} calls {missing[0]!r}, not in the library"
                )


def _object_functions(obj: Any) -> list[str]:
    kind = obj.WhichOneof("kind")
    if kind == "function":
        return list(obj.function.concrete_functions)
    if kind == "bare_concrete_function":
        return [obj.bare_concrete_function.concrete_function_name]
    return []


def _check_op(node: Any, allowed: frozenset[str], where: str) -> None:
    if node.op not in allowed:
        raise InputError(
            f"{where}: op {node.op} ({node.name!r}) is not one the toolkit's graphs use; refused before loading"
        )


# --- ONNX ---------------------------------------------------------------------------------------


def _confined(base: Path, location: str) -> Path | None:
    if not location or Path(location).is_absolute() or ".." in Path(location).parts:
        return None
    target = (base / location).resolve()
    root = base.resolve()
    return target if target.is_relative_to(root) else None


def check_onnx_model(model: Any, path: Path) -> None:
    """Refuse an ONNX model outside the default domain, the allow-listed ops, or its folder.

    Raises:
        InputError: naming the node, domain, op or external-data location.

    """
    from onnx import TensorProto

    graph = model.graph
    if not graph.node or not graph.input or not graph.output:  # an empty file parses as such a model
        raise InputError(
            f"{path}: expected an ONNX graph with nodes, inputs and outputs, received {len(graph.node)} nodes, "
            f"{len(graph.input)} inputs and {len(graph.output)} outputs"
        )
    # Other domains may be imported (tf2onnx always imports ai.onnx.ml) but no node may use one.
    if len(model.functions):
        raise InputError(f"{path}: expected no model-local functions, received {len(model.functions)}")
    if len(model.graph.sparse_initializer):
        raise InputError(f"{path}: expected no sparse initializers, received {len(model.graph.sparse_initializer)}")
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise InputError(f"{path}: node {node.name!r}: expected the default domain, received {node.domain!r}")
        if node.op_type not in ONNX_OPS:
            raise InputError(
                f"{path}: node {node.name!r}: op {node.op_type} is not one the toolkit's graphs use; refused"
            )
        if any(attr.type in (5, 10) or attr.g.node or len(attr.graphs) for attr in node.attribute):  # GRAPH(S)
            raise InputError(f"{path}: node {node.name!r}: expected no subgraphs, received one")
    total = 0
    for tensor in model.graph.initializer:
        count = _count(tensor.dims)
        total += count
        if count > MAX_WEIGHT_ELEMENTS or any(d < 0 for d in tensor.dims):
            raise InputError(
                f"{path}: initializer {tensor.name!r}: expected at most {MAX_WEIGHT_ELEMENTS} values, "
                f"received shape {list(tensor.dims)}"
            )
        if tensor.data_location == TensorProto.EXTERNAL:
            info = {entry.key: entry.value for entry in tensor.external_data}
            target = _confined(path.parent, info.get("location", ""))
            if target is None or not target.is_file():
                raise InputError(
                    f"{path}: initializer {tensor.name!r}: external data {info.get('location', '')!r} is not a file "
                    "inside the model's folder; refused"
                )
            try:
                end = int(info.get("offset", 0)) + int(info.get("length", 0))
            except ValueError:
                raise InputError(
                    f"{path}: initializer {tensor.name!r}: external data offset/length not integers"
                ) from None
            if end > target.stat().st_size:
                raise InputError(f"{path}: initializer {tensor.name!r}: external data ends past its file")
    if total > MAX_TOTAL_ELEMENTS:
        raise InputError(f"{path}: expected at most {MAX_TOTAL_ELEMENTS} weight values, received {total}")


# Parsed ONNX/TFLite models by stamp, inside parsed_once(); per thread, since export verifies its ONNX file on a
# thread of its own while this one checks the TFLite file.
_LOCAL = threading.local()


def _kept() -> dict[tuple[str, str, int, int], Any] | None:
    return getattr(_LOCAL, "kept", None)


@contextmanager
def parsed_once() -> Iterator[None]:
    """Within the block, :func:`load_onnx` and :func:`read_tflite` read each unchanged file once.

    ``verify`` reads an ONNX file's metadata, structure and weights: one 244 MB parse instead of three
    (a TFLite file: one read instead of two).
    Callers must not modify the model; what was kept goes when the outermost block ends. Each thread has
    its own block: one thread's leaving it never drops what another keeps.
    """
    outer = _kept()
    _LOCAL.kept = {} if outer is None else outer
    try:
        yield
    finally:
        if outer is None:
            _LOCAL.kept = None


def load_onnx(path: Path) -> Any:
    """The ONNX model at ``path`` (external data not loaded), checked by :func:`check_onnx_model`.

    Inside :func:`parsed_once`, an unchanged file is parsed and checked once.

    Raises:
        InputError: unreadable, too large, or refused.

    """
    return _once(path, "onnx", _load_onnx)


def _once(path: Path, fmt: str, load: Callable[[Path], Any]) -> Any:
    """``load(path)``; inside :func:`parsed_once`, kept per file stamp and recorded as checked."""
    kept = _kept()
    if kept is None:
        return load(path)
    stamp = _stamp(path, fmt)
    if stamp not in kept:
        kept[stamp] = load(path)
        _PASSED.add(stamp)
    return kept[stamp]


def _load_onnx(path: Path) -> Any:
    """The ONNX file at ``path``, parsed from a read-only mapping of it, then checked.

    Protobuf copies what it keeps out of the mapping, so the file is not first read into 244 MB of
    fresh memory (0.12 s against 0.26 s for ``onnx.load`` at full size).
    """
    import onnx

    size = path.stat().st_size
    if size > MAX_ARTIFACT_BYTES:
        raise InputError(f"{path}: expected an ONNX file of at most 4 GiB, received {size / 2**30:.1f} GiB")
    model = onnx.ModelProto()
    try:
        with open(path, "rb") as stream:
            if size:  # an empty file cannot be mapped; it parses as an empty model, which the check refuses
                with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
                    model.ParseFromString(view)
    except Exception as exc:
        raise InputError(f"{path}: expected an ONNX model, received unreadable data ({exc})") from None
    check_onnx_model(model, path)
    return model


# --- TFLite -------------------------------------------------------------------------------------


def tflite_op_names() -> dict[int, str]:
    """Builtin operator code -> name, from the schema shipped with LiteRT."""
    from ai_edge_litert import schema_py_generated as schema

    return {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}


def check_tflite_bytes(buffer: bytes | mmap.mmap, path: Path) -> Any:
    """Refuse a TFLite flatbuffer with custom or non-allow-listed operators, or more than one subgraph.

    Returns the parsed ``schema.Model``.

    Raises:
        InputError: naming the operator.

    """
    from ai_edge_litert import schema_py_generated as schema

    if len(buffer) < 8 or buffer[4:8] != b"TFL3":
        raise InputError(f"{path}: expected a TFLite flatbuffer (identifier TFL3), received other data")
    names = tflite_op_names()
    try:
        model = schema.Model.GetRootAs(buffer, 0)
        codes = []
        for index in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(index)
            number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = names.get(number, f"code {number}")
            if number == schema.BuiltinOperator.CUSTOM or code.CustomCode():
                custom = (code.CustomCode() or b"").decode(errors="replace")
                raise InputError(f"{path}: operator {index} is a custom op ({custom!r}); only builtin ops are run")
            if name not in TFLITE_OPS:
                raise InputError(f"{path}: operator {index} is {name}, not one the toolkit's graphs use; refused")
            codes.append(name)
        if model.SubgraphsLength() != 1:
            raise InputError(f"{path}: expected one subgraph, received {model.SubgraphsLength()}")
        graph = model.Subgraphs(0)
        total = 0
        for index in range(graph.TensorsLength()):
            tensor = graph.Tensors(index)
            count = _count(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
            total += count
            if count > MAX_WEIGHT_ELEMENTS:
                raise InputError(
                    f"{path}: tensor {index}: expected at most {MAX_WEIGHT_ELEMENTS} values, received {count}"
                )
        if total > MAX_TOTAL_ELEMENTS * 2:
            raise InputError(f"{path}: expected at most {MAX_TOTAL_ELEMENTS * 2} tensor values, received {total}")
        for index in range(graph.OperatorsLength()):
            if graph.Operators(index).OpcodeIndex() >= len(codes):
                raise InputError(
                    f"{path}: operator {index} names opcode {graph.Operators(index).OpcodeIndex()}, of {len(codes)}"
                )
    except InputError:
        raise
    except Exception as exc:  # flatbuffers raises struct/index errors on out-of-range offsets
        detail = f"{type(exc).__name__}: {exc}".removesuffix(": ")
        raise InputError(f"{path}: expected a TFLite flatbuffer, received malformed data ({detail})") from None
    return model


def check_tflite_model(path: Path) -> Any:
    """The ``.tflite`` at ``path``, checked by :func:`check_tflite_bytes`, as a parsed ``schema.Model``.

    Raises:
        InputError: too large or refused.

    """
    size = path.stat().st_size
    if size > MAX_ARTIFACT_BYTES:
        raise InputError(f"{path}: expected a TFLite file of at most 4 GiB, received {size / 2**30:.1f} GiB")
    if size < 8:  # an empty file cannot be mapped
        return check_tflite_bytes(path.read_bytes(), path)
    with open(path, "rb") as stream:  # a read-only mapping, as LiteRT's own: no 244 MB read into fresh memory
        mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    with _MAPPED_LOCK:
        _MAPPED[_address(mapped)] = mapped
    return check_tflite_bytes(mapped, path)


# The read-only file mappings check_tflite_model made, by address, while they live.
_MAPPED: weakref.WeakValueDictionary[int, mmap.mmap] = weakref.WeakValueDictionary()
_MAPPED_LOCK = threading.Lock()


def _address(mapped: mmap.mmap) -> int:
    import numpy as np

    return int(np.frombuffer(mapped, np.uint8).ctypes.data)


def release_pages(array: Any) -> None:
    """Drop from this process's memory the pages of a checked TFLite file's mapping that ``array`` views, once read.

    A read-only file mapping's pages count in the process's memory once read, until it is unmapped: comparing a
    244 MB file's weights held all of them, beside ONNX Runtime's rows (verify's peak). Dropped, they stay in
    the page cache, and a later read maps them again, with the file's bytes. Any other array: nothing happens
    (``MADV_DONTNEED`` on a process's own memory would zero it, so only those mappings are ever advised).
    """
    from numpy.lib.array_utils import byte_bounds

    if not getattr(mmap, "MADV_DONTNEED", None) or not array.size:
        return
    low, high = byte_bounds(array)
    with _MAPPED_LOCK:
        mappings = list(_MAPPED.items())
    for base, mapped in mappings:
        try:
            inside = base <= low and high <= base + len(mapped)
        except ValueError:  # closed
            continue
        if inside:
            start = -(-(low - base) // mmap.PAGESIZE) * mmap.PAGESIZE  # only pages wholly inside the array
            end = (high - base) // mmap.PAGESIZE * mmap.PAGESIZE
            if end > start:
                mapped.madvise(mmap.MADV_DONTNEED, start, end - start)
            return


def read_tflite(path: Path) -> Any:
    """:func:`check_tflite_model`, read and checked once per unchanged file inside :func:`parsed_once`.

    The model's bytes are ``model._tab.Bytes``; callers must not modify them.
    """
    return _once(path, "tflite", check_tflite_model)


_PASSED: set[tuple[str, str, int, int]] = set()


def _stamp(path: Path, fmt: str) -> tuple[str, str, int, int]:
    target = path / "saved_model.pb" if fmt == "savedmodel" else path
    info = target.stat()
    return str(path.resolve()), fmt, info.st_mtime_ns, info.st_size


def check_artifact(path: Path, fmt: str) -> None:
    """Run the pre-load check of ``fmt`` on ``path`` (once per process for an unchanged file).

    Every loader in the toolkit (runtimes, ``extract``, ``diagnose``, ``predict``) calls this first.

    Raises:
        InputError: the artifact is refused.

    """
    stamp = _stamp(path, fmt)
    if stamp in _PASSED:
        return
    if fmt == "savedmodel":
        check_savedmodel(path)
    elif fmt == "onnx":
        load_onnx(path)
    elif fmt == "tflite":
        read_tflite(path)
    _PASSED.add(stamp)


def mark_checked(path: Path, fmt: str) -> None:
    """Record that ``path`` passed its check (a caller that ran it on content it had already read)."""
    _PASSED.add(_stamp(path, fmt))


# The numeric suffix TensorFlow gives traced function names (``__inference__serve_117``).
FUNCTION_ID = re.compile(r"(__inference_[A-Za-z0-9_]*?)_\d+\b")
