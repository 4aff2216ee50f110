"""``diagnose``: where an artifact's computation leaves the weights' and which known mistake explains it.

The artifact runs with every intermediate tensor exposed: ONNX with each node's output added as a graph
output (on a copy held in memory), a SavedModel's serving function frozen and run as a graph with each
op's output fetched, TFLite in LiteRT with all tensors preserved (builtin kernels, no delegate). Its
ops are matched to the architecture's layers by structure, never by name: the graph's ops in
topological order, classified (convolution, ReLU, LRN, pooling, dense, softmax, batch norm; bias
additions and split-group concatenations belong to the layer before them; reshapes, transposes and
casts are ignored), are aligned with the layers in order. A convolution with a fused ReLU is compared
after the ReLU; a BatchNormalization folded away is compared inside the layer that absorbed it.

Each matched tensor is compared with the float64 oracle's output of the same layers (NHWC or NCHW
detected from the shapes). At the first layer outside the tolerance, the oracle is recomputed from the
oracle's input to that layer with each known deviation applied; a deviation that reproduces the
artifact's tensor within the tolerance is the likely cause. Causes have stable names (``CAUSES``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from alexnet_export.preprocess import input_to_rgb, rgb_to_input
from alexnet_export.quiet import fds_silenced
from alexnet_export.reference import _step, conv2d, softmax
from converters.arch import (
    LRN,
    Architecture,
    BatchNorm,
    Conv,
    Dense,
    Flatten,
    Layer,
    MaxPool,
    ReLU,
    Softmax,
    conv_pads,
    fold_plan,
)
from converters.errors import InputError
from converters.weights import AlexNetWeights

SCHEMA_PATH = Path(__file__).with_name("diagnose_schema.json")
CAUSES = (
    "lrn-constants",
    "conv-padding",
    "pool-rounding",
    "channel-order",
    "mean-or-scale",
    "flatten-order",
    "group-order",
    "kernel-layout",
    "batchnorm",
    "double-softmax",
)
# Per-layer tolerance on max |artifact - oracle| / max |oracle| of that layer, by the artifact's precision.
LAYER_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8-dynamic": 0.05, "int8": 0.25}
MAIN_KINDS = {"conv", "relu", "lrn", "pool", "dense", "softmax", "bn"}
ONNX_KINDS = {
    "Conv": "conv",
    "Relu": "relu",
    "LRN": "lrn",
    "MaxPool": "pool",
    "Gemm": "dense",
    "MatMul": "dense",
    "Add": "add",
    "Mul": "mul",
    "Softmax": "softmax",
    "BatchNormalization": "bn",
    "Concat": "concat",
}
TF_KINDS = {
    "Conv2D": "conv",
    "DepthwiseConv2dNative": "conv",
    "Relu": "relu",
    "LRN": "lrn",
    "MaxPool": "pool",
    "MatMul": "dense",
    "BiasAdd": "add",
    "AddV2": "add",
    "Add": "add",
    "Mul": "mul",
    "Softmax": "softmax",
    "FusedBatchNormV3": "bn",
    "ConcatV2": "concat",
}
TFLITE_KINDS = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "conv",
    "RELU": "relu",
    "LOCAL_RESPONSE_NORMALIZATION": "lrn",
    "MAX_POOL_2D": "pool",
    "FULLY_CONNECTED": "dense",
    "SOFTMAX": "softmax",
    "ADD": "add",
    "MUL": "mul",
    "CONCATENATION": "concat",
}
# TFLite option tables that carry a fused activation (a ReLU folded into the op).
FUSED_OPTIONS = (
    "Conv2DOptions",
    "DepthwiseConv2DOptions",
    "FullyConnectedOptions",
    "AddOptions",
    "MulOptions",
    "ConcatenationOptions",
)
LAYER_KINDS = {
    Conv: "conv",
    ReLU: "relu",
    LRN: "lrn",
    MaxPool: "pool",
    Dense: "dense",
    Softmax: "softmax",
    BatchNorm: "bn",
}
Fetch = Callable[[np.ndarray, Sequence[str]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Probe:
    """One op of the artifact's graph: the tensor it produces, its kind and type."""

    name: str
    kind: str
    op: str
    fused_relu: bool = False


@dataclass
class Opened:
    """An artifact ready to run with its intermediate tensors exposed."""

    format: str
    probes: list[Probe]
    outputs: list[str]
    input_layout: str
    input_dtype: str
    precision: str
    fetch: Fetch
    names: dict[str, str] = field(default_factory=dict)  # display names of tensors (TFLite: by index)


@dataclass
class Row:
    """A compared layer (or run of layers: a fused ReLU, a folded BatchNormalization, a flatten)."""

    layers: list[tuple[int, Layer]]
    probe: Probe | None = None
    note: str = ""
    shape: tuple[int, ...] | None = None
    oracle_shape: tuple[int, ...] | None = None
    layout: str = "-"
    max_rel: float = float("nan")
    cosine: float = float("nan")
    passed: bool = False
    actual: np.ndarray | None = field(default=None, repr=False)
    output: str | None = None  # for an output row: the graph output compared
    names: dict[int, str] = field(default_factory=dict, repr=False)  # layer labels by index

    @property
    def label(self) -> str:
        """The compared layers' names joined with '+', or ``output NAME``."""
        if self.output is not None:
            return f"output {self.output}"
        return "+".join(self.names.get(i) or layer_label(i, layer) for i, layer in self.layers)


@dataclass(frozen=True)
class Cause:
    """A known mistake that reproduces the artifact's tensor at the first divergent layer."""

    name: str
    detail: str
    fix: str
    max_rel_under_cause: float
    cosine_under_cause: float


@dataclass
class Diagnosis:
    """What ``diagnose`` found."""

    artifact: str
    format: str
    precision: str
    architecture: str
    tolerance: float
    inputs: str
    rows: list[Row]
    first: int | None
    cause: Cause | None

    @property
    def passed(self) -> bool:
        """No layer diverged."""
        return self.first is None

    def sentence(self) -> str:
        """The finding in one sentence: clean, or where and (likely) why."""
        if self.first is None:
            return (
                f"No divergence: every one of the {len(self.rows)} compared layers matches the float64 oracle "
                f"within {self.tolerance:g} ({self.precision})."
            )
        row = self.rows[self.first]
        where = f"The artifact first diverges at {row.label} (max rel {fmt(row.max_rel)}"
        where += f"{'' if row.note == '' else '; ' + row.note})"
        if self.cause is None:
            return (
                f"{where}; none of the known causes reproduces it (unknown): look at that layer's weights "
                "and op attributes."
            )
        return (
            f"{where}; likely cause {self.cause.name}: {self.cause.detail} (reproduces it to max rel "
            f"{fmt(self.cause.max_rel_under_cause)}). Fix: {self.cause.fix}."
        )

    def to_json(self) -> dict[str, Any]:
        """The report as ``diagnose_schema.json`` describes it."""
        first = None
        if self.first is not None:
            row = self.rows[self.first]
            first = {
                "layer": row.label,
                "index": self.first,
                "op": row.probe.op if row.probe else None,
                "max_rel": num(row.max_rel),
                "note": row.note,
            }
        return {
            "schema_version": 1,
            "artifact": self.artifact,
            "format": self.format,
            "precision": self.precision,
            "architecture": self.architecture,
            "tolerance": self.tolerance,
            "inputs": self.inputs,
            "passed": self.passed,
            "layers": [
                {
                    "layer": row.label,
                    "op": row.probe.op if row.probe else None,
                    "tensor": row.probe.name if row.probe else None,
                    "shape": list(row.shape) if row.shape else None,
                    "oracle_shape": list(row.oracle_shape) if row.oracle_shape else None,
                    "layout": row.layout,
                    "max_rel": num(row.max_rel),
                    "cosine": num(row.cosine),
                    "passed": row.passed,
                    "note": row.note,
                }
                for row in self.rows
            ],
            "first_divergence": first,
            "likely_cause": None
            if self.cause is None and first is None
            else (
                {
                    "name": "unknown",
                    "detail": "no known cause reproduces the divergence",
                    "fix": None,
                    "max_rel_under_cause": None,
                    "cosine_under_cause": None,
                }
                if self.cause is None
                else {
                    "name": self.cause.name,
                    "detail": self.cause.detail,
                    "fix": self.cause.fix,
                    "max_rel_under_cause": num(self.cause.max_rel_under_cause),
                    "cosine_under_cause": num(self.cause.cosine_under_cause),
                }
            ),
        }


def num(value: float) -> float | None:
    """A JSON number, or null for NaN/inf."""
    return None if not np.isfinite(value) else float(value)


def fmt(value: float) -> str:
    """Three significant digits, or '-'."""
    return "-" if not np.isfinite(value) else f"{value:.3g}"


def layer_labels(arch: Architecture) -> dict[int, str]:
    """Every layer's name; unnamed ones by type and count (``relu1``, ``lrn2``, ``pool3``, ``dropout1``)."""
    counts: dict[str, int] = {}
    labels = {}
    for index, layer in enumerate(arch.layers):
        name = getattr(layer, "name", None)
        if name is None:
            kind = "pool" if layer.type == "maxpool" else layer.type
            counts[kind] = counts.get(kind, 0) + 1
            name = f"{kind}{counts[kind]}"
        labels[index] = name
    return labels


def layer_label(index: int, layer: Layer) -> str:
    """A layer's name, or its type and position for unnamed layers (``relu@2``)."""
    name = getattr(layer, "name", None)
    return name if name else f"{layer.type}@{index}"


# --- opening artifacts ---------------------------------------------------------------------------------


def open_artifact(path: Path) -> Opened:
    """The artifact at ``path`` with its ops classified and a way to fetch any of their outputs."""
    from alexnet_export.runtimes import detect_format
    from alexnet_export.trust import check_artifact

    fmt_ = detect_format(path)
    check_artifact(path, fmt_)  # nothing is loaded before its ops and sizes are checked
    try:
        if fmt_ == "onnx":
            return _open_onnx(path)
        if fmt_ == "tflite":
            return _open_tflite(path)
        return _open_savedmodel(path)
    except InputError:
        raise
    except Exception as exc:  # a file the runtime cannot load: one line, not a traceback
        raise InputError(
            f"{path}: cannot open as {fmt_}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None


def _layout(shape: Sequence[Any]) -> str:
    return "nchw" if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3) else "nhwc"


def _open_onnx(path: Path) -> Opened:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise InputError(f"{path}: expected one input, received {len(inputs)}")
    dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    elem = inputs[0].type.tensor_type.elem_type
    probes = []
    for node in graph.node:
        kind = ONNX_KINDS.get(node.op_type, "other")
        if kind == "dense" and node.op_type == "MatMul" and node.input[1] not in constants:
            kind = "other"
        probes.append(Probe(node.output[0], kind, node.op_type))
    types = {i.data_type for i in graph.initializer if len(i.dims) >= 2}
    precision = (
        "fp16"
        if onnx.TensorProto.FLOAT16 in types
        else "int8"
        if types & {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
        else "fp32"
    )
    outputs = [o.name for o in graph.output]
    known = set(outputs)
    graph.output.extend(onnx.ValueInfoProto(name=p.name) for p in probes if p.name not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del model
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name

    def fetch(images: np.ndarray, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        got = session.run(names, {input_name: images})
        return {name: np.asarray(value) for name, value in zip(names, got, strict=True) if name in wanted}

    return Opened(
        "onnx",
        probes,
        outputs,
        _layout(dims),
        "uint8" if elem == onnx.TensorProto.UINT8 else "float32",
        precision,
        fetch,
    )


def _open_tflite(path: Path) -> Opened:
    from ai_edge_litert import interpreter as litert
    from ai_edge_litert import schema_py_generated as schema

    buffer = path.read_bytes()
    model = schema.Model.GetRootAs(buffer, 0)
    graph = model.Subgraphs(0)
    fused = {}
    fused_tables = {getattr(schema.BuiltinOptions, name): name for name in FUSED_OPTIONS}
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        table = op.BuiltinOptions()
        if table is None:
            continue
        options_class = fused_tables.get(op.BuiltinOptionsType())
        options: Any = getattr(schema, options_class)() if options_class else None
        if options is not None:
            options.Init(table.Bytes, table.Pos)
            fused[index] = options.FusedActivationFunction() == schema.ActivationFunctionType.RELU
    with fds_silenced(2):
        interpreter = litert.Interpreter(
            model_content=buffer,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    names = {str(index): t["name"] for index, t in details.items()}
    probes = [
        Probe(
            str(op["outputs"][0]),
            TFLITE_KINDS.get(op["op_name"], "other"),
            op["op_name"],
            fused.get(op["index"], False),
        )
        for op in interpreter._get_ops_details()  # the execution plan, in order
    ]
    weights = [
        details[i]
        for op in interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")
        for i in op["inputs"][1:2]
        if i >= 0
    ]
    source_types = {np.dtype(t["dtype"]).name for t in weights}
    dequantized = any(op["op_name"] == "DEQUANTIZE" for op in interpreter._get_ops_details())
    entry = interpreter.get_input_details()[0]
    quantized_input = np.dtype(entry["dtype"]) in (np.int8, np.uint8) and entry["quantization"][0] != 0
    precision = (
        "int8" if quantized_input else "int8-dynamic" if "int8" in source_types else "fp16" if dequantized else "fp32"
    )

    def fetch(images: np.ndarray, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        got: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for image in images:
            feed = image[None]
            if quantized_input:
                scale, zero = entry["quantization"]
                info = np.iinfo(entry["dtype"])
                feed = np.clip(np.round(feed / scale + zero), info.min, info.max).astype(entry["dtype"])
            interpreter.resize_tensor_input(entry["index"], feed.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(entry["index"], feed.astype(entry["dtype"], copy=False))
            with fds_silenced(2):
                interpreter.invoke()
            for name in wanted:
                tensor = details[int(name)]
                value = interpreter.get_tensor(int(name)).astype(np.float64)
                scale, zero = tensor["quantization"]
                if scale:
                    value = (value - zero) * scale
                got[name].append(value)
        return {name: np.concatenate(values) for name, values in got.items()}

    outputs = [str(o["index"]) for o in interpreter.get_output_details()]
    names.update({str(o["index"]): o["name"] for o in interpreter.get_output_details()})
    return Opened(
        "tflite",
        probes,
        outputs,
        _layout(entry["shape"]),
        "uint8" if np.dtype(entry["dtype"]) == np.uint8 and not quantized_input else "float32",
        precision,
        fetch,
        names,
    )


def _open_savedmodel(path: Path) -> Opened:
    """The serving function with its calls inlined; variables are fed by value, not frozen into constants.

    Freezing 244 MB of weights into a GraphDef and letting the session's optimizer fold them cost ~25 s at
    full size; feeding each ``ReadVariableOp``'s value keeps the graph small and the run a plain one.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import _run_inline_graph_optimization

    loaded = tf.saved_model.load(str(path))
    signatures = dict(loaded.signatures)
    if not signatures:
        raise InputError(f"{path}: expected a SavedModel with a serving signature, received none")
    function = signatures.get("serving_default") or next(iter(signatures.values()))
    graph_def = _run_inline_graph_optimization(function, lower_control_flow=False, aggressive_inlining=True)
    captured = {inner.name.split(":")[0]: outer for outer, inner in function.graph.captures}
    nodes = {node.name: node for node in graph_def.node}
    feeds: dict[str, Any] = {}
    for node in graph_def.node:
        if node.op != "ReadVariableOp":
            continue
        source = nodes[node.input[0].split(":")[0]]
        while source.op == "Identity":
            source = nodes[source.input[0].split(":")[0]]
        if source.name in captured:
            feeds[f"{node.name}:0"] = tf.raw_ops.ReadVariableOp(
                resource=captured[source.name], dtype=node.attr["dtype"].type
            ).numpy()
    for node in graph_def.node:  # the call's control edges would run the (fed) variable reads anyway
        kept = [name for name in node.input if not name.startswith("^")]
        del node.input[:]
        node.input.extend(kept)
    probes = [Probe(f"{node.name}:0", TF_KINDS.get(node.op, "other"), node.op) for node in graph_def.node]
    placeholder = function.inputs[0]
    outputs = [t.name for t in function.outputs]  # top-level nodes keep their names when calls are inlined
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True  # run the graph as written
    session = tf.compat.v1.Session(graph=graph, config=config)

    def fetch(images: np.ndarray, wanted: Sequence[str]) -> dict[str, np.ndarray]:
        values = session.run(list(wanted), {**feeds, placeholder.name: images})
        return {name: np.asarray(value) for name, value in zip(wanted, values, strict=True)}

    shape = placeholder.shape.as_list()
    return Opened(
        "savedmodel",
        probes,
        outputs,
        _layout(shape),
        "uint8" if placeholder.dtype == tf.uint8 else "float32",
        "fp32",
        fetch,
    )


# --- matching ops to layers ----------------------------------------------------------------------------


def align(arch: Architecture, probes: list[Probe]) -> list[Row]:
    """The compared rows: each layer (or fused run of layers) with the artifact op that computes it."""
    folds = {bn: (into, where) for bn, into, where in fold_plan(arch)}
    rows: list[Row] = []
    pending: list[tuple[int, Layer]] = []
    position = 0

    def next_main(start: int) -> int:
        while start < len(probes) and probes[start].kind not in MAIN_KINDS:
            start += 1
        return start

    def next_of(start: int, kinds: set[str]) -> int | None:
        """The next probe from ``start`` of ``kinds``, skipping only reshapes, transposes and the like."""
        while start < len(probes) and probes[start].kind == "other":
            start += 1
        return start if start < len(probes) and probes[start].kind in kinds else None

    labels = layer_labels(arch)
    for index, layer in enumerate(arch.layers):
        kind = LAYER_KINDS.get(type(layer))
        if kind is None:  # zero padding, flatten, dropout: part of the next compared layer
            pending.append((index, layer))
            continue
        if (
            kind == "relu"
            and rows
            and rows[-1].probe
            and rows[-1].probe.fused_relu
            and not any(isinstance(lay, ReLU) for _, lay in rows[-1].layers)
        ):
            rows[-1].layers.append((index, layer))
            continue
        found = next_main(position)
        if kind == "bn" and (found >= len(probes) or probes[found].kind != "bn"):
            mul = next_of(position, {"mul"})
            add = next_of(mul + 1, {"add"}) if mul is not None else None
            if add is not None:  # kept as a scale and a shift
                rows.append(Row([*pending, (index, layer)], probes[add]))
                pending, position = [], add + 1
                continue
            into, where = folds.get(getattr(layer, "name", ""), (None, None))
            if where == "previous" and rows and getattr(rows[-1].layers[-1][1], "name", None) == into:
                rows[-1].layers.append((index, layer))
            else:
                pending.append((index, layer))
            continue
        if found >= len(probes) or probes[found].kind != kind:
            what = f"{probes[found].op}" if found < len(probes) else "the end of the graph"
            rows.append(Row([*pending, (index, layer)], None, note=f"no {kind} op where expected (found {what})"))
            pending = []
            continue
        end = found
        if kind == "conv" and getattr(layer, "groups", 1) > 1:  # split, one conv per group, concat
            scan = found + 1
            while scan < len(probes) and probes[scan].kind in {"conv", "add", "other"}:
                scan += 1
            if scan < len(probes) and probes[scan].kind == "concat":
                end = scan
        if kind in {"conv", "dense"}:
            bias = next_of(end + 1, {"add"})
            if bias is not None:
                end = bias
        fused = probes[found].fused_relu or probes[end].fused_relu
        probe = probes[end] if end == found else Probe(probes[end].name, probes[end].kind, probes[found].op, fused)
        rows.append(Row([*pending, (index, layer)], probe))
        pending, position = [], end + 1
    for row in rows:
        row.names = labels
    return rows


# --- the oracle, and deviations from it ------------------------------------------------------------------


def run_chain(
    layers: Sequence[tuple[int, Layer]],
    x: np.ndarray,
    weights: AlexNetWeights,
    swap: tuple[int, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> np.ndarray:
    """The oracle through ``layers`` from ``x``, one of them (by index) replaced by ``swap``."""
    for index, layer in layers:
        x = swap[1](x) if swap is not None and swap[0] == index else _oracle_step(layer, weights, x)
    return x


def _oracle_step(layer: Layer, weights: AlexNetWeights, x: np.ndarray) -> np.ndarray:
    """One layer of the oracle; unlike ``reference.forward`` (which stops at the logits) Softmax is computed."""
    if isinstance(layer, Softmax):
        return softmax(x)
    step = _step(layer, weights)
    return step(x) if step is not None else x


Variant = tuple[str, str, str, int | None, Callable[[np.ndarray], np.ndarray]]


def variants(row: Row, weights: AlexNetWeights, arch: Architecture) -> Iterator[Variant]:
    """(cause, detail, fix, layer index or None for the chain's input, replacement function)."""
    spec = arch.input
    for index, layer in row.layers:
        if isinstance(layer, Conv):
            yield from _conv_variants(index, layer, weights)
            starts_at_input = not any(isinstance(lay, Conv) for lay in arch.layers[:index])
            if starts_at_input and spec.channels == 3:
                yield (
                    "channel-order",
                    f"the input's channels are reversed ({spec.channel_order} expected, "
                    f"{spec.channel_order[::-1]} fed, or {layer.name}'s input channels flipped)",
                    f"feed {spec.channel_order} (or reverse {layer.name}'s kernel along its input channels)",
                    None,
                    lambda x: x[..., ::-1],
                )
            if starts_at_input:
                yield from _input_variants(spec)
        elif isinstance(layer, LRN):
            yield from _lrn_variants(index, layer)
        elif isinstance(layer, MaxPool):
            for padding in ("VALID", "SAME", "CEIL"):
                if padding != layer.padding:
                    changed = MaxPool(layer.size, layer.stride, padding)
                    yield (
                        "pool-rounding",
                        f"max-pool at layer {index} uses {padding} instead of {layer.padding}",
                        f"pool with {layer.padding} (output {_pool_rounding(layer.padding)})",
                        index,
                        _fn(changed, weights),
                    )
        elif isinstance(layer, BatchNorm):
            yield from _bn_variants(index, layer, weights)
        elif isinstance(layer, Flatten):
            other = "chw" if layer.order == "hwc" else "hwc"
            yield (
                "flatten-order",
                f"the feature map is flattened in {other} order where the dense kernel's rows "
                f"are in {layer.order} order",
                f"permute the first dense layer's rows from {other} to "
                f"{layer.order} order (or flatten in {layer.order} order)",
                index,
                _fn(Flatten(other), weights),
            )
        elif isinstance(layer, Dense):
            params = weights[layer.name]
            if params.kernel.shape[0] == params.kernel.shape[1]:
                kernel = np.ascontiguousarray(params.kernel.T)
                yield (
                    "kernel-layout",
                    f"{layer.name}'s kernel is transposed ((out, in) read as (in, out))",
                    f"transpose {layer.name}'s kernel",
                    index,
                    partial(_dense, kernel=kernel, bias=params.bias),
                )
        elif isinstance(layer, Softmax):
            yield (
                "double-softmax",
                "Softmax is applied twice",
                "remove the second Softmax",
                index,
                lambda x: softmax(softmax(x)),
            )


def _fn(layer: Layer, weights: AlexNetWeights) -> Callable[[np.ndarray], np.ndarray]:
    step = _step(layer, weights)
    assert step is not None
    return step


def _pool_rounding(padding: str) -> str:
    return {"VALID": "rounded down", "SAME": "ceil(size / stride), zero-free padding", "CEIL": "rounded up"}[padding]


def _conv_variants(index: int, layer: Conv, weights: AlexNetWeights) -> Iterator[Variant]:
    params = weights[layer.name]
    kernel, bias = params.kernel, params.bias

    def conv(k: np.ndarray, b: np.ndarray, padding: Any = layer.padding) -> Callable[[np.ndarray], np.ndarray]:
        changed = Conv(layer.name, layer.filters, layer.kernel, layer.stride, padding, layer.groups)
        return lambda x: conv2d(
            x, k, b, stride=layer.stride, pads=conv_pads(changed, x.shape[1], x.shape[2]), groups=layer.groups
        )

    kh, kw = layer.kernel
    paddings: list[Any] = ["VALID", "SAME"] + [((p, p), (p, p)) for p in range(1, max(kh, kw) // 2 + 1)]
    for padding in paddings:
        if padding != layer.padding:
            yield (
                "conv-padding",
                f"{layer.name} is padded {_pad_text(padding)} instead of {_pad_text(layer.padding)}",
                f"pad {layer.name} {_pad_text(layer.padding)}",
                index,
                conv(kernel, bias, padding),
            )
    layouts = [
        ("its kernel's spatial axes are swapped (kh, kw transposed)", kernel.transpose(1, 0, 2, 3)),
        ("its kernel is flipped spatially (convolution instead of cross-correlation)", kernel[::-1, ::-1]),
        ("its kernel is OIHW memory read as HWIO", np.transpose(kernel, (3, 2, 0, 1)).reshape(kernel.shape)),
    ]
    for detail, changed in layouts:
        if changed.shape == kernel.shape and not np.array_equal(changed, kernel):
            yield (
                "kernel-layout",
                f"{layer.name}: {detail}",
                f"give {layer.name} its kernel in HWIO (kh, kw, in/groups, out) order",
                index,
                conv(np.ascontiguousarray(changed), bias),
            )
    if layer.groups == 2:
        half = kernel.shape[3] // 2
        swapped = np.concatenate([kernel[..., half:], kernel[..., :half]], axis=3)
        swapped_bias = np.concatenate([bias[half:], bias[:half]])
        yield (
            "group-order",
            f"{layer.name}: the two halves of its grouped kernel are swapped",
            f"swap the halves of {layer.name}'s kernel back",
            index,
            conv(swapped, bias),
        )
        yield (
            "group-order",
            f"{layer.name}: the two halves of its grouped kernel and bias are swapped",
            f"swap the halves of {layer.name}'s kernel and bias back",
            index,
            conv(swapped, swapped_bias),
        )
        cin = kernel.shape[2]
        yield (
            "group-order",
            f"{layer.name}: its two input channel groups are swapped",
            f"feed {layer.name}'s input groups in order",
            index,
            lambda x: conv(kernel, bias)(np.concatenate([x[..., cin:], x[..., :cin]], axis=3)),
        )


def _pad_text(padding: Any) -> str:
    return padding if isinstance(padding, str) else f"explicitly by {padding}"


def _input_variants(spec: Any) -> Iterator[Variant]:
    """What the first layer computes when the input is prepared another way (x: the right input)."""
    mean = np.asarray(spec.mean, dtype=np.float64) if spec.mean else np.zeros(spec.channels)
    candidates: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("pixels scaled by 1/255 (0-1 where the network takes 0-255 steps)", lambda x: x / 255),
        ("pixels scaled by 255 (0-255 where the network takes 0-1 steps)", lambda x: x * 255),
    ]
    if mean.any():
        candidates += [
            ("the mean is not subtracted", lambda x: x + mean),
            ("the mean is subtracted twice", lambda x: x - mean),
            ("the mean is subtracted in the reversed channel order", lambda x: x + mean - mean[::-1]),
            ("0-1 pixels without the mean subtracted", lambda x: (x + mean) / 255),
        ]
    for detail, transform in candidates:
        yield (
            "mean-or-scale",
            detail,
            f"feed pixel * {spec.scale:g} - mean {tuple(spec.mean)} in {spec.channel_order} order",
            None,
            transform,
        )


def _lrn_variants(index: int, layer: LRN) -> Iterator[Variant]:
    alphas = {layer.alpha, layer.alpha * layer.size, layer.alpha / layer.size}
    for alpha, k, size in itertools.product(
        sorted(alphas), sorted({layer.k, 1.0, 2.0}), sorted({layer.size, 3, 5, 7, 11})
    ):
        changed = LRN(size=size, alpha=alpha, beta=layer.beta, k=k)
        if changed == layer:
            continue
        yield (
            "lrn-constants",
            f"LRN at layer {index} computes size={size}, alpha={alpha:g}, beta={layer.beta:g}, k={k:g} "
            f"(Caffe convention; the architecture says size={layer.size}, alpha={layer.alpha:g}, k={layer.k:g})",
            f"use size={layer.size}, alpha={layer.alpha:g}, k={layer.k:g} in Caffe's convention (TF: "
            f"depth_radius={layer.tf_depth_radius}, alpha={layer.tf_alpha:g}, bias={layer.k:g})",
            index,
            partial(_lrn, params=changed),
        )


def _dense(x: np.ndarray, *, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(x @ kernel.astype(np.float64) + bias.astype(np.float64))


def _bn(x: np.ndarray, *, stats: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], epsilon: float) -> np.ndarray:
    from alexnet_export.reference import batch_norm

    gamma, beta, mean, variance = stats
    return batch_norm(x, gamma, beta, mean, variance, epsilon)


def _through(
    layers: Sequence[tuple[int, Layer]],
    weights: AlexNetWeights,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    x: np.ndarray,
    swap: tuple[int, Callable[[np.ndarray], np.ndarray]] | None,
) -> np.ndarray:
    """The chain from ``x`` (first transformed, or with one layer swapped): a deviation's prediction."""
    return run_chain(layers, transform(x) if transform is not None else x, weights, swap)


def _lrn(x: np.ndarray, params: LRN) -> np.ndarray:
    from alexnet_export.reference import lrn

    return lrn(x, params)


def _bn_variants(index: int, layer: BatchNorm, weights: AlexNetWeights) -> Iterator[Variant]:
    from alexnet_export.reference import batch_norm

    norm = weights.norms[layer.name]
    g, b, m, v = (np.asarray(a, dtype=np.float64) for a in (norm.gamma, norm.beta, norm.mean, norm.variance))
    for eps in (1e-5, 1e-3, 1e-4, 1e-2, 0.0):
        if eps != layer.epsilon:
            yield (
                "batchnorm",
                f"{layer.name} uses epsilon {eps:g} instead of {layer.epsilon:g}",
                f"use epsilon {layer.epsilon:g}",
                index,
                partial(_bn, stats=(g, b, m, v), epsilon=eps),
            )
    yield (
        "batchnorm",
        f"{layer.name} treats the moving variance as a standard deviation",
        f"divide by sqrt(variance + {layer.epsilon:g})",
        index,
        lambda x: g * (x - m) / (v + layer.epsilon) + b,
    )
    yield (
        "batchnorm",
        f"{layer.name}'s moving mean and variance are swapped",
        "read the statistics as [gamma, beta, mean, variance]",
        index,
        lambda x: batch_norm(x, g, b, v, m, layer.epsilon),
    )
    yield ("batchnorm", f"{layer.name} is not applied (statistics ignored)", f"apply {layer.name}", index, lambda x: x)


# --- comparing -----------------------------------------------------------------------------------------


def as_oracle_layout(
    actual: np.ndarray, expected_shape: tuple[int, ...], expected: np.ndarray
) -> tuple[np.ndarray, str]:
    """``actual`` in the oracle's layout (``nhwc``/``nchw`` detected from the shapes) and which it was."""
    if actual.ndim == 4 and len(expected_shape) == 4:
        nchw = actual.transpose(0, 2, 3, 1)
        fits = [(a, name) for a, name in ((actual, "nhwc"), (nchw, "nchw")) if a.shape == expected_shape]
        if len(fits) == 2:
            return max(fits, key=lambda f: _cosine(f[0], expected))
        if fits:
            return fits[0]
        if actual.shape[-1] != expected_shape[-1] and actual.shape[1] == expected_shape[-1]:
            return nchw, "nchw"  # channels first, other spatial size: shown in the oracle's layout
        return actual, "nhwc"
    if actual.shape != expected_shape and actual.size == int(np.prod(expected_shape)):
        return actual.reshape(expected_shape), "flat"
    return actual, "-"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    norm = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64 / norm) if norm else (1.0 if not a64.any() and not b64.any() else 0.0)


def measure(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max rel = max |a - e| / max |e|, cosine) or NaNs when the shapes differ."""
    if actual.shape != expected.shape:
        return float("nan"), float("nan")
    a64 = np.asarray(actual, np.float64)
    if not np.isfinite(a64).all():
        return float("inf"), float("nan")
    scale = float(np.abs(expected).max()) or 1.0
    return float(np.abs(a64 - expected).max()) / scale, _cosine(a64, expected)


def diagnose(
    path: Path, weights: AlexNetWeights, images: np.ndarray, *, inputs: str = "", opened: Opened | None = None
) -> Diagnosis:
    """Compare every layer of the artifact at ``path`` with the oracle on ``images`` and explain the first gap.

    Args:
        path: SavedModel folder, .onnx or .tflite.
        weights: the source weights (their architecture says what to compute).
        images: the network's input, float32 NHWC (quantised to whole pixels first, so that an artifact
            that takes uint8 pixels sees exactly the same images).
        inputs: how the images were made (for the report).
        opened: the artifact already opened (tests).

    """
    arch = weights.arch
    pixels = input_to_rgb(images, arch.input)
    images = rgb_to_input(pixels, arch.input).astype(np.float32)
    artifact = opened or open_artifact(path)
    tolerance = LAYER_TOLERANCE[artifact.precision]
    rows = align(arch, artifact.probes)
    if artifact.input_dtype == "uint8":
        feed: np.ndarray = pixels if arch.input.channels == 3 else pixels[..., :1]
    else:
        feed = images
    if artifact.input_layout == "nchw":
        feed = np.ascontiguousarray(feed.transpose(0, 3, 1, 2))
    wanted = sorted({row.probe.name for row in rows if row.probe} | set(artifact.outputs))
    values = artifact.fetch(feed, wanted)

    oracle: list[np.ndarray] = []
    x = images.astype(np.float64)
    for layer in arch.layers:
        x = _oracle_step(layer, weights, x)
        oracle.append(x)
    logits = oracle[-2] if arch.has_softmax else oracle[-1]  # the Softmax head's input
    probabilities = softmax(logits)
    covered = {row.probe.name for row in rows if row.probe}
    for name in artifact.outputs:
        if name not in covered and values[name].ndim == 2 and values[name].shape[1] == logits.shape[1]:
            rows.append(Row([], Probe(name, "output", "graph output"), output=artifact.names.get(name, name)))

    first = None
    for position, row in enumerate(rows):
        if row.output is not None and row.probe is not None:
            actual = values[row.probe.name].astype(np.float64)
            matches = [measure(actual, ref) for ref in (logits, probabilities)]
            row.max_rel, row.cosine = min(matches, key=lambda m: m[0] if np.isfinite(m[0]) else np.inf)
            row.shape = row.oracle_shape = tuple(actual.shape)
            row.actual, row.layout = actual, "-"
            row.note = "vs logits or probabilities"
        elif row.probe is None:
            row.oracle_shape = tuple(oracle[row.layers[-1][0]].shape)
        else:
            expected = oracle[row.layers[-1][0]]
            actual, row.layout = as_oracle_layout(values[row.probe.name].astype(np.float64), expected.shape, expected)
            row.shape, row.oracle_shape, row.actual = tuple(actual.shape), tuple(expected.shape), actual
            row.max_rel, row.cosine = measure(actual, expected)
            if actual.shape != expected.shape:
                row.note = f"shape {tuple(actual.shape)} where the oracle has {tuple(expected.shape)}"
        row.passed = bool(np.isfinite(row.max_rel) and row.max_rel <= tolerance)
        if not row.passed and first is None:
            first = position
    cause = None
    if first is not None:
        cause = explain(rows[first], weights, arch, images, oracle, logits, tolerance)
    for row in rows:
        row.actual = None
    return Diagnosis(str(path), artifact.format, artifact.precision, arch.name, tolerance, inputs, rows, first, cause)


def explain(
    row: Row,
    weights: AlexNetWeights,
    arch: Architecture,
    images: np.ndarray,
    oracle: list[np.ndarray],
    logits: np.ndarray,
    tolerance: float,
) -> Cause | None:
    """The known deviation that reproduces ``row``'s tensor best, if any reproduces it within ``tolerance``."""
    if row.actual is None:
        return None
    best: Cause | None = None
    tried: list[tuple[str, str, str, Callable[[], np.ndarray]]] = []
    if row.output is not None:
        tried.append(
            (
                "double-softmax",
                "Softmax is applied to the probabilities again (twice in all)",
                "remove the second Softmax",
                lambda: softmax(softmax(logits)),
            )
        )
    else:
        start = row.layers[0][0]
        x_in = images.astype(np.float64) if start == 0 else oracle[start - 1]
        for name, detail, fix, index, fn in variants(row, weights, arch):
            if index is None:
                tried.append((name, detail, fix, partial(_through, row.layers, weights, fn, x_in, None)))
            else:
                tried.append((name, detail, fix, partial(_through, row.layers, weights, None, x_in, (index, fn))))
    for name, detail, fix, compute in tried:
        try:
            with np.errstate(all="ignore"):  # e.g. sqrt of a mean read as a variance: NaN, simply no match
                expected = compute()
        except (ValueError, IndexError):  # a variant whose shapes cannot work here
            continue
        actual, _ = as_oracle_layout(row.actual, expected.shape, expected)
        max_rel, cosine = measure(actual, expected)
        if np.isfinite(max_rel) and max_rel <= tolerance and (best is None or max_rel < best.max_rel_under_cause):
            best = Cause(name, detail, fix, max_rel, cosine)
    return best


__all__ = ["CAUSES", "SCHEMA_PATH", "Diagnosis", "align", "diagnose", "open_artifact"]
