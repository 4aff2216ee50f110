"""Structural verification: an artifact's graph against the graph its architecture and options imply.

Logits on sampled inputs and bit-exact weights say nothing about ops that only fire on other inputs
(a trigger that rewrites the output for an all-black image). So ``verify`` also compares the whole
graph, op by op, with the one the toolkit's own exporter builds for the same architecture and
options: op types and order, every attribute (kernels, strides, pads, groups, LRN constants, pool
sizes), tensor shapes and dtypes, which tensors are weights, inputs and outputs; nothing extra and
nothing missing.

- ONNX: the exporter's weightless skeleton (:func:`alexnet_export.exporters.onnx.build`) at full size.
- SavedModel: ``saved_model.pb`` of the canonical module saved without its checkpoint (function
  library, signatures, object graph); TensorFlow's numeric function-name suffixes are ignored.
- TFLite: the converter's output for the same architecture at a reduced width (full-size conversion
  takes seconds); a tensor dimension matches when it equals the expected one or that times the width
  divisor, and everything else must be equal.

The options (precision, layout, groups mode, embedded preprocessing) are read from the artifact's
content (tensor dtypes, the input's shape, the ops), never from its manifest; a manifest that says
otherwise is reported.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet_export.trust import FUNCTION_ID
from converters.weights import AlexNetWeights

MAX_LISTED = 6  # differences named per artifact; the count of the rest follows


@dataclass(frozen=True)
class Content:
    """What an artifact's own content says it is."""

    precision: str = "fp32"
    layout: str = "nhwc"
    groups: str = "native"
    embed_preprocessing: bool = False
    opset: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values."""
        out: dict[str, Any] = {
            "precision": self.precision,
            "layout": self.layout,
            "groups": self.groups,
            "embed_preprocessing": self.embed_preprocessing,
        }
        if self.opset is not None:
            out["opset"] = self.opset
        return out


@dataclass(frozen=True)
class StructureCheck:
    """The structural comparison of one artifact: ``matches`` or ``differs``."""

    artifact: str
    status: str
    differences: tuple[str, ...] = ()
    content: Content = field(default_factory=Content)
    manifest: tuple[str, ...] = ()  # where the manifest disagrees with the content

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "artifact": self.artifact,
            "status": self.status,
            "differences": list(self.differences),
            "content": self.content.to_json(),
            "manifest_mismatches": list(self.manifest),
        }


# --- diffs --------------------------------------------------------------------------------------


def diff_ops(found: Sequence[tuple[str, str, str]], wanted: Sequence[tuple[str, str, str]], where: str) -> list[str]:
    """Differences between two op lists of ``(name, type, canonical form)``, each naming the op."""
    if list(found) == list(wanted):
        return []
    mine = {name: (kind, form) for name, kind, form in found}
    theirs = {name: (kind, form) for name, kind, form in wanted}
    out = [
        f"{where}: extra op {kind} {name!r}, not in the graph the architecture implies"
        for name, (kind, _) in mine.items()
        if name not in theirs
    ]
    out += [f"{where}: missing op {kind} {name!r}" for name, (kind, _) in theirs.items() if name not in mine]
    for name, (kind, form) in mine.items():
        if name in theirs and (kind, form) != theirs[name]:
            out.append(
                f"{where}: op {kind} {name!r} differs: {_first_line_diff(form, theirs[name][1], theirs[name][0])}"
            )
    if not out and sorted(found) != sorted(wanted):  # same names, forms equal by name: a repeated name differs
        out.append(f"{where}: ops differ in their repeated names")
    # Otherwise the same ops in another order: the same dataflow graph, as long as the order is one the
    # graph allows (checked by the caller where the format runs ops in file order).
    return out


def _first_line_diff(form: str, expected: str, expected_kind: str) -> str:
    mine, theirs = form.splitlines(), expected.splitlines()
    for index, line in enumerate(mine):
        if index >= len(theirs) or line != theirs[index]:
            other = theirs[index] if index < len(theirs) else "nothing"
            return f"{line.strip()[:160]} where {expected_kind} has {other.strip()[:160]}"
    return f"fewer lines than expected ({theirs[len(mine)].strip()[:160] if len(theirs) > len(mine) else ''})"


def _finish(artifact: Path, differences: list[str], content: Content, manifest: list[str]) -> StructureCheck:
    listed = differences[:MAX_LISTED]
    if len(differences) > MAX_LISTED:
        listed.append(f"... and {len(differences) - MAX_LISTED} more differences")
    return StructureCheck(
        str(artifact), "differs" if differences else "matches", tuple(listed), content, tuple(manifest)
    )


def manifest_mismatches(path: Path, fmt: str, content: Content, arch_has_groups: bool) -> list[str]:
    """Where the manifest beside (or inside) ``path`` disagrees with what the content says."""
    from alexnet_export.artifacts import artifact_manifest

    recorded = artifact_manifest(path)
    if not recorded:
        return []
    out = []
    if recorded.get("format") not in (None, fmt):
        out.append(f"manifest says format {recorded.get('format')}; the artifact is {fmt}")
    options = recorded.get("options") or {}
    facts = content.to_json()
    for key in ("precision", "layout", "groups", "embed_preprocessing", "opset"):
        if key not in options or key not in facts or (key == "groups" and not arch_has_groups):
            continue
        if options[key] != facts[key]:
            out.append(f"manifest says {key} {options[key]}; the artifact's content is {facts[key]}")
    return out


# --- ONNX ---------------------------------------------------------------------------------------


def onnx_content(model: Any) -> Content:
    """Layout, groups mode, embedded preprocessing and opset from an ONNX model's graph."""
    from onnx import TensorProto

    entry = model.graph.input[0].type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in entry.shape.dim]
    layout = "nchw" if len(dims) == 4 and dims[1] in (1, 3) and dims[3] not in (1, 3) else "nhwc"
    ops = [node.op_type for node in model.graph.node]
    grouped = any(
        attr.name == "group" and attr.i > 1
        for node in model.graph.node
        if node.op_type == "Conv"
        for attr in node.attribute
    )
    groups = "split" if "Split" in ops else "native" if grouped else "dense"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return Content("fp32", layout, groups, entry.elem_type == TensorProto.UINT8, opset)


def _onnx_ops(model: Any) -> list[tuple[str, str, str]]:
    from onnx import helper

    out = []
    for index, node in enumerate(model.graph.node):
        attrs = "\n".join(
            f"attribute {a.name} = {helper.get_attribute_value(a)!r}"
            for a in sorted(node.attribute, key=lambda a: a.name)
        )
        form = f"domain {node.domain!r}\ninputs {list(node.input)}\noutputs {list(node.output)}\n{attrs}"
        out.append((node.name or f"#{index}", node.op_type, form))
    return out


def _onnx_values(values: Any) -> list[str]:
    out = []
    for value in values:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
        out.append(f"{value.name} type {tensor.elem_type} shape {dims}")
    return out


def compare_onnx(model: Any, weights: AlexNetWeights, content: Content) -> list[str]:
    """Differences between ``model`` and the exporter's model of ``weights`` with ``content``'s options."""
    from onnx import helper

    from alexnet_export.exporters.onnx import OnnxOptions, build

    options = OnnxOptions(
        opset=content.opset or 17,
        layout=content.layout,
        groups=content.groups,
        embed_preprocessing=content.embed_preprocessing,
    )
    try:
        options.check()
    except Exception as exc:
        return [f"options read from the graph are not ones the exporter writes: {exc}"]
    expected, arrays = build(weights, options)
    out = []
    if _onnx_values(model.graph.input) != _onnx_values(expected.graph.input):
        out.append(
            f"inputs {_onnx_values(model.graph.input)} where the architecture implies "
            f"{_onnx_values(expected.graph.input)}"
        )
    if _onnx_values(model.graph.output) != _onnx_values(expected.graph.output):
        out.append(
            f"outputs {_onnx_values(model.graph.output)} where the architecture implies "
            f"{_onnx_values(expected.graph.output)}"
        )
    found_opsets = sorted((o.domain, o.version) for o in model.opset_import)
    wanted_opsets = sorted((o.domain, o.version) for o in expected.opset_import)
    if found_opsets != wanted_opsets:
        out.append(f"opsets {found_opsets} where the exporter writes {wanted_opsets}")
    out += diff_ops(_onnx_ops(model), _onnx_ops(expected), "graph")
    stored = {t.name: (list(t.dims), t.data_type) for t in model.graph.initializer}
    wanted = {name: (list(a.shape), helper.np_dtype_to_tensor_dtype(a.dtype)) for name, a in arrays.items()}
    out += [f"extra weight tensor {name!r} {stored[name][0]}" for name in stored if name not in wanted]
    out += [f"missing weight tensor {name!r}" for name in wanted if name not in stored]
    out += [
        f"weight tensor {name!r}: shape {stored[name][0]} type {stored[name][1]} where the architecture implies "
        f"{wanted[name][0]} type {wanted[name][1]}"
        for name in wanted
        if name in stored and stored[name] != wanted[name]
    ]
    for kind, count in (
        ("value_info entries naming weights", sum(v.name in wanted for v in model.graph.value_info)),
        ("training_info entries", len(model.training_info)),
    ):
        if count:
            out.append(f"{count} {kind}")
    return out


# --- SavedModel ---------------------------------------------------------------------------------


_CAPTURE_NAME = re.compile(r'(key: "_user_specified_name"\s*value \{\s*s: ")\d+(")')


def _normal(text: str) -> str:
    """``text`` without TensorFlow's per-process counters (function ids, captured-tensor ids)."""
    return _CAPTURE_NAME.sub(r"\1N\2", FUNCTION_ID.sub(r"\1", text))


def _node_forms(nodes: Any) -> list[tuple[str, str, str]]:
    from google.protobuf import text_format

    return [(node.name, node.op, _normal(text_format.MessageToString(node))) for node in nodes]


def _functions(meta: Any) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for function in meta.graph_def.library.function:
        grouped.setdefault(_normal(function.signature.name), []).append(function)
    return grouped


def _function_form(function: Any) -> str:
    from google.protobuf import text_format

    return _normal(text_format.MessageToString(function))


def savedmodel_content(meta: Any, weights: AlexNetWeights) -> Content:
    """Groups mode and embedded preprocessing from a SavedModel's serving signature and ops."""
    from tensorflow.core.framework import types_pb2

    signature = meta.signature_def.get("serving_default")
    embedded = bool(signature and any(t.dtype == types_pb2.DT_UINT8 for t in signature.inputs.values()))
    ops = {node.op for function in meta.graph_def.library.function for node in function.node_def}
    arch = weights.arch
    grouped = [name for name in arch.layer_names if arch.groups_of(name) > 1]
    groups = "split" if "Split" in ops else "native"
    if grouped and groups == "native":
        kernel = weights.layers[grouped[0]].kernel
        for obj in meta.object_graph_def.nodes:
            if obj.WhichOneof("kind") == "variable" and obj.variable.name == f"{grouped[0]}/kernel":
                dims = [d.size for d in obj.variable.shape.dim]
                if len(dims) == 4 and dims[2] == kernel.shape[2] * arch.groups_of(grouped[0]):
                    groups = "dense"
    return Content("fp32", "nhwc", groups, embedded)


_SAVEDMODELS: dict[str, bytes] = {}


def expected_savedmodel(weights: AlexNetWeights, content: Content) -> Any:
    """The MetaGraphDef the SavedModel exporter writes for ``weights`` and ``content``'s options.

    It depends on the architecture, the weights' shapes and the options only, so it is made once per
    process and kept in the structure cache (:mod:`alexnet_export.cache`, kind ``savedmodel-structure``)
    for the next: an entry is used only if it passes the SavedModel trust check.
    """
    from alexnet_export.cache import cached_bytes, entry_name
    from alexnet_export.trust import check_savedmodel_proto, parse_savedmodel

    shapes = [(name, layer.kernel.shape, layer.bias.shape) for name, layer in weights.layers.items()]
    shapes += [(name, norm.gamma.shape, ()) for name, norm in weights.norms.items()]
    key = entry_name(("tensorflow",), (weights.arch.dumps(), shapes, content.groups, content.embed_preprocessing))

    def check(data: bytes, where: Path) -> None:
        check_savedmodel_proto(parse_savedmodel(data, where), where)

    if key not in _SAVEDMODELS:
        _SAVEDMODELS[key] = cached_bytes(
            "savedmodel-structure", f"{key}.pb", lambda: _saved_structure(weights, content), check
        )
    return parse_savedmodel(_SAVEDMODELS[key], Path("saved_model.pb")).meta_graphs[0]


def _saved_structure(weights: AlexNetWeights, content: Content) -> bytes:
    """``saved_model.pb`` of the canonical module of ``weights``' shapes, saved without a checkpoint."""
    from tensorflow.python.saved_model.save import save_and_return_nodes

    from alexnet_export.exporters.savedmodel import SIGNATURE_KEY
    from alexnet_export.graph import AlexNet

    module = AlexNet(
        weights, groups=content.groups, embed_preprocessing=content.embed_preprocessing, shapes_only=True
    )  # the graph only: no 244 MB of variables (0.2 s instead of 0.6 s, and no TensorFlow pool filled)
    with tempfile.TemporaryDirectory(prefix="alexnet-export-structure-") as tmp:
        save_and_return_nodes(
            module, tmp, signatures={SIGNATURE_KEY: module.signature()}, experimental_skip_checkpoint=True
        )
        del module
        return (Path(tmp) / "saved_model.pb").read_bytes()


def compare_savedmodel(meta: Any, expected: Any) -> list[str]:
    """Differences between two MetaGraphDefs: signatures, main graph, function library, object graph."""
    from google.protobuf import text_format

    out = []
    found_tags, wanted_tags = sorted(meta.meta_info_def.tags), sorted(expected.meta_info_def.tags)
    if found_tags != wanted_tags:
        out.append(f"tags {found_tags} where the exporter writes {wanted_tags}")
    for key in sorted(set(meta.signature_def) | set(expected.signature_def)):
        if key not in expected.signature_def:
            out.append(f"extra signature {key!r}")
        elif key not in meta.signature_def:
            out.append(f"missing signature {key!r}")
        elif _normal(text_format.MessageToString(meta.signature_def[key])) != _normal(
            text_format.MessageToString(expected.signature_def[key])
        ):
            detail = _first_line_diff(
                text_format.MessageToString(meta.signature_def[key]),
                text_format.MessageToString(expected.signature_def[key]),
                "the exporter",
            )
            out.append(f"signature {key!r} differs: {detail}")
    out += diff_ops(_node_forms(meta.graph_def.node), _node_forms(expected.graph_def.node), "main graph")
    found, wanted = _functions(meta), _functions(expected)
    out += [f"extra function {name}" for name in found if name not in wanted]
    out += [f"missing function {name}" for name in wanted if name not in found]
    forms = {id(f): _function_form(f) for group in (*found.values(), *wanted.values()) for f in group}
    for name in (n for n in found if n in wanted):
        mine = sorted(found[name], key=lambda f: forms[id(f)])
        theirs = sorted(wanted[name], key=lambda f: forms[id(f)])
        if [forms[id(f)] for f in mine] == [forms[id(f)] for f in theirs]:
            continue
        if len(mine) != len(theirs):
            out.append(f"function {name}: {len(mine)} traces where the exporter writes {len(theirs)}")
            continue
        for a, b in zip(mine, theirs, strict=True):
            node_diffs = diff_ops(_node_forms(a.node_def), _node_forms(b.node_def), f"function {name}")
            if node_diffs:
                out += node_diffs
            elif forms[id(a)] != forms[id(b)]:
                out.append(
                    f"function {name}: signature or outputs differ: "
                    f"{_first_line_diff(forms[id(a)], forms[id(b)], 'the exporter')}"
                )
    mine_objects = [_normal(text_format.MessageToString(n)) for n in meta.object_graph_def.nodes]
    their_objects = [_normal(text_format.MessageToString(n)) for n in expected.object_graph_def.nodes]
    if mine_objects != their_objects:
        index = next(
            (i for i, (a, b) in enumerate(zip(mine_objects, their_objects, strict=False)) if a != b),
            min(len(mine_objects), len(their_objects)),
        )
        detail = (
            _first_line_diff(mine_objects[index], their_objects[index], "the exporter")
            if index < min(len(mine_objects), len(their_objects))
            else f"{len(mine_objects)} objects where the exporter writes {len(their_objects)}"
        )
        out.append(f"object graph node {index} differs: {detail}")
    if _normal(str(meta.saver_def)) != _normal(str(expected.saver_def)):
        out.append("saver differs from the exporter's")
    return out


# --- TFLite -------------------------------------------------------------------------------------


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tflite_names(model: Any) -> list[str]:
    from alexnet_export.trust import tflite_op_names

    names = tflite_op_names()
    return [
        names.get(max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode()), "?")
        for i in range(model.OperatorCodesLength())
    ]


def tflite_content(model: Any) -> Content:
    """Precision, groups mode and embedded preprocessing from a TFLite model's ops and tensor types."""
    schema = _schema()
    graph = model.Subgraphs(0)
    codes = _tflite_names(model)
    ops = [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]
    kinds = {getattr(schema.TensorType, k): k for k in dir(schema.TensorType) if not k.startswith("_")}

    def type_of(index: int) -> str:
        return str(kinds.get(graph.Tensors(index).Type(), "?"))

    weights_types, activation_types = set(), set()
    convs = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if codes[op.OpcodeIndex()] in ("CONV_2D", "FULLY_CONNECTED"):
            inputs = op.InputsAsNumpy()
            weights_types.add(type_of(int(inputs[1])))
            activation_types.add(type_of(int(inputs[0])))
            if codes[op.OpcodeIndex()] == "CONV_2D":
                convs.append(
                    (graph.Tensors(int(inputs[0])).ShapeAsNumpy(), graph.Tensors(int(inputs[1])).ShapeAsNumpy())
                )
    if "INT8" in activation_types:
        precision = "int8"
    elif "INT8" in weights_types:
        precision = "int8-dynamic"
    elif "DEQUANTIZE" in ops:
        precision = "fp16"
    else:
        precision = "fp32"
    grouped = any(len(x) == 4 and len(k) == 4 and x[3] != k[3] for x, k in convs)
    groups = "split" if "SPLIT" in ops or "SPLIT_V" in ops else "native" if grouped else "dense"
    entry = graph.Tensors(int(graph.InputsAsNumpy()[0]))
    quantization = entry.Quantization()
    unquantized = quantization is None or quantization.ScaleLength() == 0
    embedded = type_of(int(graph.InputsAsNumpy()[0])) == "UINT8" and unquantized
    return Content(precision, "nhwc", groups, embedded)


def scaled_for_structure(weights: AlexNetWeights, precision: str) -> tuple[AlexNetWeights, int]:
    """Seeded weights of the same architecture at a width divided by 8, 4 or 2 (1: ``weights`` itself).

    The largest divisor :func:`converters.synthetic.scaled_like` accepts that also keeps every kernel on
    the same side of the converter's 1024-element quantisation threshold.
    """
    from converters.synthetic import scaled_like

    for divisor in (8, 4, 2):
        small = scaled_like(weights, divisor)
        if small is None:
            continue
        if precision != "fp32" and any(
            (small.layers[n].kernel.size >= 1024) != (weights.layers[n].kernel.size >= 1024)
            for n in weights.arch.layer_names
        ):
            continue
        return small, divisor
    return weights, 1


def _tflite_form(model: Any) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, tuple[int, ...]]], list[str]]:
    """Ops as (name, type, canonical form), tensors as (canonical form, name, shape), and the signature."""
    schema = _schema()
    graph = model.Subgraphs(0)
    codes = _tflite_names(model)
    tensors = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        buffer = model.Buffers(tensor.Buffer()) if tensor.Buffer() < model.BuffersLength() else None
        constant = bool(buffer is not None and (buffer.DataLength() or buffer.Size()))
        quantized = tensor.Quantization() is not None and tensor.Quantization().ScaleLength() > 0
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        signature = tuple(int(d) for d in tensor.ShapeSignatureAsNumpy()) if tensor.ShapeSignatureLength() else ()
        name = (tensor.Name() or b"").decode(errors="replace")
        form = f"type {tensor.Type()} constant {constant} quantized {quantized} signature-rank {len(signature)}"
        tensors.append((form, name, shape))
    ops = []
    for i in range(graph.OperatorsLength()):
        op = schema.OperatorT.InitFromObj(graph.Operators(i))
        options = op.builtinOptions
        attrs = sorted(vars(options).items()) if options is not None else []
        inputs = [int(x) for x in (op.inputs if op.inputs is not None else [])]
        outputs = [int(x) for x in (op.outputs if op.outputs is not None else [])]
        form = (
            f"options {op.builtinOptionsType} {attrs!r}\ninputs {[tensors[x][1] if x >= 0 else '-' for x in inputs]}"
            f"\noutputs {[tensors[x][1] for x in outputs]}\ncustom {op.customOptions is not None}"
        )
        name = tensors[outputs[0]][1] if outputs else f"#{i}"
        ops.append((name, codes[op.opcodeIndex], form))
    signature_parts = []
    for s in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(s)
        ins = sorted(
            (sig.Inputs(j).Name().decode(), tensors[sig.Inputs(j).TensorIndex()][1]) for j in range(sig.InputsLength())
        )
        outs = sorted(
            (sig.Outputs(j).Name().decode(), tensors[sig.Outputs(j).TensorIndex()][1])
            for j in range(sig.OutputsLength())
        )
        signature_parts.append(f"{sig.SignatureKey().decode()} {ins} {outs}")
    graph_io = [tensors[int(x)][1] for x in graph.InputsAsNumpy()], [tensors[int(x)][1] for x in graph.OutputsAsNumpy()]
    signature_parts.append(f"graph inputs {graph_io[0]} outputs {graph_io[1]}")
    return ops, tensors, signature_parts


def compare_tflite(model: Any, expected: Any, divisor: int) -> list[str]:
    """Differences between two TFLite models, the expected one ``divisor`` times narrower."""
    ops, tensors, signature = _tflite_form(model)
    wanted_ops, wanted_tensors, wanted_signature = _tflite_form(expected)
    out = []
    if signature != wanted_signature:
        out.append(f"signature/inputs/outputs {signature} where the converter writes {wanted_signature}")
    out += diff_ops(ops, wanted_ops, "graph")
    out += _schedule_problems(model)
    by_name = {name: (form, shape) for form, name, shape in wanted_tensors}
    found_names = {name for _, name, _ in tensors}
    out += [f"extra tensor {name!r}" for _, name, _ in tensors if name not in by_name]
    out += [f"missing tensor {name!r}" for name in by_name if name not in found_names]
    for form, name, shape in tensors:
        if name not in by_name:
            continue
        wanted_form, wanted_shape = by_name[name]
        if form != wanted_form:
            out.append(f"tensor {name!r}: {form} where the converter writes {wanted_form}")
        elif len(shape) != len(wanted_shape) or any(
            a not in (e, e * divisor) for a, e in zip(shape, wanted_shape, strict=True)
        ):
            scale = f" (at width / {divisor})" if divisor > 1 else ""
            out.append(f"tensor {name!r}: shape {list(shape)} where the converter writes {list(wanted_shape)}{scale}")
    return out


def _schedule_problems(model: Any) -> list[str]:
    """LiteRT runs ops in file order: each op's inputs must be graph inputs, constants or earlier outputs."""
    graph = model.Subgraphs(0)
    ready = {int(i) for i in graph.InputsAsNumpy()} if graph.InputsLength() else set()
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        if tensor.Buffer() < model.BuffersLength() and model.Buffers(tensor.Buffer()).DataLength():
            ready.add(index)
    for position in range(graph.OperatorsLength()):
        op = graph.Operators(position)
        missing = [int(i) for i in op.InputsAsNumpy() if i >= 0 and int(i) not in ready] if op.InputsLength() else []
        if missing:
            name = (graph.Tensors(missing[0]).Name() or b"").decode(errors="replace")
            return [f"graph: op {position} reads tensor {name!r} before any op writes it"]
        if op.OutputsLength():
            ready.update(int(i) for i in op.OutputsAsNumpy())
    return []


_TFLITE_CACHE: dict[tuple[str, str, str, bool, int], tuple[bytes | memoryview, int]] = {}


def expected_tflite(weights: AlexNetWeights, content: Content) -> tuple[Any, int]:
    """The converter's model for ``weights``' architecture with ``content``'s options, and its width divisor.

    fp32/fp16: the full-width structure placement builds (divisor 1: every dimension compared exactly),
    from the same cached small conversions ``export`` used. Otherwise (int8, or a structure placement
    does not model): one conversion at a reduced width.
    """
    from alexnet_export.exporters import tflite_placement
    from alexnet_export.exporters.tflite import PLACED_PRECISIONS, TFLiteOptions, convert, convert_small
    from alexnet_export.stored import graph_params

    options = TFLiteOptions(
        precision=content.precision, groups=content.groups, embed_preprocessing=content.embed_preprocessing
    )
    if content.precision in PLACED_PRECISIONS:
        try:
            model, _ = tflite_placement.full_structure(
                weights, lambda small: convert_small(small, options), lambda w: graph_params(w, options.groups)[1]
            )
        except tflite_placement.NotPlaceable:
            pass
        else:
            return _schema().Model.GetRootAs(tflite_placement.pack(model), 0), 1
    small, divisor = scaled_for_structure(weights, content.precision)
    key = (weights.arch.dumps(), content.precision, content.groups, content.embed_preprocessing, weights.num_classes)
    if key not in _TFLITE_CACHE:
        _TFLITE_CACHE[key] = (convert(small, options, placement=False), divisor)
    buffer, divisor = _TFLITE_CACHE[key]
    return _schema().Model.GetRootAs(buffer, 0), divisor


# --- entry point --------------------------------------------------------------------------------


def _candidates(first: Content, arch_has_groups: bool) -> list[Content]:
    if not arch_has_groups:
        return [first]
    others = [g for g in ("native", "split", "dense") if g != first.groups]
    return [first, *(Content(first.precision, first.layout, g, first.embed_preprocessing, first.opset) for g in others)]


def check_structure(path: Path, fmt: str, weights: AlexNetWeights) -> StructureCheck:
    """Check the artifact at ``path`` with :mod:`alexnet_export.trust`, then compare it with its implied graph.

    ``weights`` are the source weights bound to the architecture the artifact must implement. The
    pre-load check is recorded, so the runtimes that load the artifact next do not parse it again.

    Raises:
        InputError: the artifact is refused by :mod:`alexnet_export.trust`.

    """
    from alexnet_export import trust

    arch = weights.arch
    has_groups = any(arch.groups_of(name) > 1 for name in arch.layer_names)
    if fmt == "onnx":
        model = trust.load_onnx(path)
        content = onnx_content(model)
        best = _best([(c, compare_onnx(model, weights, c)) for c in _candidates(content, has_groups)[:1]])
        if best[1] and has_groups:
            best = _best([best] + [(c, compare_onnx(model, weights, c)) for c in _candidates(content, True)[1:]])
    elif fmt == "savedmodel":
        meta = trust.check_savedmodel(path).meta_graphs[0]
        content = savedmodel_content(meta, weights)
        best = (content, compare_savedmodel(meta, expected_savedmodel(weights, content)))
        if best[1] and has_groups:
            best = _best(
                [best]
                + [
                    (c, compare_savedmodel(meta, expected_savedmodel(weights, c)))
                    for c in _candidates(content, True)[1:]
                ]
            )
    else:
        model = trust.read_tflite(path)
        content = tflite_content(model)
        expected, divisor = expected_tflite(weights, content)
        best = (content, compare_tflite(model, expected, divisor))
    trust.mark_checked(path, fmt)
    chosen, differences = best
    return _finish(path, differences, chosen, manifest_mismatches(path, fmt, chosen, has_groups))


def _best(results: Sequence[tuple[Content, list[str]]]) -> tuple[Content, list[str]]:
    return min(results, key=lambda item: len(item[1]))
