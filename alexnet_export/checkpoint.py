"""TensorFlow checkpoints (TF1 ``Saver`` and TF2 ``tf.train.Checkpoint``) read without running any graph.

A checkpoint is a prefix (``model.ckpt`` with ``.index`` and ``.data-*`` beside it) or the folder holding
the ``checkpoint`` file that names it. Tensors are read with TF's checkpoint reader, their shapes known
from the index before any is read.

When a ``.meta`` is beside it, the architecture is read from the MetaGraphDef, parsed as a protobuf and
never imported or run: starting at the logits (what feeds the Softmax, the cross-entropy loss or an
ArgMax), the chain of Conv2D / BiasAdd / Add / Relu / LRN / MaxPool / Reshape / MatMul ops is followed
back to the input placeholder. Grouped convolutions written as split-conv-concat become ``groups``;
dropout subgraphs (random masks, keep_prob) and training ops are skipped; the variables are bound to
layers by the graph, so unnamed variables (``Variable``, ``Variable_1``...) work.

Without a ``.meta``, ``--arch`` names the architecture, and each layer's variables are found by name
(``conv1/weights``, ``conv1/kernel``, ``conv1/biases``, ``conv1/bias``, also inside TF2 object paths);
where an architecture records ``unnamed_variables`` (mnist: all kernels, then all biases, as its source
creates them; ``shared/NETWORKS.md``), ``Variable``, ``Variable_1``, ... are taken in that order.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.arch import (
    LRN,
    Architecture,
    Conv,
    Dense,
    Flatten,
    InputSpec,
    Layer,
    MaxPool,
    ReLU,
    check_architecture,
    first_difference,
    matching_preset,
)
from converters.errors import WeightsError
from converters.weights import AlexNetWeights, Source, build_weights, file_sha256

LOGIT_CONSUMERS = {
    "Softmax": 0,
    "SoftmaxCrossEntropyWithLogits": 0,
    "SparseSoftmaxCrossEntropyWithLogits": 0,
    "ArgMax": 0,
    "LogSoftmax": 0,
}
PASS_THROUGH = {"Identity", "StopGradient", "Snapshot"}
SHAPE_OPS = {"Shape", "ShapeN", "Size", "Rank"}
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "TruncatedNormal", "RandomUniformInt"}
DROPOUT_OPS = {"Mul", "RealDiv", "Div", "SelectV2", "Select", "Floor", "Cast", "AddV2", "Add"}
VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}
MAX_META_BYTES = 1 << 30


class CheckpointError(WeightsError):
    """A checkpoint, or the graph beside it, that this toolkit cannot take; names the node or variable."""


def checkpoint_prefix(path: str | os.PathLike[str]) -> Path | None:
    """The checkpoint prefix ``path`` names (a prefix, one of its files, or the folder), else ``None``."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if not state.is_file():
            return None
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.MULTILINE)
        if match is None:
            raise CheckpointError(f"{state}: expected a model_checkpoint_path line, received none")
        prefix = Path(match.group(1))
        return prefix if prefix.is_absolute() else path / prefix
    for suffix in (".index", ".meta"):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    match = re.fullmatch(r"(.*)\.data-\d{5}-of-\d{5}", path.name)
    if match:
        return path.with_name(match.group(1))
    if not path.exists() and path.with_name(path.name + ".index").is_file():
        return path
    return None


@dataclass(frozen=True)
class Bound:
    """Checkpoint keys of one layer's kernel (one per group when split into variables) and bias."""

    kernels: tuple[str, ...]
    bias: str | None


# --- the graph ---------------------------------------------------------------------------------------


def _base(name: str) -> str:
    return name.lstrip("^").split(":")[0]


class _Graph:
    """The MetaGraphDef's nodes with their consumers; nothing is imported into TensorFlow."""

    def __init__(self, graph_def: Any, where: str) -> None:
        self.where = where
        self.nodes = {node.name: node for node in graph_def.node}
        self.consumers: dict[str, list[str]] = {}
        for node in graph_def.node:
            for name in node.input:
                if not name.startswith("^"):
                    self.consumers.setdefault(_base(name), []).append(node.name)

    def inputs(self, name: str) -> list[str]:
        return [_base(i) for i in self.nodes[name].input if not i.startswith("^")]

    def reach(self, starts: list[str], *, stop: set[str]) -> set[str]:
        """Every node fed (transitively) by ``starts``, not passing through ops in ``stop``."""
        seen, queue = set(starts), deque(starts)
        while queue:
            for consumer in self.consumers.get(queue.popleft(), []):
                if consumer not in seen and self.nodes[consumer].op not in stop:
                    seen.add(consumer)
                    queue.append(consumer)
        return seen

    def variable(self, name: str) -> str | None:
        """The variable (checkpoint key) that ``name`` reads, through Identity/ReadVariableOp, or ``None``."""
        for _ in range(16):
            node = self.nodes.get(name)
            if node is None:
                return None
            if node.op in VARIABLE_OPS:
                shared = node.attr["shared_name"].s.decode() if "shared_name" in node.attr else ""
                return shared or node.name
            if node.op not in PASS_THROUGH | {"ReadVariableOp", "Enter"}:
                return None
            name = _base(node.input[0])
        return None

    def fail(self, name: str, why: str) -> CheckpointError:
        node = self.nodes.get(name)
        return CheckpointError(f"{self.where}: node {name} ({node.op if node else '?'}): {why}")


def _ints(node: Any, key: str) -> list[int]:
    return list(node.attr[key].list.i)


def _padding(node: Any) -> str:
    return str(node.attr["padding"].s.decode())


def _logits(graph: _Graph) -> str:
    for node in graph.nodes.values():
        position = LOGIT_CONSUMERS.get(node.op)
        if position is None:
            continue
        name = graph.inputs(node.name)[position]
        while graph.nodes[name].op in PASS_THROUGH | {"Reshape"}:
            name = graph.inputs(name)[0]
        if graph.nodes[name].op in ("Add", "AddV2", "BiasAdd", "MatMul"):
            return name
    raise CheckpointError(
        f"{graph.where}: expected logits feeding a Softmax, a softmax cross-entropy or an ArgMax, received none"
    )


def _image_input(graph: _Graph, logits: str) -> tuple[str, set[str]]:
    """The one float placeholder of rank 2 or 4 on the path to the logits, and what it feeds."""
    found = []
    for node in graph.nodes.values():
        if node.op != "Placeholder" or node.attr["dtype"].type != 1:  # DT_FLOAT
            continue
        dims = node.attr["shape"].shape.dim
        if len(dims) not in (2, 4):
            continue
        fed = graph.reach([node.name], stop=SHAPE_OPS)
        if logits in fed:
            found.append((node.name, fed))
    if len(found) != 1:
        names = ", ".join(name for name, _ in found) or "none"
        raise CheckpointError(f"{graph.where}: expected one image input on the path to the logits, received {names}")
    return found[0]


@dataclass
class _Walk:
    graph: _Graph
    image: str
    data: set[str]
    random: set[str]
    layers: list[Layer]
    bound: list[Bound]
    spatial: tuple[int, int, int] | None = None

    def data_inputs(self, name: str) -> list[str]:
        return [i for i in self.graph.inputs(name) if i in self.data and i not in self.random]

    def one_data_input(self, name: str) -> str:
        found = self.data_inputs(name)
        if len(found) != 1:
            raise self.graph.fail(
                name, f"expected one input on the image path (an AlexNet is a chain), received {len(found)}"
            )
        return found[0]


def _conv_layer(walk: _Walk, name: str, bias: str | None) -> tuple[Layer, Bound, str]:
    """A Conv2D (or a split-conv-concat group) ending at ``name``; returns the layer, its keys and its input."""
    graph = walk.graph
    node = graph.nodes[name]
    if node.op == "ConcatV2":
        parts = walk.data_inputs(name)
        convs = [graph.nodes[p] for p in parts]
        if len(parts) < 2 or any(c.op != "Conv2D" for c in convs):
            raise graph.fail(name, "expected a concatenation of grouped Conv2D outputs")
        kernels, sources = [], set()
        for conv in convs:
            data, filt = _base(conv.input[0]), _base(conv.input[1])
            if graph.nodes[data].op not in ("Split", "SplitV"):
                raise graph.fail(conv.name, "expected a grouped convolution's input to come from a Split")
            sources.add(walk.one_data_input(data))
            kernels.append(_kernel_key(graph, conv, filt))
        if len(sources) != 1:
            raise graph.fail(name, "expected every group to split the same input")
        first = convs[0]
        unique = tuple(dict.fromkeys(kernels))
        return _conv_from(first, name, len(parts), walk), Bound(unique, bias), sources.pop()
    kernel = _kernel_key(graph, node, _base(node.input[1]))
    return _conv_from(node, name, 1, walk), Bound((kernel,), bias), walk.one_data_input(name)


def _kernel_key(graph: _Graph, conv: Any, filt: str) -> str:
    if graph.nodes[filt].op in ("Split", "SplitV"):  # one variable split per group along the output axis
        value = graph.inputs(filt)[1 if graph.nodes[filt].op == "Split" else 0]
        key = graph.variable(value)
    else:
        key = graph.variable(filt)
    if key is None:
        raise graph.fail(conv.name, "expected its kernel to be a variable (constants in the graph are not read)")
    return key


def _conv_from(node: Any, name: str, groups: int, walk: _Walk) -> Conv:
    graph = walk.graph
    if node.attr["data_format"].s not in (b"", b"NHWC"):
        raise graph.fail(node.name, f"expected data_format NHWC, received {node.attr['data_format'].s.decode()}")
    if any(d != 1 for d in _ints(node, "dilations")):
        raise graph.fail(node.name, "dilated convolutions are not supported")
    strides = _ints(node, "strides")
    padding: Any = _padding(node)
    if padding == "EXPLICIT":
        pads = _ints(node, "explicit_paddings")
        padding = ((pads[2], pads[3]), (pads[4], pads[5]))
    elif padding not in ("SAME", "VALID"):
        raise graph.fail(node.name, f"padding {padding} not supported")
    return Conv(name, 1, (1, 1), (strides[1], strides[2]), padding, groups)  # sizes come from the checkpoint


def _walk(graph: _Graph) -> _Walk:
    logits = _logits(graph)
    image, data = _image_input(graph, logits)
    random_sources = [n for n, node in graph.nodes.items() if node.op in RANDOM_OPS]
    masks = (graph.reach(random_sources, stop=set()) | set(random_sources)) - data  # dropout masks, not the image
    walk = _Walk(graph, image, data, masks, [], [])
    name, bias = logits, None
    for _ in range(10_000):
        node = graph.nodes[name]
        op = node.op
        if name == image:
            break
        if op in ("Add", "AddV2", "BiasAdd") and bias is None and not _is_dropout(walk, name):
            others = [i for i in graph.inputs(name) if i not in data]
            key = graph.variable(others[0]) if len(others) == 1 else None
            if key is None:
                raise graph.fail(name, "expected a bias variable added to the layer's output")
            bias, name = key, walk.one_data_input(name)
            continue
        if op == "MatMul":
            if node.attr["transpose_a"].b or node.attr["transpose_b"].b:
                raise graph.fail(name, "transposed matmul operands are not supported")
            key = graph.variable(graph.inputs(name)[1])
            if key is None:
                raise graph.fail(name, "expected its kernel to be a variable")
            walk.layers.append(Dense(name, 1))
            walk.bound.append(Bound((key,), bias))
            bias, name = None, walk.one_data_input(name)
            continue
        if op in ("Conv2D", "ConcatV2"):
            layer, keys, name = _conv_layer(walk, name, bias)
            walk.layers.append(layer)
            walk.bound.append(keys)
            bias = None
            continue
        if bias is not None:
            raise graph.fail(name, "expected a Conv2D or MatMul under the bias add")
        if op == "Relu":
            walk.layers.append(ReLU())
        elif op == "LRN":
            attr = node.attr
            walk.layers.append(
                LRN.from_tf(
                    depth_radius=attr["depth_radius"].i, alpha=attr["alpha"].f, beta=attr["beta"].f, bias=attr["bias"].f
                )
            )
        elif op == "MaxPool":
            size, stride = _ints(node, "ksize"), _ints(node, "strides")
            walk.layers.append(MaxPool((size[1], size[2]), (stride[1], stride[2]), _padding(node)))
        elif op == "Reshape":
            source = walk.one_data_input(name)
            if source == image:
                walk.spatial = _reshape_target(graph, name)
                break
            walk.layers.append(Flatten("hwc"))
        elif op in PASS_THROUGH or _is_dropout(walk, name):
            pass
        else:
            raise graph.fail(
                name,
                "not a layer of an AlexNet-family network (expected Conv2D, BiasAdd, Relu, LRN, "
                "MaxPool, Reshape, MatMul, or dropout)",
            )
        name = walk.one_data_input(name)
    else:  # pragma: no cover - a graph deeper than any AlexNet
        raise graph.fail(name, "the chain to the input is longer than 10000 ops")
    walk.layers.reverse()
    walk.bound.reverse()
    return walk


def _is_dropout(walk: _Walk, name: str) -> bool:
    node = walk.graph.nodes[name]
    if node.op not in DROPOUT_OPS:
        return False
    touches_random = any(i in walk.random for i in walk.graph.inputs(name))
    return touches_random or "dropout" in name.lower()


def _reshape_target(graph: _Graph, name: str) -> tuple[int, int, int]:
    shape = graph.nodes[graph.inputs(name)[1]]
    if shape.op != "Const":
        raise graph.fail(name, "expected the input reshape to a constant [-1, H, W, C]")
    tensor = shape.attr["value"].tensor
    values = list(tensor.int_val) or list(np.frombuffer(tensor.tensor_content, np.int32))
    if len(values) != 4 or values[3] not in (1, 3):
        raise graph.fail(name, f"expected the input reshaped to [-1, H, W, 1 or 3], received {values}")
    return int(values[1]), int(values[2]), int(values[3])


# --- the architecture ----------------------------------------------------------------------------------


def _named(walk: _Walk, shapes: Mapping[str, list[int]], where: str) -> tuple[Architecture, dict[str, Bound]]:
    """The walked layers with their sizes from the checkpoint, named conv1.., fc1.. in order."""
    layers: list[Layer] = []
    bound: dict[str, Bound] = {}
    bound_iter = iter(walk.bound)
    counts = {"conv": 0, "fc": 0}
    for layer in walk.layers:
        if isinstance(layer, Conv | Dense):
            keys = next(bound_iter)
            missing = [k for k in keys.kernels if k not in shapes]
            if missing:
                raise CheckpointError(f"{where}: missing variable {missing[0]} in the checkpoint")
            shape = [shapes[k] for k in keys.kernels]
            if isinstance(layer, Conv):
                counts["conv"] += 1
                name = f"conv{counts['conv']}"
                out = sum(s[3] for s in shape)
                layer = Conv(name, out, (shape[0][0], shape[0][1]), layer.stride, layer.padding, layer.groups)
            else:
                counts["fc"] += 1
                name = f"fc{counts['fc']}"
                layer = Dense(name, shape[0][1])
            bound[name] = keys
        layers.append(layer)
    if walk.spatial is not None:
        height, width, channels = walk.spatial
    else:
        dims = [d.size for d in walk.graph.nodes[walk.image].attr["shape"].shape.dim]
        if len(dims) != 4 or min(dims[1:]) < 1:
            raise CheckpointError(f"{where}: expected the input placeholder [batch, H, W, C], received {dims}")
        height, width, channels = dims[1], dims[2], dims[3]
    spec = InputSpec(
        height,
        width,
        channels,
        "RGB" if channels == 3 else "GRAY",
        1.0 if channels == 3 else 1 / 255,
        (),
        "crop" if channels == 3 else "resize",
        256,
    )
    arch = Architecture(
        "tf-checkpoint",
        spec,
        tuple(layers),
        "Inferred from a TensorFlow MetaGraphDef (input assumed RGB 0-255, or grey in [0, 1]).",
    )
    check_architecture(arch, where=where)
    return arch, bound


def _by_name(arch: Architecture, shapes: Mapping[str, list[int]], where: str) -> dict[str, Bound]:
    """Each layer's variables found by its name, or in the architecture's order of unnamed variables."""
    keys = sorted(shapes)

    def find(layer: str, parts: tuple[str, ...]) -> str | None:
        for part in parts:
            if f"{layer}/{part}" in shapes:
                return f"{layer}/{part}"
        pattern = re.compile(rf"(^|/){re.escape(layer)}/({'|'.join(parts)})/\.ATTRIBUTES/VARIABLE_VALUE$")
        matches = [k for k in keys if pattern.search(k)]
        return matches[0] if len(matches) == 1 else None

    bound: dict[str, Bound] = {}
    for name in arch.layer_names:
        kernel = find(name, ("weights", "kernel", "W", "w"))
        bias = find(name, ("biases", "bias", "b"))
        if kernel is None or bias is None:
            break
        bound[name] = Bound((kernel,), bias)
    else:
        return bound
    unnamed = sorted((k for k in keys if re.fullmatch(r"Variable(_\d+)?", k)), key=lambda k: int(k[9:] or 0))
    n = len(arch.layer_names)
    if arch.unnamed_variables == "kernels-then-biases" and len(unnamed) == 2 * n:
        return {name: Bound((unnamed[i],), unnamed[n + i]) for i, name in enumerate(arch.layer_names)}
    missing = next(name for name in arch.layer_names if name not in bound)
    raise CheckpointError(
        f"{where}: missing variable {missing}/weights (or {missing}/kernel) and {missing}/biases for architecture "
        f"{arch.name}; the checkpoint holds {', '.join(keys[:8])}{'...' if len(keys) > 8 else ''}"
    )


def _read_meta(prefix: Path) -> Any:
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = prefix.with_name(prefix.name + ".meta")
    if meta.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{meta}: {meta.stat().st_size} bytes; expected a graph of at most {MAX_META_BYTES}")
    proto = meta_graph_pb2.MetaGraphDef()
    try:
        proto.ParseFromString(meta.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise CheckpointError(f"{meta}: expected a MetaGraphDef, received unparsable bytes ({exc})") from None
    return proto.graph_def


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read a TensorFlow checkpoint as a canonical weight set, its architecture from the ``.meta`` or ``arch``.

    Raises:
        CheckpointError: no checkpoint, a graph that is not an AlexNet chain (the node named), a missing variable.
        WeightsError: shapes that do not fit, or a graph that disagrees with ``arch`` (the first difference).

    """
    prefix = checkpoint_prefix(path)
    where = str(path)
    if prefix is None or not prefix.with_name(prefix.name + ".index").is_file():
        raise CheckpointError(f"{where}: expected a checkpoint prefix with an .index file, received none")
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except Exception as exc:
        raise CheckpointError(f"{where}: cannot read the checkpoint: {str(exc).splitlines()[0]}") from None
    shapes = reader.get_variable_to_shape_map()
    has_meta = prefix.with_name(prefix.name + ".meta").is_file()
    if has_meta:
        found, bound = _named(_walk(_Graph(_read_meta(prefix), where)), shapes, where)
        target = arch or matching_preset(found) or found
        if arch is not None and (problem := first_difference(found, arch)) is not None:
            raise WeightsError(f"{where}: the checkpoint's graph differs from --arch {arch.name}: {problem}")
        bound = dict(zip(target.layer_names, bound.values(), strict=True))
    elif arch is None:
        raise CheckpointError(f"{where}: expected a .meta graph beside the checkpoint or --arch, received neither")
    else:
        target, bound = arch, _by_name(arch, shapes, where)
    entries = {name: _arrays(reader, keys, shapes, target.groups_of(name), where) for name, keys in bound.items()}
    origins = tuple(
        (name, " + ".join([*keys.kernels, *([keys.bias] if keys.bias else [])])) for name, keys in bound.items()
    )
    source = Source(path=where, sha256=_digest(prefix), format="tf-checkpoint", origins=origins)
    return build_weights(
        entries, arch=target, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source
    )


def _arrays(reader: Any, keys: Bound, shapes: Mapping[str, list[int]], groups: int, where: str) -> list[np.ndarray]:
    for key in [*keys.kernels, *([keys.bias] if keys.bias else [])]:
        if key not in shapes:
            raise CheckpointError(f"{where}: missing variable {key} in the checkpoint")
    kernels = [np.asarray(reader.get_tensor(k)) for k in keys.kernels]
    kernel = kernels[0] if len(kernels) == 1 else np.concatenate(kernels, axis=3)
    bias = np.asarray(reader.get_tensor(keys.bias)) if keys.bias else np.zeros(kernel.shape[-1], kernel.dtype)
    return [kernel, bias]


def _digest(prefix: Path) -> str:
    """sha256 of the index file (it lists every tensor with its own checksum)."""
    return file_sha256(prefix.with_name(prefix.name + ".index"))


__all__ = ["CheckpointError", "checkpoint_prefix", "read_checkpoint"]
