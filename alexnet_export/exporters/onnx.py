"""ONNX export of the canonical graph: tf2onnx converts the structure, the weights are placed afterwards.

Converting the full-size model with its 244 MB of weights inside the TensorFlow graph makes tf2onnx
slow and memory hungry (92 s and 11.4 GB measured for the tf2onnx CLI; see ``shared/DESIGN.md``).
Here the graph is traced with the weights as *placeholders*, so tf2onnx converts a weightless
structure in well under a second. The ONNX graph is then finished by small passes, each a function:

1. :func:`_fold_weight_ops`: every node that computes on weights alone (the HWIO->OIHW Transposes
   tf2onnx inserts) is evaluated once with numpy and replaced by an initializer.
2. :func:`_drop_flatten_transpose` (``nchw`` only): the Transpose before the pool5 flatten is removed
   and fc6's rows are permuted to ``(c, h, w)`` instead, so an NCHW graph has no Transpose at all.
3. :func:`_fuse_gemm`: ``MatMul`` + bias ``Add`` become one ``Gemm`` per fully connected layer.
4. :func:`_apply_group_mode`: ``split`` rewrites each ``group=2`` Conv as Split, two Convs and a
   Concat; ``dense`` stores the block-diagonal kernel in a plain Conv.
5. :func:`_rename`: node, tensor and initializer names follow the layers (``conv1``, ``conv1/lrn``,
   ``fc6``, ``conv2/kernel``), so the bytes do not depend on tf2onnx's counters.

The result is checked with ``onnx.checker`` (full check) and carries its provenance in
``metadata_props``. The same weights and options give byte-identical files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from alexnet_export import __version__
from alexnet_export.artifacts import check_output, file_artifact, sidecar_manifest_path
from alexnet_export.cache import cached_bytes, entry_name
from alexnet_export.progress import QUIET, Progress
from converters import groups as groups_mod
from converters.arch import GROUP_MODES, LRN, Architecture, check_choice, first_dense, flatten_input
from converters.errors import InputError
from converters.layouts import fc6_rows_hwc_to_chw
from converters.weights import AlexNetWeights, write_hashed

LAYOUTS: tuple[str, ...] = ("nhwc", "nchw")
DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax-13 normalises the last axis only; older opsets flatten, a different function
NEWEST_OPSET = 26  # the newest opset onnxruntime 1.31 loads (27 is refused); onnx 1.23 defines 28
TF2ONNX_MAX_OPSET = 18  # tf2onnx 1.17 converts up to 18; newer opsets go through onnx's version converter
BATCH_DIM = "batch"


def preprocessing(arch: Architecture, *, embedded: bool) -> str:
    """What the model's ``images`` input expects, for ``metadata_props``."""
    if not embedded:
        return arch.input.describe()
    spec = arch.input
    return (
        f"embedded: input uint8 {'RGB' if spec.channels == 3 else 'grey'} [batch, H, W, {spec.channels}]; in-graph "
        f"bilinear resize to {spec.height}x{spec.width} (half-pixel, no antialias), then {spec.describe()}"
    )


@dataclass(frozen=True)
class OnnxOptions:
    """Options of an ONNX export.

    Attributes:
        opset: ONNX opset of the default domain, from :data:`MIN_OPSET` to :data:`NEWEST_OPSET`.
        layout: ``nhwc`` (input [batch, 227, 227, 3], as the contract) or ``nchw`` ([batch, 3, 227, 227]).
        groups: grouped-layer mode: ``native`` (Conv group=2), ``split`` or ``dense``.
        embed_preprocessing: input uint8 RGB ``[batch, H, W, 3]``, preprocessed in-graph (layout nhwc only).

    """

    opset: int = DEFAULT_OPSET
    layout: str = "nhwc"
    groups: str = "native"
    embed_preprocessing: bool = False

    def check(self) -> None:
        """Refuse unknown values, naming the option.

        Raises:
            InputError: an unknown value or an opset out of range.

        """
        check_choice("--layout", self.layout, LAYOUTS)
        check_choice("--groups", self.groups, GROUP_MODES)
        if not MIN_OPSET <= self.opset <= NEWEST_OPSET:
            raise InputError(f"--opset: expected {MIN_OPSET}..{NEWEST_OPSET}, received {self.opset}")
        if self.embed_preprocessing and self.layout != "nhwc":
            raise InputError(
                "--embed-preprocessing: expected --layout nhwc (images are uint8 RGB [batch, H, W, 3]), "
                f"received --layout {self.layout}"
            )


def _placeholder(name: str) -> str:
    return name.replace("/", "_")


def _part_names(arch: Architecture, name: str) -> tuple[str, str]:
    """Initializer names of a layer's arrays: ``kernel``/``bias``, or ``scale``/``offset`` (a BN left unfolded)."""
    return (f"{name}/kernel", f"{name}/bias") if name in arch.layer_names else (f"{name}/scale", f"{name}/offset")


def convert_structure(
    arch: Architecture, params: dict[str, tuple[np.ndarray, np.ndarray]], options: OnnxOptions
) -> onnx.ModelProto:
    """tf2onnx's conversion of the native-groups graph with every weight as a graph input.

    Only shapes of the weights enter TensorFlow; the returned model has no weight data.
    """
    from alexnet_export.quiet import import_tensorflow

    import_tensorflow()  # only here: with the structure cached, an ONNX export never needs it
    import tensorflow as tf
    import tf2onnx

    from alexnet_export.graph import embedded_preprocessing, forward, input_signature

    specs = [input_signature(arch.input, embedded=options.embed_preprocessing)]
    for name, (kernel, bias) in params.items():
        kernel_name, bias_name = _part_names(arch, name)
        specs.append(tf.TensorSpec(kernel.shape, tf.float32, name=_placeholder(kernel_name)))
        specs.append(tf.TensorSpec(bias.shape, tf.float32, name=_placeholder(bias_name)))
    names = list(params)

    @tf.function(input_signature=specs, autograph=False)
    def structure(images: tf.Tensor, *tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        placeholders = {name: (tensors[2 * i], tensors[2 * i + 1]) for i, name in enumerate(names)}
        if options.embed_preprocessing:
            images = embedded_preprocessing(images, arch.input)
        logits = forward(images, placeholders, arch=arch, groups="native")
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}

    graph_def = structure.get_concrete_function().graph.as_graph_def()
    inputs = [f"{spec.name}:0" for spec in specs]
    renames = {"images:0": "images", "logits:0": "logits", "probabilities:0": "probabilities"}
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=inputs,
        output_names=["logits:0", "probabilities:0"],
        opset=min(options.opset, TF2ONNX_MAX_OPSET),
        inputs_as_nchw=["images:0"] if options.layout == "nchw" else None,
        tensors_to_rename=renames,
    )
    if options.opset > TF2ONNX_MAX_OPSET:
        model = onnx.version_converter.convert_version(model, options.opset)
    return cast(onnx.ModelProto, model)


_STRUCTURES: dict[tuple[str, tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...], OnnxOptions], bytes] = {}


def _cached_structure(
    arch: Architecture, params: dict[str, tuple[np.ndarray, np.ndarray]], options: OnnxOptions
) -> onnx.ModelProto:
    """:func:`convert_structure`, once per process for an architecture, its shapes and options.

    The structure depends on the weights' shapes only, so ``verify``'s structural check of a file that
    ``export`` just wrote reuses the conversion instead of running tf2onnx again, and the next process
    reads it from the structure cache (:mod:`alexnet_export.cache`): no tf2onnx and no TensorFlow.
    """
    key = (arch.dumps(), tuple((n, k.shape, b.shape) for n, (k, b) in params.items()), options)
    if key not in _STRUCTURES:
        _STRUCTURES[key] = cached_bytes(
            "onnx-structure",
            f"{structure_key(key)}.onnx",
            lambda: convert_structure(arch, params, options).SerializeToString(),
            _check_structure_bytes,
        )
    model = onnx.ModelProto()
    model.ParseFromString(_STRUCTURES[key])
    return model


def structure_key(key: tuple[object, ...]) -> str:
    """The on-disk name of a structure: a digest of ``key`` and the versions of everything that made it."""
    return entry_name(("tensorflow", "tf2onnx", "onnx"), key)


def _check_structure_bytes(data: bytes, path: Path) -> None:
    """A cached structure must parse and pass the ONNX trust check (no weights: those are its inputs)."""
    from alexnet_export.trust import check_onnx_model

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:
        raise InputError(f"{path}: not an ONNX model ({exc})") from None
    if len(model.graph.initializer) > 64 or not model.graph.node:  # tf2onnx's few shape constants at most
        raise InputError(f"{path}: not a weightless structure")
    check_onnx_model(model, path)


class _Graph:
    """A mutable view of an ONNX graph: nodes in order, initializers as numpy arrays."""

    def __init__(self, model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> None:
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.arrays = arrays
        self.final: set[str] = set()  # node names already chosen by a pass, kept by _rename
        for tensor in graph.initializer:
            self.arrays[tensor.name] = numpy_helper.to_array(tensor)

    def producer(self, tensor: str) -> onnx.NodeProto | None:
        return next((node for node in self.nodes if tensor in node.output), None)

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [node for node in self.nodes if tensor in node.input]

    def of_type(self, op_type: str) -> Iterator[onnx.NodeProto]:
        return (node for node in list(self.nodes) if node.op_type == op_type)

    def rename_tensor(self, old: str, new: str) -> None:
        for node in self.nodes:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        if old in self.arrays:
            self.arrays[new] = self.arrays.pop(old)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


_FOLDERS: dict[str, Callable[[list[np.ndarray], dict[str, Any]], list[np.ndarray]]] = {
    "Transpose": lambda xs, a: [np.ascontiguousarray(np.transpose(xs[0], a.get("perm")))],
    "Identity": lambda xs, a: [xs[0]],
    "Reshape": lambda xs, a: [xs[0].reshape(tuple(int(d) for d in xs[1]))],
}


def _fold_weight_ops(graph: _Graph) -> None:
    """Evaluate every node whose inputs are all initializers and keep its outputs as initializers."""
    for node in list(graph.nodes):
        if node.input and all(name in graph.arrays for name in node.input):
            if node.op_type not in _FOLDERS:
                raise AssertionError(f"unexpected weight-only {node.op_type} node {node.name}")
            outputs = _FOLDERS[node.op_type]([graph.arrays[name] for name in node.input], _attrs(node))
            graph.nodes.remove(node)
            for name, value in zip(node.output, outputs, strict=True):
                graph.arrays[name] = value


def _fuse_conv_bias(graph: _Graph) -> None:
    """A ``Conv`` without bias followed by ``Add`` of a per-channel constant becomes one ``Conv`` with bias.

    tf2onnx leaves the bias out of the Conv when it has merged a zero padding into the Conv's pads
    (keras-v1's ZeroPadding2D before conv1); the bias then arrives as ``Add`` of a ``(1, C, 1, 1)`` constant.
    """
    for conv in graph.of_type("Conv"):
        if len(conv.input) == 3:
            continue
        (add,) = graph.consumers(conv.output[0])
        bias = next(name for name in add.input if name != conv.output[0])
        if add.op_type != "Add" or bias not in graph.arrays:
            raise AssertionError(f"expected a bias Add after {conv.name}")
        layer = conv.name.split("/", 1)[0]
        graph.arrays[f"{layer}/bias"] = np.ascontiguousarray(graph.arrays[bias].reshape(-1))
        conv.input.append(f"{layer}/bias")
        conv.output[:] = list(add.output)
        graph.nodes.remove(add)


def _is_flatten(graph: _Graph, node: onnx.NodeProto) -> bool:
    """A Reshape to ``[-1, features]``: the flatten before the first dense layer."""
    return node.op_type == "Reshape" and node.input[1] in graph.arrays and graph.arrays[node.input[1]].size == 2


def _drop_flatten_transpose(graph: _Graph, kernel: str, grid: tuple[int, int, int]) -> None:
    """Flatten the last map in NCHW order and permute the first dense layer's rows to match.

    tf2onnx transposes an NCHW graph back to NHWC before an ``hwc`` flatten; instead the Transpose is
    dropped and the rows of ``kernel`` are reordered ``(h, w, c)`` -> ``(c, h, w)`` (``grid``: h, w, c).
    """
    flatten = next(node for node in graph.nodes if _is_flatten(graph, node))
    transpose = graph.producer(flatten.input[0])
    if grid[0] * grid[1] == 1 and (transpose is None or transpose.op_type != "Transpose"):
        return  # a 1x1 map: (h, w, c) and (c, h, w) are the same order, and tf2onnx already dropped the Transpose
    if transpose is None or transpose.op_type != "Transpose" or list(_attrs(transpose)["perm"]) != [0, 2, 3, 1]:
        raise AssertionError("expected an NCHW->NHWC Transpose before the flatten")
    flatten.input[0] = transpose.input[0]
    graph.nodes.remove(transpose)
    graph.arrays[kernel] = fc6_rows_hwc_to_chw(graph.arrays[kernel], grid)


def _fuse_gemm(graph: _Graph) -> None:
    """``MatMul(x, W)`` followed by ``Add(., b)`` becomes ``Gemm(x, W, b)``."""
    for matmul in graph.of_type("MatMul"):
        (add,) = graph.consumers(matmul.output[0])
        bias = next(name for name in add.input if name != matmul.output[0])
        if add.op_type != "Add" or bias not in graph.arrays:
            raise AssertionError(f"expected a bias Add after {matmul.name}")
        gemm = helper.make_node("Gemm", [matmul.input[0], matmul.input[1], bias], list(add.output), name=add.name)
        graph.nodes[graph.nodes.index(matmul)] = gemm
        graph.nodes.remove(add)


def _apply_group_mode(graph: _Graph, mode: str) -> None:
    """Rewrite ``group`` Convs for the ``split`` or ``dense`` mode; ``native`` keeps them."""
    for conv in graph.of_type("Conv"):
        attrs = _attrs(conv)
        groups = int(attrs.get("group", 1))
        if groups == 1 or mode == "native":
            continue
        kernel, bias = (graph.arrays[name] for name in conv.input[1:3])
        if mode == "dense":
            dense = groups_mod.to_dense(kernel.transpose(2, 3, 1, 0), groups)  # OIHW -> HWIO, then back
            graph.arrays[conv.input[1]] = np.ascontiguousarray(dense.transpose(3, 2, 0, 1))
            del conv.attribute[:]
            conv.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items() if k != "group")
            continue
        _split_conv(graph, conv, attrs, groups, kernel, bias)


def _split_conv(
    graph: _Graph, conv: onnx.NodeProto, attrs: dict[str, Any], groups: int, kernel: np.ndarray, bias: np.ndarray
) -> None:
    """One grouped Conv as Split -> one Conv per group -> Concat, each group with its own initializers."""
    name, x, y = conv.input[1].rsplit("/", 1)[0], conv.input[0], conv.output[0]
    plain = {k: v for k, v in attrs.items() if k != "group"}
    parts = [f"{name}/split/{g}" for g in range(groups)]
    nodes = [helper.make_node("Split", [x, f"{name}/split_sizes"], parts, name=f"{name}/split", axis=1)]
    graph.arrays[f"{name}/split_sizes"] = np.full(groups, kernel.shape[1], dtype=np.int64)
    per_out = kernel.shape[0] // groups
    for g, part in enumerate(parts):
        graph.arrays[f"{name}/kernel/{g}"] = np.ascontiguousarray(kernel[g * per_out : (g + 1) * per_out])
        graph.arrays[f"{name}/bias/{g}"] = np.ascontiguousarray(bias[g * per_out : (g + 1) * per_out])
        nodes.append(
            helper.make_node(
                "Conv", [part, f"{name}/kernel/{g}", f"{name}/bias/{g}"], [f"{name}/{g}"], name=f"{name}/{g}", **plain
            )
        )
    nodes.append(helper.make_node("Concat", [f"{name}/{g}" for g in range(groups)], [y], name=name, axis=1))
    index = graph.nodes.index(conv)
    graph.nodes[index : index + 1] = nodes
    graph.final.update(node.name for node in nodes)
    for tensor in conv.input[1:3]:
        del graph.arrays[tensor]


def _rename(graph: _Graph, outputs: tuple[str, ...], *, flatten_into: str, first: str = "images") -> None:
    """Name nodes and tensors after the layers, in graph order; graph inputs and outputs keep theirs.

    Nodes before the first layer with weights are named after ``first``; the flatten after the dense
    layer it feeds (``flatten_into``); a repeated name gets ``_2``, ``_3``, ...; constants that are not
    weights are named after the node that reads them (``images/pad/1``), so the bytes do not depend on
    tf2onnx's counters.
    """
    layer = first
    used: dict[str, int] = {}
    for node in graph.nodes:
        if node.name in graph.final:
            layer, name = node.name.split("/", 1)[0], node.name
        elif node.op_type in ("Conv", "Gemm"):
            layer = name = node.input[1].rsplit("/", 1)[0]
        elif _is_flatten(graph, node):
            layer, name = flatten_into, f"{flatten_into}/flatten"
            graph.rename_tensor(node.input[1], f"{flatten_into}/flatten/shape")
        elif node.op_type == "Softmax":
            name = "probabilities"
        else:
            name = f"{layer}/{node.op_type.lower()}"
        used[name] = used.get(name, 0) + 1
        if used[name] > 1:
            name = f"{name}_{used[name]}"
        node.name = name
        for index, tensor in enumerate(list(node.output)):
            if tensor not in outputs:
                graph.rename_tensor(tensor, name if len(node.output) == 1 else f"{name}/{index}")
        for index, tensor in enumerate(list(node.input)):
            if tensor in graph.arrays and "/" not in tensor:
                graph.rename_tensor(tensor, f"{name}/const{index}")


def _finish(graph: _Graph, weights: AlexNetWeights, options: OnnxOptions) -> onnx.ModelProto:
    """A fresh ModelProto of the rewritten graph without initializers: named batch axis, metadata."""
    spec = weights.arch.input
    spatial: list[str | int] = ["height", "width"] if options.embed_preprocessing else [spec.height, spec.width]
    channels = spec.channels
    shape = [BATCH_DIM, channels, *spatial] if options.layout == "nchw" else [BATCH_DIM, *spatial, channels]
    outputs: list[str | int] = [BATCH_DIM, weights.num_classes]
    dtype = TensorProto.UINT8 if options.embed_preprocessing else TensorProto.FLOAT
    new_graph = helper.make_graph(
        graph.nodes,
        "alexnet",
        [helper.make_tensor_value_info("images", dtype, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, outputs) for name in ("logits", "probabilities")],
    )
    opsets = [helper.make_opsetid("", options.opset)]
    out = helper.make_model(
        new_graph,
        opset_imports=opsets,
        producer_name="alexnet-export",
        producer_version=__version__,
        doc_string=f"{weights.arch.name} exported by alexnet-export; see metadata_props for provenance.",
    )
    out.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(out, metadata(weights, options))
    return out


def _little_endian(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _tensor_header(name: str, array: np.ndarray) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype))
    tensor.dims.extend(array.shape)
    return tensor


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# Protobuf tags (field number << 3 | wire type 2) of ModelProto.graph, GraphProto.initializer, TensorProto.raw_data
_TAG_GRAPH, _TAG_INITIALIZER, _TAG_RAW_DATA = b"\x3a", b"\x2a", b"\x4a"


def write_model(skeleton: onnx.ModelProto, initializers: dict[str, np.ndarray], path: Path) -> str:
    """Write ``skeleton`` plus ``initializers`` as one ONNX file without building the whole proto in memory.

    Protobuf merges repeated occurrences of a message field, so each initializer is appended as its own
    ``graph { initializer { ... raw_data } }`` record after the skeleton, with ``raw_data`` written
    straight from the array's buffer. The file parses exactly as if the initializers were in the
    skeleton; no copy of the weights is made.

    Returns:
        The file's sha256, computed while it was written (for the manifest and the checker's verdict).

    """
    return write_hashed(path, _records(skeleton, initializers))


def _records(skeleton: onnx.ModelProto, initializers: dict[str, np.ndarray]) -> Iterator[bytes | memoryview]:
    yield skeleton.SerializeToString()
    for name, array in initializers.items():
        data = memoryview(_little_endian(array)).cast("B")  # type: ignore[arg-type]
        header = _tensor_header(name, array).SerializeToString()
        tensor_len = len(header) + 1 + len(_varint(data.nbytes)) + data.nbytes
        graph_len = 1 + len(_varint(tensor_len)) + tensor_len
        yield _TAG_GRAPH + _varint(graph_len) + _TAG_INITIALIZER + _varint(tensor_len) + header
        yield _TAG_RAW_DATA + _varint(data.nbytes)
        yield data


_VERDICT = b"onnx.checker.check_model(full_check=True) passed\n"


def check_conformance(path: Path, sha256: str) -> None:
    """``onnx.checker``'s full check of the ONNX file at ``path``, whose sha256 is ``sha256``.

    The verdict is a function of the file's bytes alone, so it is kept in the structure cache (kind
    ``onnx-checked``, by the toolkit's and onnx's versions and the digest, which the writer computed
    anyway): exporting the same weights with the same options again writes the same bytes, and they are
    not parsed again for it (0.36 s at full size). A file never checked before is always checked.

    Raises:
        onnx.checker.ValidationError: the file does not conform.

    """

    def run() -> bytes:
        onnx.checker.check_model(str(path), full_check=True)
        return _VERDICT

    def valid(data: bytes, where: Path) -> None:
        if data != _VERDICT:
            raise InputError(f"{where}: not a checker verdict")

    cached_bytes("onnx-checked", entry_name(("onnx",), sha256), run, valid)


def metadata(weights: AlexNetWeights, options: OnnxOptions) -> dict[str, str]:
    """The provenance written to ``metadata_props``; ``extract`` and ``verify`` read the layout facts back."""
    import importlib.metadata

    source = weights.source
    arch = weights.arch
    lrns = [layer for layer in arch.layers if isinstance(layer, LRN)]
    dense = first_dense(arch)
    props = {
        "alexnet_export.version": __version__,
        "alexnet_export.source_sha256": source.sha256 if source else "",
        "alexnet_export.source_format": source.format if source else "in-memory",
        "alexnet_export.architecture": arch.name,
        "alexnet_export.architecture_json": arch.dumps(),
        "alexnet_export.layout": options.layout,
        "alexnet_export.groups": options.groups,
        "alexnet_export.num_classes": str(weights.num_classes),
        "alexnet_export.preprocessing": preprocessing(arch, embedded=options.embed_preprocessing),
        "alexnet_export.weight_layout": (
            f"conv kernels OIHW (grouped: O x I/G x H x W); dense kernels (in, out) for Gemm; {dense} rows "
            + ("(c, h, w)" if options.layout == "nchw" else "(h, w, c)")
        ),
        "alexnet_export.converter": f"tf2onnx {importlib.metadata.version('tf2onnx')}",
    }
    if lrns:
        props["alexnet_export.lrn"] = "; ".join(
            dict.fromkeys(f"size={lrn.size} alpha={lrn.alpha} beta={lrn.beta} bias={lrn.k}" for lrn in lrns)
        )
    if arch.norm_names:
        from converters.arch import fold_plan

        props["alexnet_export.folded"] = ", ".join(f"{bn}->{into}" for bn, into, _ in fold_plan(arch)) or "none"
    return props


def build(
    weights: AlexNetWeights, options: OnnxOptions = OnnxOptions()
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The finished graph of ``weights`` without initializers, and its initializers in file order.

    Raises:
        InputError: an unknown option value.

    """
    from alexnet_export.stored import graph_params

    options.check()
    arch, params = graph_params(weights, "native")
    structure = _cached_structure(arch, params, options)
    arrays = {}
    for name, pair in params.items():
        for part, array in zip(_part_names(arch, name), pair, strict=True):
            arrays[f"{_placeholder(part)}:0"] = array
    graph = _Graph(structure, arrays)
    for name in params:  # canonical initializer names from the start
        for part in _part_names(arch, name):
            graph.rename_tensor(f"{_placeholder(part)}:0", part)
    _fold_weight_ops(graph)
    _fuse_conv_bias(graph)
    for node in graph.nodes:  # folded kernels take the canonical names (now OIHW)
        if node.op_type == "Conv":
            layer = node.input[2].rsplit("/", 1)[0]
            graph.rename_tensor(node.input[1], f"{layer}/kernel")
    dense = first_dense(arch)
    grid, order = flatten_input(arch, {name: int(pair[0].shape[-1]) for name, pair in params.items()})
    if options.layout == "nchw" and order == "hwc":
        _drop_flatten_transpose(graph, f"{dense}/kernel", grid)
    _fuse_gemm(graph)
    _apply_group_mode(graph, options.groups)
    first = "preprocess" if options.embed_preprocessing else "images"
    _rename(graph, ("logits", "probabilities"), flatten_into=dense, first=first)
    used = {name for node in graph.nodes for name in node.input}
    return _finish(graph, weights, options), {name: a for name, a in graph.arrays.items() if name in used}


def build_model(
    weights: AlexNetWeights, options: OnnxOptions = OnnxOptions(), *, check: bool = True
) -> onnx.ModelProto:
    """The finished ONNX model of ``weights`` in memory, checked with ``onnx.checker`` (full check).

    Raises:
        InputError: an unknown option value.

    """
    model, initializers = build(weights, options)
    for name, array in initializers.items():
        tensor = model.graph.initializer.add()
        tensor.CopyFrom(_tensor_header(name, array))
        tensor.raw_data = _little_endian(array).tobytes()
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def node_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Number of nodes per op type, most frequent first."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class OnnxSummary:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file.
        ir_version: the model's IR version.
        nodes: node count per op type.

    """

    path: Path
    ir_version: int
    nodes: dict[str, int]


def export_onnx(
    weights: AlexNetWeights,
    out: str | os.PathLike[str],
    *,
    options: OnnxOptions = OnnxOptions(),
    force: bool = False,
    progress: Progress = QUIET,
) -> OnnxSummary:
    """Export ``weights`` to an ONNX file and its manifest, atomically.

    The weights are streamed from their arrays into the file (see :func:`write_model`), never copied
    into a protobuf, and the written file is checked with ``onnx.checker`` (full check; see
    :func:`check_conformance`).

    Args:
        weights: the canonical weight set.
        out: the ``.onnx`` file to create; the manifest goes to ``OUT.alexnet-export.json``.
        options: export options.
        force: replace existing outputs.
        progress: where to announce the steps.

    Returns:
        Where it was written, the IR version and node counts.

    Raises:
        OutputExistsError: an output exists and ``force`` is false.
        InputError: an unknown option value.

    """
    out = Path(out)
    options.check()
    check_output(out, force=force)
    check_output(sidecar_manifest_path(out), force=force)
    with progress.step(f"converting the graph structure (tf2onnx, opset {options.opset})"):
        skeleton, initializers = build(weights, options)
    summary = OnnxSummary(out, skeleton.ir_version, node_counts(skeleton))
    versions = {"onnx": onnx.__version__, "numpy": np.__version__}
    with progress.step(f"writing {out}"), file_artifact(
        out, force=force, kind="onnx", weights=weights, options=asdict(options), versions=versions,
        extra={"nodes": summary.nodes},
    ) as tmp:
        check_conformance(tmp, write_model(skeleton, initializers, tmp))
    return summary
