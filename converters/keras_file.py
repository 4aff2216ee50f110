"""Keras full-model files read as data: the architecture from the config JSON, the weights with h5py.

Accepted: ``.keras`` (Keras 3: a zip of ``config.json`` and ``model.weights.h5``) and legacy HDF5 full
models (``model.save("x.h5")`` by standalone Keras 2, tf.keras / ``tf_keras`` or Keras 3: a root
``model_config`` attribute and a ``model_weights`` group). Nothing in the file is deserialised as a
model: the config is parsed as JSON and walked here, so a ``Lambda`` layer's marshalled bytecode or a
custom class is never loaded; such a layer is refused with its name and class.

Supported layers (Sequential, or a Functional chain with one input and one output): InputLayer,
ZeroPadding2D, Conv2D (in-layer activation, ``groups``), Activation, ReLU, Softmax, MaxPooling2D,
BatchNormalization, Dropout, Flatten, Dense. Layers are named as the toolkit's Keras presets name them
(``conv1``.., ``fc1``.., ``bn1``..); when the inferred network is a preset's with other widths or classes
(``keras-v1``, ``oxflower17-bn``, ...), that preset is the architecture.
Expected dataset shapes follow from the config, so every dataset is checked before it is read.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from converters.arch import (
    Architecture,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    InputSpec,
    Layer,
    MaxPool,
    ReLU,
    Softmax,
    ZeroPad,
    check_architecture,
    expected_kernel_shape,
    first_difference,
    matching_preset,
    trace,
)
from converters.errors import WeightsError
from converters.hdf5 import check_storage
from converters.weights import AlexNetWeights, Source, build_weights, file_sha256

ZIP_MAGIC = b"PK\x03\x04"
SUPPORTED = (
    "InputLayer",
    "ZeroPadding2D",
    "Conv2D",
    "Activation",
    "ReLU",
    "Softmax",
    "MaxPooling2D",
    "BatchNormalization",
    "Dropout",
    "Flatten",
    "Dense",
)
MAX_CONFIG_BYTES = 16 << 20  # a config.json is kilobytes; more is not a Keras AlexNet
MAX_WEIGHTS_BYTES = 4 << 30  # model.weights.h5 inside a .keras zip, read into memory


class KerasModelError(WeightsError):
    """A Keras model file this toolkit cannot take, naming the layer and why."""


@dataclass(frozen=True)
class Bound:
    """Where one layer's arrays are in the file: the Keras layer name and the variable names it holds."""

    keras_name: str
    kind: str  # conv, dense or batchnorm
    keras_class: str = ""
    use_bias: bool = True
    center: bool = True
    scale: bool = True


# --- recognising the file --------------------------------------------------------------------------


def is_keras_zip(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip with a ``config.json`` (a ``.keras`` file)."""
    try:
        with open(path, "rb") as stream:
            if stream.read(4) != ZIP_MAGIC:
                return False
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def is_keras_h5_model(file: h5py.File) -> bool:
    """Whether an open HDF5 file is a legacy Keras full model (``model_config`` and ``model_weights``)."""
    return "model_config" in file.attrs and isinstance(file.get("model_weights"), h5py.Group)


# --- the config ------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _layers_of(config: Any, where: str) -> tuple[list[dict[str, Any]], str]:
    """The model's layer dicts in execution order, and the model class (Sequential or Functional)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise KerasModelError(
            f"{where}: expected a Keras model config with a class_name, received {type(config).__name__}"
        )
    kind = str(config["class_name"])
    inner = config.get("config")
    if kind == "Sequential":
        layers = inner if isinstance(inner, list) else (inner or {}).get("layers")  # Keras 2.0-2.2: a bare list
        if not isinstance(layers, list):
            raise KerasModelError(f"{where}: Sequential config: expected a list of layers, received {layers!r:.80}")
        return [dict(layer) for layer in layers], kind
    if kind in ("Functional", "Model"):
        if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
            raise KerasModelError(f"{where}: {kind} config: expected layers, received none")
        return _chain(inner, where), kind
    raise KerasModelError(
        f"{where}: model class {kind}: not supported; expected Sequential or Functional (a subclassed model "
        "keeps no architecture in its file: use its .weights.h5 with --arch)"
    )


def _inbound(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 2 and Keras 3 spellings of inbound_nodes)."""
    names: list[str] = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3: {"args": [keras tensor, ...], "kwargs": {}}
            stack: list[Any] = [node.get("args", []), node.get("kwargs", {})]
            while stack:
                item = stack.pop()
                if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                    names.append(str(item["config"]["keras_history"][0]))
                elif isinstance(item, dict):
                    stack.extend(item.values())
                elif isinstance(item, list):
                    stack.extend(item)
        elif isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
            names.extend(str(entry[0]) for entry in node if isinstance(entry, list) and entry)
    return names


def _io_names(value: Any) -> list[str]:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value[0]]
    if isinstance(value, list):
        return [str(entry[0]) for entry in value if isinstance(entry, list) and entry]
    return []


def _chain(config: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """A Functional model's layers from its input to its output, refusing anything that is not one chain."""
    layers = {str(layer.get("name") or layer.get("config", {}).get("name")): layer for layer in config["layers"]}
    inputs, outputs = _io_names(config.get("input_layers")), _io_names(config.get("output_layers"))
    if len(inputs) != 1:
        raise KerasModelError(f"{where}: expected a model with one input, received {len(inputs)} ({', '.join(inputs)})")
    if len(outputs) != 1:
        raise KerasModelError(
            f"{where}: expected a model with one output, received {len(outputs)} ({', '.join(outputs)})"
        )
    order = [outputs[0]]
    while order[-1] != inputs[0]:
        name = order[-1]
        layer = layers.get(name)
        if layer is None:
            raise KerasModelError(f"{where}: layer {name!r} is named as an input but not defined")
        feeding = _inbound(layer)
        if len(feeding) != 1:
            raise KerasModelError(
                f"{where}: layer {name!r} ({layer.get('class_name')}): expected one input (an AlexNet is a chain), "
                f"received {len(feeding)} ({', '.join(feeding) or 'none'})"
            )
        if feeding[0] in order:
            raise KerasModelError(f"{where}: layer {name!r}: the graph has a cycle")
        order.append(feeding[0])
    used = set(order)
    extra = [name for name in layers if name not in used]
    if extra:
        layer = layers[extra[0]]
        raise KerasModelError(
            f"{where}: layer {extra[0]!r} ({layer.get('class_name')}): not on the path from the input to the "
            "output (a branch or a second input); expected one chain of layers"
        )
    return [layers[name] for name in reversed(order)]


def _pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise KerasModelError(f"{where}: expected an integer or a pair, received {value!r}")


def _activation(value: Any) -> str:
    if isinstance(value, dict):  # Keras 3 may serialise {"class_name": "function", "config": "relu"}
        value = value.get("config", value.get("class_name"))
    return str(value) if value is not None else "linear"


def _activation_layers(name: str, cls: str, value: Any, where: str) -> list[Layer]:
    act = _activation(value)
    if act == "linear":
        return []
    if act == "relu":
        return [ReLU()]
    if act == "softmax":
        return [Softmax()]
    raise KerasModelError(
        f"{where}: layer {name!r} ({cls}): activation {act!r} not supported; expected relu, softmax or linear"
    )


def _input_shape(layers: list[dict[str, Any]], where: str) -> tuple[int, int, int]:
    first = layers[0].get("config", {})
    shape = first.get("batch_shape") or first.get("batch_input_shape")
    if shape is None and isinstance(first.get("build_config"), dict):
        shape = first["build_config"].get("input_shape")
    if shape is None:
        shape = (layers[0].get("build_config") or {}).get("input_shape")
    ok = isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape[1:])
    if not ok:
        raise KerasModelError(f"{where}: expected an input shape [batch, height, width, channels], received {shape!r}")
    assert isinstance(shape, list)
    if shape[3] not in (1, 3):
        raise KerasModelError(f"{where}: expected 1 or 3 input channels (channels last), received {shape[3]}")
    return int(shape[1]), int(shape[2]), int(shape[3])


def _check_channels_last(name: str, cls: str, config: Mapping[str, Any], where: str) -> None:
    if config.get("data_format", "channels_last") not in ("channels_last", None):
        raise KerasModelError(
            f"{where}: layer {name!r} ({cls}): expected data_format channels_last, received {config['data_format']}"
        )


def _convert(layer: dict[str, Any], where: str, counts: dict[str, int]) -> tuple[list[Layer], Bound | None]:
    """The architecture layers one Keras layer makes, and where its weights are."""
    cls = str(layer.get("class_name"))
    config = layer.get("config") or {}
    name = str(config.get("name") or layer.get("name"))
    module = str(layer.get("module") or "keras.layers")
    if (
        cls not in SUPPORTED
        or not (module.startswith("keras") or module.startswith("tf_keras"))
        or layer.get("registered_name") not in (None, cls)
    ):
        raise KerasModelError(
            f"{where}: layer {name!r} ({cls}): not supported (nothing in the file was run); expected only "
            f"{', '.join(SUPPORTED)}"
        )
    _check_channels_last(name, cls, config, where)
    if cls == "InputLayer":
        return [], None
    if cls == "ZeroPadding2D":
        pad = config.get("padding", 1)
        if isinstance(pad, int):
            pads = ((pad, pad), (pad, pad))
        elif isinstance(pad, list | tuple) and len(pad) == 2 and all(isinstance(p, int) for p in pad):
            pads = ((int(pad[0]), int(pad[0])), (int(pad[1]), int(pad[1])))
        else:
            first, second = (_pair(p, f"{where}: layer {name!r} padding") for p in pad)
            pads = (first, second)
        return [ZeroPad(pads)], None
    if cls in ("Conv2D", "Dense"):
        if cls == "Conv2D" and _pair(config.get("dilation_rate", 1), where) != (1, 1):
            raise KerasModelError(
                f"{where}: layer {name!r} (Conv2D): dilation_rate {config['dilation_rate']} not supported; expected 1"
            )
        kind = "conv" if cls == "Conv2D" else "dense"
        counts[kind] += 1
        canonical = f"conv{counts[kind]}" if kind == "conv" else f"fc{counts[kind]}"
        if cls == "Conv2D":
            padding = str(config.get("padding", "valid")).upper()
            if padding not in ("VALID", "SAME"):
                raise KerasModelError(
                    f"{where}: layer {name!r} (Conv2D): padding {padding.lower()!r}; expected valid or same"
                )
            made: Layer = Conv(
                canonical,
                int(config["filters"]),
                _pair(config["kernel_size"], where),
                _pair(config.get("strides", 1), where),
                padding,
                int(config.get("groups", 1) or 1),
            )
        else:
            made = Dense(canonical, int(config["units"]))
        bound = Bound(name, kind, cls, use_bias=bool(config.get("use_bias", True)))
        return [made, *_activation_layers(name, cls, config.get("activation"), where)], bound
    if cls == "Activation":
        return _activation_layers(name, cls, config.get("activation"), where), None
    if cls == "ReLU":
        plain = config.get("max_value") is None and not config.get("negative_slope") and not config.get("threshold")
        if not plain:
            raise KerasModelError(f"{where}: layer {name!r} (ReLU): expected a plain ReLU, received {config}")
        return [ReLU()], None
    if cls == "Softmax":
        if config.get("axis", -1) not in (-1, [-1], 1):
            raise KerasModelError(f"{where}: layer {name!r} (Softmax): expected axis -1, received {config.get('axis')}")
        return [Softmax()], None
    if cls == "MaxPooling2D":
        size = _pair(config.get("pool_size", 2), where)
        stride = _pair(config.get("strides") or size, where)
        padding = str(config.get("padding", "valid")).upper()
        return [MaxPool(size, stride, padding)], None
    if cls == "BatchNormalization":
        counts["batchnorm"] += 1
        bound = Bound(
            name, "batchnorm", cls, center=bool(config.get("center", True)), scale=bool(config.get("scale", True))
        )
        return [BatchNorm(f"bn{counts['batchnorm']}", float(config.get("epsilon", 1e-3)))], bound
    if cls == "Dropout":
        return [Dropout(float(config.get("rate", 0.5)))], None
    return [Flatten("hwc")], None  # Flatten, channels_last checked above


def architecture_from_config(
    config: Any, *, where: str, model_name: str | None = None
) -> tuple[Architecture, dict[str, Bound]]:
    """The architecture a Keras model config describes, and the file location of each layer's weights.

    Raises:
        KerasModelError: a layer outside the supported set, a branch, a second input or output.
        ArchError: layers that do not make an AlexNet-family network.

    """
    layers, _ = _layers_of(config, where)
    if not layers:
        raise KerasModelError(f"{where}: expected layers, received an empty model")
    height, width, channels = _input_shape(layers, where)
    counts = {"conv": 0, "dense": 0, "batchnorm": 0}
    made: list[Layer] = []
    bound: dict[str, Bound] = {}
    for layer in layers:
        new, where_weights = _convert(layer, where, counts)
        made.extend(new)
        if where_weights is not None:
            first = new[0]
            assert isinstance(first, Conv | Dense | BatchNorm)
            bound[first.name] = where_weights
    spec = InputSpec(
        height,
        width,
        channels,
        "RGB" if channels == 3 else "GRAY",
        1 / 255,
        (),
        "crop" if channels == 3 else "resize",
        256,
    )
    inner = config.get("config") if isinstance(config, dict) else None
    name = model_name or (str(inner.get("name", "model")) if isinstance(inner, dict) else "model")
    arch = Architecture(
        name=f"keras-{name}",
        input=spec,
        layers=tuple(made),
        description="Inferred from a Keras model config (input assumed RGB or grey scaled to [0, 1], the Keras "
        "tutorials' convention).",
    )
    check_architecture(arch, where=where)
    return arch, bound


# --- matching presets -----------------------------------------------------------------------------


def _renamed(bound: Mapping[str, Bound], found: Architecture, target: Architecture) -> dict[str, Bound]:
    """``bound`` keyed by ``target``'s layer names (the same layers, in order, by kind)."""
    mine = [*found.layer_names, *found.norm_names]
    theirs = [*target.layer_names, *target.norm_names]
    return {t: bound[m] for m, t in zip(mine, theirs, strict=True)}


# --- the weights -----------------------------------------------------------------------------------


def _expected(arch: Architecture, widths: Mapping[str, int]) -> dict[str, list[tuple[int, ...]]]:
    shapes = trace(arch, widths)
    out: dict[str, list[tuple[int, ...]]] = {}
    for index, layer in enumerate(arch.layers):
        if isinstance(layer, Conv | Dense):
            out[layer.name] = [expected_kernel_shape(arch, layer.name, widths), (widths[layer.name],)]
        elif isinstance(layer, BatchNorm):
            out[layer.name] = [(shapes[index][2],)] * 4
    return out


def _read_checked(dataset: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A dataset's array after its shape, dtype and storage were checked (nothing allocated before)."""
    if not isinstance(dataset, h5py.Dataset):
        raise KerasModelError(f"{what}: expected a dataset, received {type(dataset).__name__}")
    if tuple(dataset.shape) != shape:
        raise KerasModelError(f"{what}: expected shape {shape}, received {tuple(dataset.shape)}")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize not in (2, 4, 8):
        raise KerasModelError(f"{what}: expected float values, received {dataset.dtype}")
    check_storage(dataset, what)
    return np.asarray(dataset[()])


def _arrays(bound: Bound, variables: list[Any], shapes: list[tuple[int, ...]], what: str) -> list[np.ndarray]:
    """Kernel and bias, or BN's four statistics, filling what the layer does not learn (no bias, no gamma)."""
    if bound.kind == "batchnorm":
        present = [bound.scale, bound.center, True, True]
    else:
        present = [True, bound.use_bias]
    if len(variables) != sum(present):
        raise KerasModelError(f"{what}: expected {sum(present)} arrays, received {len(variables)}")
    out, position = [], 0
    fills = (1.0, 0.0, 0.0, 1.0) if bound.kind == "batchnorm" else (0.0, 0.0)
    for index, (shape, has) in enumerate(zip(shapes, present, strict=True)):
        if has:
            out.append(_read_checked(variables[position], shape, f"{what} array {position}"))
            position += 1
        else:
            out.append(np.full(shape, fills[index], np.float32))
    return out


def _h5_variables(group: h5py.Group, keras_name: str, where: str) -> list[Any]:
    """The datasets of one layer of a legacy full-model file, in ``weight_names`` order."""
    layer = group.get(keras_name)
    if not isinstance(layer, h5py.Group):
        raise KerasModelError(f"{where}: missing weights of layer {keras_name!r} (/model_weights/{keras_name})")
    names = [_text(n) for n in layer.attrs.get("weight_names", [])]
    return [layer.get(n) for n in names]


def _snake(name: str) -> str:
    """Keras 3's object-path name of a layer class (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def zip_keys(layers: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Layer name -> its group in ``model.weights.h5``: Keras 3 keys layers by class, counted in layer order."""
    seen: dict[str, int] = {}
    keys = {}
    for layer in layers:
        base = _snake(str(layer.get("class_name")))
        count = seen.get(base, 0)
        seen[base] = count + 1
        name = str((layer.get("config") or {}).get("name") or layer.get("name"))
        keys[name] = base if count == 0 else f"{base}_{count}"
    return keys


def _zip_variables(file: h5py.File, keras_name: str, where: str, keys: Mapping[str, str]) -> list[Any]:
    """The datasets of one layer in a ``.keras`` file's ``model.weights.h5``, in Keras' order."""
    layers = file.get("layers")
    key = keys.get(keras_name, keras_name)
    group = layers.get(key) if isinstance(layers, h5py.Group) else None
    variables = group.get("vars") if isinstance(group, h5py.Group) else None
    if not isinstance(variables, h5py.Group):
        raise KerasModelError(f"{where}: missing weights of layer {keras_name!r} (model.weights.h5: layers/{key}/vars)")
    return [variables[k] for k in sorted(variables, key=lambda k: int(k) if k.isdigit() else 1 << 30)]


def _choose(
    found: Architecture, bound: dict[str, Bound], arch: Architecture | None, where: str
) -> tuple[Architecture, dict[str, Bound]]:
    """``--arch`` when given (refused with the first difference), else a matching preset, else ``found``."""
    if arch is not None:
        problem = first_difference(found, arch)
        if problem is not None:
            raise WeightsError(f"{where}: the file's network differs from --arch {arch.name}: {problem}")
        return arch, _renamed(bound, found, arch)
    preset = matching_preset(found)
    if preset is not None:
        return preset, _renamed(bound, found, preset)
    return found, bound


def _entries(
    found: Architecture,
    bound: dict[str, Bound],
    target: Architecture,
    target_bound: Mapping[str, Bound],
    variables: Any,
    where: str,
) -> dict[str, Sequence[object]]:
    widths = {t: found.widths()[m] for m, t in zip(found.layer_names, target.layer_names, strict=True)}
    shapes = _expected(target, widths)
    entries: dict[str, Sequence[object]] = {}
    for name in (*target.layer_names, *target.norm_names):
        where_weights = target_bound[name]
        what = f"{where}: layer {where_weights.keras_name} ({name})"
        entries[name] = _arrays(where_weights, variables(where_weights.keras_name), shapes[name], what)
    return entries


def read_keras_model(
    path: str | os.PathLike[str],
    *,
    allow_cast: bool = False,
    check_finite: bool = True,
    arch: Architecture | None = None,
) -> AlexNetWeights:
    """Read a ``.keras`` or legacy ``.h5`` Keras full model without running any of it.

    Args:
        path: the file.
        allow_cast: convert float64/float16 arrays to float32.
        check_finite: refuse NaN and Inf values.
        arch: the architecture the file must implement (default: inferred, a preset where one matches).

    Raises:
        KerasModelError: an unsupported layer, model class or file structure, named.
        WeightsError: weights that do not fit, or a network other than ``arch``.

    """
    path = Path(path)
    where = str(path)
    sha = file_sha256(path)
    if is_keras_zip(path):
        with zipfile.ZipFile(path) as archive:
            config = _zip_json(archive, where)
            found, bound = architecture_from_config(config, where=where)
            target, target_bound = _choose(found, bound, arch, where)
            keys = zip_keys(_layers_of(config, where)[0])
            with _zip_weights(archive, where) as stream, h5py.File(stream, "r") as file:
                entries = _entries(
                    found, bound, target, target_bound, lambda n: _zip_variables(file, n, where, keys), where
                )
        kind = "keras"
    else:
        try:
            file = h5py.File(path, "r")
        except OSError as exc:
            raise WeightsError(f"{where}: cannot read as HDF5: {exc}") from None
        with file:
            try:
                config = json.loads(_text(file.attrs["model_config"]))
            except ValueError as exc:
                raise KerasModelError(
                    f"{where}: attribute model_config: expected JSON, received invalid JSON ({exc})"
                ) from None
            found, bound = architecture_from_config(config, where=where)
            target, target_bound = _choose(found, bound, arch, where)
            group = file["model_weights"]
            entries = _entries(found, bound, target, target_bound, lambda n: _h5_variables(group, n, where), where)
        kind = "keras-h5-model"
    origins = tuple((name, f"{b.keras_name} ({b.keras_class})") for name, b in target_bound.items())
    source = Source(path=where, sha256=sha, format=kind, origins=origins)
    return build_weights(
        entries, arch=target, where=where, allow_cast=allow_cast, check_finite=check_finite, source=source
    )


def _zip_weights(archive: zipfile.ZipFile, where: str) -> IO[bytes]:
    """``model.weights.h5`` as a seekable stream: read in place when stored (Keras' default), else inflated once."""
    info = archive.getinfo("model.weights.h5") if "model.weights.h5" in archive.namelist() else None
    if info is not None and info.compress_type == zipfile.ZIP_STORED:
        return archive.open(info)  # h5py reads only the datasets, straight from the zip
    return io.BytesIO(_zip_member(archive, "model.weights.h5", MAX_WEIGHTS_BYTES, where))


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise KerasModelError(f"{where}: expected {name} in the .keras archive, received none") from None
    if info.file_size > limit:
        raise KerasModelError(f"{where}: {name} declares {info.file_size} bytes; expected at most {limit}")
    with archive.open(info) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise KerasModelError(f"{where}: {name} is larger than it declares; refused")
    return data


def _zip_json(archive: zipfile.ZipFile, where: str) -> Any:
    try:
        return json.loads(_zip_member(archive, "config.json", MAX_CONFIG_BYTES, where))
    except ValueError as exc:
        raise KerasModelError(f"{where}: config.json: expected JSON, received invalid JSON ({exc})") from None


def inferred_architecture(path: str | os.PathLike[str]) -> Architecture:
    """The architecture a Keras model file describes (a preset where one matches), without its weights."""
    where = str(path)
    if is_keras_zip(path):
        with zipfile.ZipFile(path) as archive:
            found, bound = architecture_from_config(_zip_json(archive, where), where=where)
    else:
        with h5py.File(path, "r") as file:
            found, bound = architecture_from_config(json.loads(_text(file.attrs["model_config"])), where=where)
    return _choose(found, bound, None, where)[0]


__all__ = [
    "KerasModelError",
    "architecture_from_config",
    "first_difference",
    "inferred_architecture",
    "is_keras_h5_model",
    "is_keras_zip",
    "matching_preset",
    "read_keras_model",
]
