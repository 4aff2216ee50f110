"""Read the weights back out of an fp32 artifact into the canonical layout.

Each format's known layout transforms are undone with the named functions of
:mod:`converters.layouts` and :mod:`converters.groups`, so the result can be compared bit-exactly with
the source weights (``verify``'s weight parity) or written as ``.npy``/``.h5`` (``extract``). The
architecture comes from the artifact (ONNX ``metadata_props``; the manifest beside a SavedModel or
TFLite file) unless one is given. Where the source had BatchNormalization folded into a linear layer,
the artifact holds the folded weights: the result is then a weight set of the *folded* architecture
(``NAME-folded``, e.g. ``oxflower17-bn-folded``), and :func:`folded_layers` says which.

- SavedModel: the checkpoint under ``variables/`` (keys ``conv1/kernel/.ATTRIBUTES/VARIABLE_VALUE``);
  dense-mode kernels are turned back into grouped ones.
- ONNX: initializers ``conv1/kernel`` (OIHW) ... ``fc8/bias``; split-mode groups are merged, dense
  kernels un-densified and NCHW rows of the first dense layer put back in ``(h, w, c)`` order.
- TFLite (fp32 only): constant tensors ``conv1/Conv2D`` (OHWI), ``fc6/MatMul`` ((out, in)) and the
  1-d bias tensors of each layer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from converters import groups as groups_mod
from converters.arch import Architecture, first_dense, flatten_input, folded, input_width
from converters.errors import InputError, WeightsError
from converters.layouts import fc6_rows_chw_to_hwc, oihw_to_hwio
from converters.weights import AlexNetWeights, Source, build_weights, file_sha256


def _grouped(arch: Architecture, arrays: dict[str, list[np.ndarray]], name: str, kernel: np.ndarray) -> np.ndarray:
    """A conv kernel in grouped layout: dense block-diagonal ones (C_in = the input's channels) are split back."""
    groups = arch.groups_of(name)
    widths = {n: int(pair[1].shape[0]) for n, pair in arrays.items()}
    if groups > 1 and kernel.shape[2] == input_width(arch, name, widths):
        return groups_mod.from_dense(kernel, groups, name=name)
    return kernel


def stored_architecture(arch: Architecture) -> Architecture:
    """The architecture an artifact's weights are stored for: BatchNormalization folded where exact.

    Raises:
        InputError: a BatchNormalization that could not fold (its statistics are not in the artifact).

    """
    graph_arch = folded(arch)
    if graph_arch.norm_names:
        raise InputError(
            f"architecture {arch.name}: BatchNormalization {', '.join(graph_arch.norm_names)} is stored as a scale "
            "and shift; its four statistics cannot be read back"
        )
    return graph_arch


def folded_layers(arch: Architecture) -> tuple[tuple[str, str], ...]:
    """``(batchnorm, into)`` pairs folded in every artifact of ``arch``."""
    return folded(arch).folded


Arrays = dict[str, list[np.ndarray]]


def from_savedmodel(path: Path, arch: Architecture) -> Arrays:
    """The variables of a SavedModel written by ``npy2savedmodel``."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    arrays: dict[str, list[np.ndarray]] = {}
    for name in arch.layer_names:
        try:
            kernel, bias = (
                reader.get_tensor(f"{name}/{part}/.ATTRIBUTES/VARIABLE_VALUE") for part in ("kernel", "bias")
            )
        except Exception:
            raise WeightsError(f"{path}: expected variable {name}/kernel and {name}/bias, received none") from None
        arrays[name] = [_grouped(arch, arrays, name, kernel) if name in arch.convs else kernel, bias]
    return arrays


def from_onnx(path: Path, arch: Architecture) -> Arrays:
    """The initializers of an ONNX file written by ``npy2onnx``, in canonical layout."""
    from onnx import numpy_helper

    from alexnet_export.trust import load_onnx

    model = load_onnx(path)  # checked; inside trust.parsed_once() the model verify's other checks parsed
    props = {prop.key: prop.value for prop in model.metadata_props}
    base = str(path.parent)  # external data (confined to this folder by the trust check) is read from here
    stored = {tensor.name: numpy_helper.to_array(tensor, base) for tensor in model.graph.initializer}
    arrays: dict[str, list[np.ndarray]] = {}
    dense = first_dense(arch)
    for name in arch.layer_names:
        if f"{name}/kernel" in stored:
            kernel, bias = stored[f"{name}/kernel"], stored[f"{name}/bias"]
        elif f"{name}/kernel/0" in stored:  # split mode: one initializer per group, group 0 first
            count = sum(1 for key in stored if re.fullmatch(rf"{name}/kernel/\d+", key))
            kernel = np.concatenate([stored[f"{name}/kernel/{g}"] for g in range(count)], axis=0)
            bias = np.concatenate([stored[f"{name}/bias/{g}"] for g in range(count)])
        else:
            raise WeightsError(f"{path}: expected initializer {name}/kernel, received none")
        if name in arch.convs:
            kernel = oihw_to_hwio(kernel)
            if props.get("alexnet_export.groups") == "dense" and arch.groups_of(name) > 1:
                kernel = groups_mod.from_dense(kernel, arch.groups_of(name), name=name)
        elif name == dense and props.get("alexnet_export.layout") == "nchw":
            widths = {n: int(pair[1].shape[0]) for n, pair in arrays.items()}
            grid, order = flatten_input(arch, widths)
            if order == "hwc":
                kernel = fc6_rows_chw_to_hwc(kernel, grid)
        arrays[name] = [kernel, bias]
    return arrays


def from_tflite(path: Path, arch: Architecture) -> Arrays:
    """The constant tensors of an fp32 ``.tflite`` written by ``npy2tflite``, in canonical layout.

    Read from the flatbuffer with the schema's generated reader: the arrays are views of the file's
    bytes (no interpreter); the dense kernels' ``(out, in) -> (in, out)`` is a transposed view, not a copy.

    Raises:
        WeightsError: a layer's tensors are missing or not float32 (a quantised file).

    """
    from ai_edge_litert import schema_py_generated as schema

    from alexnet_export.trust import read_tflite

    model = read_tflite(path)  # checked; inside trust.parsed_once() the bytes verify's structure check read
    graph = model.Subgraphs(0)
    kinds = {value: key for key, value in vars(schema.TensorType).items() if not key.startswith("_")}
    constants = []
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy() if tensor.Buffer() < model.BuffersLength() else 0
        if isinstance(data, np.ndarray) and data.size:
            name = (tensor.Name() or b"").decode(errors="replace")
            shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
            constants.append((name, shape, kinds.get(tensor.Type(), "?"), data))
    arrays: dict[str, list[np.ndarray]] = {}
    for name in arch.layer_names:
        op = "Conv2D" if name in arch.convs else "MatMul"
        kernels = sorted((c for c in constants if re.fullmatch(rf"{name}/{op}(_\d+)?", c[0])), key=lambda c: c[0])
        biases = [c for c in constants if c[0].startswith(f"{name}/") and len(c[1]) == 1]
        if not kernels or len(biases) != 1:
            raise WeightsError(f"{path}: expected constant tensors {name}/{op} and a {name} bias, received none")
        if any(c[2] != "FLOAT32" for c in [*kernels, *biases]):
            raise WeightsError(f"{path}: {name}: expected float32 weights (an fp32 export), received a quantised file")
        parts = [_as_float32(c, path) for c in kernels]
        if name in arch.convs:
            kernel = _grouped(arch, arrays, name, np.concatenate([p.transpose(1, 2, 3, 0) for p in parts], axis=3))
        else:
            kernel = parts[0].T  # (out, in) -> (in, out)
        arrays[name] = [kernel, _as_float32(biases[0], path)]
    return arrays


def _as_float32(constant: tuple[str, tuple[int, ...], str, np.ndarray], path: Path) -> np.ndarray:
    name, shape, _, data = constant
    count = int(np.prod(shape)) if shape else 1
    if data.size != 4 * count:
        raise WeightsError(f"{path}: tensor {name!r}: {data.size} bytes for shape {list(shape)}")
    return data.view("<f4").reshape(shape)


def stored_arrays(path: str | os.PathLike[str], *, arch: Architecture | None = None) -> tuple[Arrays, Architecture]:
    """The weight arrays stored in the artifact at ``path``, in canonical shapes, and their architecture.

    Not validated and not copied where a view will do (a TFLite dense kernel is a transposed view of the
    file's bytes): what ``verify`` compares with the source. :func:`extract` makes a weight set of them.

    Raises:
        InputError: not an artifact this toolkit writes, or its weights are missing or quantised.

    """
    from alexnet_export.artifacts import artifact_architecture
    from alexnet_export.runtimes import detect_format
    from alexnet_export.trust import check_artifact

    target = Path(path)
    fmt = detect_format(target)
    check_artifact(target, fmt)
    source_arch = arch or artifact_architecture(target)
    graph_arch = stored_architecture(source_arch)
    readers = {"savedmodel": from_savedmodel, "onnx": from_onnx, "tflite": from_tflite}
    try:
        return readers[fmt](target, graph_arch), graph_arch
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{target}: cannot read weights from this {fmt} artifact ({exc})") from None


def extract(path: str | os.PathLike[str], *, arch: Architecture | None = None) -> AlexNetWeights:
    """The canonical weights stored in the artifact at ``path``.

    Args:
        path: a SavedModel folder, ``.onnx`` or fp32 ``.tflite``.
        arch: the source architecture (default: the one the artifact records, else bvlc-alexnet).

    Raises:
        InputError: not an artifact this toolkit writes, or its weights are missing or quantised.

    """
    from alexnet_export.runtimes import detect_format
    from alexnet_export.trust import parsed_once

    target = Path(path)
    with parsed_once():  # one parse of an ONNX file for its check, metadata and weights
        arrays, graph_arch = stored_arrays(target, arch=arch)
        source = Source(str(target), file_sha256(target) if target.is_file() else "", detect_format(target))
        return build_weights(arrays, arch=graph_arch, where=str(target), source=source)
