"""Architectures as values: the one module that holds layer facts.

An :class:`Architecture` is a frozen, typed, JSON-serialisable description of an AlexNet-family
network: its input (size, channels, channel order, scale and mean), its ordered layers and, through
its last dense layer, the class count. The graph builder, the float64 oracle, the exporters, the
layout transforms, ``verify`` and ``predict`` all receive one; nothing else hard-codes a layer.

Presets cover every network in ``shared/NETWORKS.md`` (facts and sources there); users copy one with
``alexnet-export arch show NAME --json``, edit it and pass the file with ``--arch FILE.json``.

Conventions (stated once, converted exactly where a runtime wants another):

- Convolution padding is ``"VALID"``, ``"SAME"`` (what TensorFlow computes: the extra pixel of an odd
  total goes bottom/right) or explicit ``[[top, bottom], [left, right]]`` (Caffe's ``pad``).
- LRN is in Caffe's (and ONNX's) convention: ``b_c = a_c / (k + alpha / size * sum a_c'^2) ** beta``
  over ``size`` channels centred on ``c``. TensorFlow takes ``depth_radius = (size - 1) / 2`` and
  ``alpha / size`` (see :meth:`LRN.tf_alpha`); :meth:`LRN.from_tf` converts TF's constants.
- Max-pool padding is ``"VALID"`` (round down), ``"SAME"`` (TF: padded positions ignored) or
  ``"CEIL"`` (Caffe: round the output size up, windows clipped at the edge).
- Flatten order ``"hwc"`` is an NHWC flatten (TF, Keras, bvlc_alexnet.npy's fc6 rows); ``"chw"`` NCHW.
- BatchNormalization is Keras' inference form ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``.
- Input: a uint8 picture (RGB, or grey for one channel) becomes ``pixel * scale - mean``, channels
  reordered to ``channel_order`` first; ``mean`` is given in that order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from converters.errors import InputError

Pads = tuple[tuple[int, int], tuple[int, int]]
Padding = str | Pads
Shape = tuple[int, int, int]  # (height, width, channels) of a feature map

CHANNEL_ORDERS: tuple[str, ...] = ("BGR", "RGB", "GRAY")
FIT_MODES: tuple[str, ...] = ("crop", "resize")
FLATTEN_ORDERS: tuple[str, ...] = ("hwc", "chw")
POOL_PADDINGS: tuple[str, ...] = ("VALID", "SAME", "CEIL")
UNNAMED_VARIABLE_ORDERS: tuple[str, ...] = ("", "kernels-then-biases")
GROUP_MODES: tuple[str, ...] = ("native", "split", "dense")  # how grouped convolutions are computed
DEFAULT_ARCH = "bvlc-alexnet"
FOLDED_SUFFIX = "-folded"

# Third-party pin of the widely mirrored bvlc_alexnet.npy.
PUBLISHED_SHA256 = "1294ef51496c52f2e4879ee3b5e1da22c35d61f3240937491b4469403d5428cc"


class ArchError(InputError):
    """An architecture (preset name or JSON) that cannot be used, naming where and why."""


@dataclass(frozen=True)
class InputSpec:
    """What the network takes: ``pixel * scale - mean`` at ``height`` x ``width`` in ``channel_order``.

    Attributes:
        height: input rows.
        width: input columns.
        channels: 3 (colour) or 1 (grey).
        channel_order: ``BGR``, ``RGB`` or ``GRAY``.
        scale: factor applied to 0-255 pixels (1 for Caffe, 1/255 for [0, 1] inputs).
        mean: subtracted after scaling, one value per channel in ``channel_order``.
        fit: how ``predict`` fits a picture: ``crop`` (shorter side to ``resize_shorter``, centre crop)
            or ``resize`` (straight to height x width).
        resize_shorter: the shorter side before a ``crop``.

    """

    height: int
    width: int
    channels: int
    channel_order: str
    scale: float = 1.0
    mean: tuple[float, ...] = ()
    fit: str = "crop"
    resize_shorter: int = 256

    @property
    def value_range(self) -> tuple[float, float]:
        """The range of input values before the mean is subtracted."""
        return 0.0, 255.0 * self.scale

    @property
    def means(self) -> tuple[float, ...]:
        """``mean``, or zeros when none is given."""
        return self.mean or (0.0,) * self.channels

    def describe(self) -> str:
        """One line for metadata and ``arch show``."""
        names = ", ".join(self.channel_order if self.channel_order != "GRAY" else "Y")
        mean = f" minus the mean ({names}) = {self.mean}"
        low, high = self.value_range
        return (
            f"{self.height}x{self.width}x{self.channels} {self.channel_order}, {low:g}-{high:g}"
            f"{mean if self.mean else ''}, float32"
        )


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution with bias (ReLU, when present, is its own layer).

    Attributes:
        name: layer name: weight key, variable, node and report name.
        filters: output channels of the source network (a weight set may be width-scaled).
        kernel: (kh, kw).
        stride: (sh, sw).
        padding: ``VALID``, ``SAME`` or ``((top, bottom), (left, right))``.
        groups: channel groups (Caffe ``group``; Keras ``groups``).

    """

    type: ClassVar[str] = "conv"
    name: str
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: Padding = "VALID"
    groups: int = 1


@dataclass(frozen=True)
class ZeroPad:
    """Zero padding ``((top, bottom), (left, right))`` (Keras ``ZeroPadding2D``)."""

    type: ClassVar[str] = "zeropad"
    pads: Pads


@dataclass(frozen=True)
class ReLU:
    """``max(x, 0)``."""

    type: ClassVar[str] = "relu"


@dataclass(frozen=True)
class LRN:
    """Across-channel local response normalisation in Caffe's convention (see the module docstring).

    Attributes:
        size: channels in the window (odd).
        alpha: Caffe's alpha (TF's alpha times ``size``).
        beta: exponent.
        k: additive constant (TF's ``bias``).

    """

    type: ClassVar[str] = "lrn"
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    @property
    def tf_depth_radius(self) -> int:
        """``depth_radius`` of ``tf.nn.local_response_normalization`` (half the window)."""
        return (self.size - 1) // 2

    @property
    def tf_alpha(self) -> float:
        """TF multiplies the plain sum by alpha: Caffe's ``alpha / size``."""
        return self.alpha / self.size

    @classmethod
    def from_tf(cls, *, depth_radius: int, alpha: float, beta: float, bias: float) -> LRN:
        """The LRN that ``tf.nn.local_response_normalization`` with these constants computes."""
        size = 2 * depth_radius + 1
        return cls(size=size, alpha=alpha * size, beta=beta, k=bias)


@dataclass(frozen=True)
class BatchNorm:
    """Keras BatchNormalization at inference (weights: gamma, beta, moving mean, moving variance)."""

    type: ClassVar[str] = "batchnorm"
    name: str
    epsilon: float = 1e-3


@dataclass(frozen=True)
class MaxPool:
    """Max-pooling.

    Attributes:
        size: window (ph, pw).
        stride: (sh, sw).
        padding: ``VALID``, ``SAME`` or ``CEIL`` (see the module docstring).

    """

    type: ClassVar[str] = "maxpool"
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: str = "VALID"


@dataclass(frozen=True)
class Flatten:
    """Feature map to vector, ``hwc`` (NHWC) or ``chw`` (NCHW) order."""

    type: ClassVar[str] = "flatten"
    order: str = "hwc"


@dataclass(frozen=True)
class Dense:
    """A fully connected layer with bias, kernel ``(in, out)``."""

    type: ClassVar[str] = "dense"
    name: str
    units: int


@dataclass(frozen=True)
class Dropout:
    """Training only: recorded, and a no-op at inference."""

    type: ClassVar[str] = "dropout"
    rate: float = 0.5


@dataclass(frozen=True)
class Softmax:
    """The source model's Softmax head: exported models still output its input as ``logits``."""

    type: ClassVar[str] = "softmax"


Layer = Conv | ZeroPad | ReLU | LRN | BatchNorm | MaxPool | Flatten | Dense | Dropout | Softmax
LAYER_TYPES: dict[str, type[Any]] = {
    cls.type: cls for cls in (Conv, ZeroPad, ReLU, LRN, BatchNorm, MaxPool, Flatten, Dense, Dropout, Softmax)
}
ParamLayer = Conv | Dense


@dataclass(frozen=True)
class Architecture:
    """An AlexNet-family network as data.

    Attributes:
        name: preset name, or the name a JSON file gives.
        input: what the network takes.
        layers: the ordered layers.
        description: where the facts come from.
        folded: ``(batchnorm, into)`` pairs already folded into a linear layer (see :func:`fold_plan`).
        published_sha256: a known digest of the source network's weight file (``inspect`` compares it).
        unnamed_variables: how the source names its TF variables when it names none: ``kernels-then-biases``
            (``Variable``, ``Variable_1``, ... in creation order: every kernel, then every bias), or ``""``.

    """

    name: str
    input: InputSpec
    layers: tuple[Layer, ...]
    description: str = ""
    folded: tuple[tuple[str, str], ...] = field(default=())
    published_sha256: str = ""
    unnamed_variables: str = ""

    @property
    def param_layers(self) -> tuple[ParamLayer, ...]:
        """Convolutions and dense layers, in order."""
        return tuple(layer for layer in self.layers if isinstance(layer, (Conv, Dense)))

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the layers with kernel and bias, in order."""
        return tuple(layer.name for layer in self.param_layers)

    @property
    def norm_names(self) -> tuple[str, ...]:
        """Names of the BatchNormalization layers, in order."""
        return tuple(layer.name for layer in self.layers if isinstance(layer, BatchNorm))

    @property
    def convs(self) -> dict[str, Conv]:
        """Convolutions by name."""
        return {layer.name: layer for layer in self.layers if isinstance(layer, Conv)}

    @property
    def num_classes(self) -> int:
        """Units of the last dense layer (a weight set may have another count)."""
        return self.param_layers[-1].units if isinstance(self.param_layers[-1], Dense) else 0

    @property
    def has_softmax(self) -> bool:
        """Whether the source model ends in Softmax (exports still output its input as ``logits``)."""
        return isinstance(self.layers[-1], Softmax)

    def groups_of(self, name: str) -> int:
        """Channel groups of layer ``name`` (1 for dense layers)."""
        conv = self.convs.get(name)
        return conv.groups if conv else 1

    def widths(self) -> dict[str, int]:
        """The source network's output width of every layer with weights."""
        return {layer.name: layer.filters if isinstance(layer, Conv) else layer.units for layer in self.param_layers}

    def to_json(self) -> dict[str, Any]:
        """Plain data that :func:`from_json` turns back into an equal architecture."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        out["input"] = {f.name: _plain(getattr(self.input, f.name)) for f in fields(self.input)}
        out["layers"] = [
            {"type": layer.type, **{f.name: _plain(getattr(layer, f.name)) for f in fields(layer)}}
            for layer in self.layers
        ]
        if self.folded:
            out["folded"] = [list(pair) for pair in self.folded]
        if self.published_sha256:
            out["published_sha256"] = self.published_sha256
        if self.unnamed_variables:
            out["unnamed_variables"] = self.unnamed_variables
        return out

    def dumps(self) -> str:
        """Compact, key-ordered JSON (stable bytes for metadata)."""
        return json.dumps(self.to_json(), separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


# --- shapes -------------------------------------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) of one axis: the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_pads(layer: Conv, height: int, width: int) -> Pads:
    """Explicit ``((top, bottom), (left, right))`` pads of a convolution at this input size."""
    if layer.padding == "VALID":
        return (0, 0), (0, 0)
    if layer.padding == "SAME":
        return same_pads(height, layer.kernel[0], layer.stride[0]), same_pads(width, layer.kernel[1], layer.stride[1])
    assert not isinstance(layer.padding, str)
    return layer.padding


def pooled_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output size of one max-pool axis; Caffe's CEIL drops a last window that starts past the edge."""
    if padding == "SAME":
        return -(-size // stride)
    steps = (size - kernel) / stride
    if padding == "VALID":
        return math.floor(steps) + 1
    out = math.ceil(steps) + 1
    return out - 1 if (out - 1) * stride >= size else out


def pool_pads(layer: MaxPool, height: int, width: int) -> Pads:
    """Pads (filled with -inf) that make a max-pool VALID: SAME's, or CEIL's extra bottom/right."""
    if layer.padding == "SAME":
        return same_pads(height, layer.size[0], layer.stride[0]), same_pads(width, layer.size[1], layer.stride[1])
    if layer.padding == "VALID":
        return (0, 0), (0, 0)
    extra = []
    for size, kernel, stride in ((height, layer.size[0], layer.stride[0]), (width, layer.size[1], layer.stride[1])):
        out = pooled_size(size, kernel, stride, "CEIL")
        extra.append(max((out - 1) * stride + kernel - size, 0))
    return (0, extra[0]), (0, extra[1])


def output_shape(layer: Layer, shape: Shape, width: int | None = None) -> Shape:
    """The feature map after ``layer`` given its input ``shape``; ``width`` overrides filters/units."""
    h, w, c = shape
    if isinstance(layer, Conv):
        (top, bottom), (left, right) = conv_pads(layer, h, w)
        oh = (h + top + bottom - layer.kernel[0]) // layer.stride[0] + 1
        ow = (w + left + right - layer.kernel[1]) // layer.stride[1] + 1
        return oh, ow, width if width is not None else layer.filters
    if isinstance(layer, ZeroPad):
        (top, bottom), (left, right) = layer.pads
        return h + top + bottom, w + left + right, c
    if isinstance(layer, MaxPool):
        oh = pooled_size(h, layer.size[0], layer.stride[0], layer.padding)
        return oh, pooled_size(w, layer.size[1], layer.stride[1], layer.padding), c
    if isinstance(layer, Flatten):
        return 1, 1, h * w * c
    if isinstance(layer, Dense):
        return 1, 1, width if width is not None else layer.units
    return shape


def trace(arch: Architecture, widths: Mapping[str, int] | None = None) -> list[Shape]:
    """The input shape of every layer, then the final output shape (``len(layers) + 1`` entries).

    Args:
        arch: the architecture.
        widths: output widths of layers with weights (default: the architecture's own).

    """
    widths = widths or {}
    shape: Shape = (arch.input.height, arch.input.width, arch.input.channels)
    shapes = [shape]
    for layer in arch.layers:
        width = widths.get(layer.name) if isinstance(layer, (Conv, Dense)) else None
        shape = output_shape(layer, shape, width)
        shapes.append(shape)
    return shapes


def flatten_input(arch: Architecture, widths: Mapping[str, int] | None = None) -> tuple[Shape, str]:
    """The (h, w, c) map the Flatten layer receives and its order (the first dense layer's row order)."""
    shapes = trace(arch, widths)
    for index, layer in enumerate(arch.layers):
        if isinstance(layer, Flatten):
            return shapes[index], layer.order
    raise ArchError(f"architecture {arch.name}: expected a flatten layer, received none")


def first_dense(arch: Architecture) -> str:
    """Name of the dense layer that takes the flattened map."""
    return next(layer.name for layer in arch.param_layers if isinstance(layer, Dense))


def input_width(arch: Architecture, name: str, widths: Mapping[str, int]) -> int:
    """Input channels (conv) or features (dense) of layer ``name`` for the given widths."""
    shapes = trace(arch, widths)
    index = next(i for i, layer in enumerate(arch.layers) if getattr(layer, "name", None) == name)
    return shapes[index][2]


def expected_kernel_shape(arch: Architecture, name: str, widths: Mapping[str, int]) -> tuple[int, ...]:
    """Canonical kernel shape: HWIO grouped ``(kh, kw, C_in/G, C_out)`` for convs, ``(in, out)`` for dense."""
    c_in = input_width(arch, name, widths)
    conv = arch.convs.get(name)
    if conv is not None:
        return (*conv.kernel, c_in // conv.groups, widths[name])
    return c_in, widths[name]


def parameter_count(arch: Architecture, widths: Mapping[str, int] | None = None) -> int:
    """Weights, biases and the four BatchNormalization statistics per channel."""
    widths = {**arch.widths(), **(widths or {})}
    shapes = trace(arch, widths)
    total = 0
    for index, layer in enumerate(arch.layers):
        if isinstance(layer, (Conv, Dense)):
            total += math.prod(expected_kernel_shape(arch, layer.name, widths)) + widths[layer.name]
        elif isinstance(layer, BatchNorm):
            total += 4 * shapes[index][2]
    return total


# --- BatchNormalization folding -----------------------------------------------------------------


def fold_plan(arch: Architecture) -> tuple[tuple[str, str, str], ...]:
    """Which BatchNormalization layers fold exactly, and where: ``(bn, into, "next" | "previous")``.

    A BN directly after a linear layer folds into it (scale its outputs). Otherwise it folds into the
    *next* linear layer when only weight-free, channel-preserving layers (dropout, flatten) lie between
    and that layer is dense or a VALID, unpadded convolution: zero padding would otherwise meet the
    shift. Any other BN stays a per-channel scale and shift.
    """
    plan = []
    layers = arch.layers
    for index, layer in enumerate(layers):
        if not isinstance(layer, BatchNorm):
            continue
        before = layers[index - 1] if index else None
        if isinstance(before, (Conv, Dense)):
            plan.append((layer.name, before.name, "previous"))
            continue
        for after in layers[index + 1 :]:
            if isinstance(after, (Dropout, Flatten)):
                continue
            if isinstance(after, Dense) or (
                isinstance(after, Conv) and conv_pads(after, 1 << 20, 1 << 20) == ((0, 0), (0, 0))
            ):
                plan.append((layer.name, after.name, "next"))
            break
    return tuple(plan)


def folded(arch: Architecture) -> Architecture:
    """The architecture with every foldable BatchNormalization removed (recorded in ``folded``)."""
    plan = fold_plan(arch)
    if not plan:
        return arch
    gone = {bn for bn, _, _ in plan}
    layers = tuple(layer for layer in arch.layers if not (isinstance(layer, BatchNorm) and layer.name in gone))
    return replace(
        arch,
        name=arch.name + FOLDED_SUFFIX,
        layers=layers,
        folded=arch.folded + tuple((bn, into) for bn, into, _ in plan),
    )


# --- comparing networks ------------------------------------------------------------------------


def _shape_of(layer: Layer) -> tuple[Any, ...]:
    """A layer without its name and width (a width-scaled or fine-tuned network is the same network)."""
    if isinstance(layer, Conv):
        return ("conv", layer.kernel, layer.stride, layer.padding, layer.groups)
    if isinstance(layer, Dense):
        return ("dense",)
    if isinstance(layer, BatchNorm):
        return ("batchnorm", layer.epsilon)
    if isinstance(layer, Dropout):
        return ("dropout",)
    return (layer.type, *(getattr(layer, f) for f in getattr(layer, "__dataclass_fields__", {})))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal, constants compared to float32 precision (graphs store LRN and BN constants as float32)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-6):
                return False
        elif x != y:
            return False
    return True


def first_difference(found: Architecture, wanted: Architecture) -> str | None:
    """The first way ``found`` is not ``wanted``'s network (names, widths and dropout aside), or ``None``."""
    size = (found.input.height, found.input.width, found.input.channels)
    expected = (wanted.input.height, wanted.input.width, wanted.input.channels)
    if size != expected:
        return (
            f"input {size[0]}x{size[1]}x{size[2]} where {wanted.name} takes {expected[0]}x{expected[1]}x{expected[2]}"
        )
    mine = [layer for layer in found.layers if not isinstance(layer, Dropout)]  # no-ops at inference
    theirs = [layer for layer in wanted.layers if not isinstance(layer, Dropout)]
    for index, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if not _same(_shape_of(a), _shape_of(b)):
            return f"layer {index} is {_describe_params(a)} where {wanted.name} has {_describe_params(b)}"
    if len(mine) != len(theirs):
        return f"{len(mine)} layers (dropout aside) where {wanted.name} has {len(theirs)}"
    return None


def _describe_params(layer: Layer) -> str:
    fields = {k: v for k, v in vars(layer).items() if k != "name"} if hasattr(layer, "__dict__") else {}
    text = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{layer.type}({text})"


def matching_preset(found: Architecture) -> Architecture | None:
    """The preset whose network ``found`` is (widths and classes aside), if any."""
    for preset in PRESETS.values():
        if first_difference(found, preset) is None:
            return preset
    return None


# --- JSON ---------------------------------------------------------------------------------------


def _int_pair(value: Any, where: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ArchError(f"{where}: expected a positive integer or [h, w], received {value!r}")


def _pads(value: Any, where: str) -> Pads:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return (value, value), (value, value)
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p)
            for p in value
        )
    )
    if not ok:
        raise ArchError(f"{where}: expected [[top, bottom], [left, right]] of integers >= 0, received {value!r}")
    return (int(value[0][0]), int(value[0][1])), (int(value[1][0]), int(value[1][1]))


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchError(f"{where}: expected a finite number, received {value!r}")
    if positive and value <= 0:
        raise ArchError(f"{where}: expected a positive number, received {value!r}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchError(f"{where}: expected a positive integer, received {value!r}")
    return value


def _choice(value: Any, where: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ArchError(f"{where}: expected one of {', '.join(choices)}, received {value!r}")
    return str(value)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or not all(ch.isalnum() or ch == "_" for ch in value):
        raise ArchError(f"{where}: expected a layer name of letters, digits and _, received {value!r}")
    return value


def _layer(data: Any, where: str) -> Layer:
    if not isinstance(data, dict):
        raise ArchError(f"{where}: expected an object with a type, received {type(data).__name__}")
    kind = _choice(data.get("type"), f"{where}.type", tuple(LAYER_TYPES))
    known = {f.name for f in fields(LAYER_TYPES[kind])} | {"type"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ArchError(f"{where} ({kind}): unknown field {unknown[0]!r}; expected only {', '.join(sorted(known))}")
    get = data.get
    if kind == "conv":
        padding = get("padding", "VALID")
        pad: Padding = padding if padding in ("VALID", "SAME") else _pads(padding, f"{where}.padding")
        return Conv(
            _name(get("name"), f"{where}.name"), _count(get("filters"), f"{where}.filters"),
            _int_pair(get("kernel"), f"{where}.kernel"), _int_pair(get("stride", 1), f"{where}.stride"),
            pad, _count(get("groups", 1), f"{where}.groups"),
        )
    if kind == "zeropad":
        return ZeroPad(_pads(get("pads"), f"{where}.pads"))
    if kind == "lrn":
        size = _count(get("size", 5), f"{where}.size")
        if size % 2 == 0:
            raise ArchError(f"{where}.size: expected an odd window (channels centred on c), received {size}")
        return LRN(
            size, _number(get("alpha", 1e-4), f"{where}.alpha"), _number(get("beta", 0.75), f"{where}.beta"),
            _number(get("k", 1.0), f"{where}.k", positive=True),
        )
    if kind == "batchnorm":
        epsilon = _number(get("epsilon", 1e-3), f"{where}.epsilon", positive=True)
        return BatchNorm(_name(get("name"), f"{where}.name"), epsilon)
    if kind == "maxpool":
        return MaxPool(
            _int_pair(get("size"), f"{where}.size"), _int_pair(get("stride"), f"{where}.stride"),
            _choice(get("padding", "VALID"), f"{where}.padding", POOL_PADDINGS),
        )
    if kind == "flatten":
        return Flatten(_choice(get("order", "hwc"), f"{where}.order", FLATTEN_ORDERS))
    if kind == "dense":
        return Dense(_name(get("name"), f"{where}.name"), _count(get("units"), f"{where}.units"))
    if kind == "dropout":
        return Dropout(_number(get("rate", 0.5), f"{where}.rate"))
    return LAYER_TYPES[kind]()  # type: ignore[no-any-return]


def _input(data: Any, where: str) -> InputSpec:
    if not isinstance(data, dict):
        raise ArchError(f"{where}: expected an object, received {type(data).__name__}")
    known = {f.name for f in fields(InputSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ArchError(f"{where}: unknown field {unknown[0]!r}; expected only {', '.join(sorted(known))}")
    channels = _count(data.get("channels"), f"{where}.channels")
    order = _choice(data.get("channel_order"), f"{where}.channel_order", CHANNEL_ORDERS)
    if (order == "GRAY") != (channels == 1) or channels not in (1, 3):
        raise ArchError(f"{where}: expected 3 channels for BGR/RGB or 1 for GRAY, received {channels} and {order}")
    mean = data.get("mean", [])
    if not isinstance(mean, list) or len(mean) not in (0, channels):
        raise ArchError(f"{where}.mean: expected [] or {channels} numbers, received {mean!r}")
    return InputSpec(
        _count(data.get("height"), f"{where}.height"), _count(data.get("width"), f"{where}.width"), channels, order,
        _number(data.get("scale", 1.0), f"{where}.scale", positive=True),
        tuple(_number(v, f"{where}.mean") for v in mean),
        _choice(data.get("fit", "crop"), f"{where}.fit", FIT_MODES),
        _count(data.get("resize_shorter", 256), f"{where}.resize_shorter"),
    )


def from_json(data: Any, *, where: str = "architecture") -> Architecture:
    """An :class:`Architecture` from plain data (what :meth:`Architecture.to_json` writes), checked.

    Raises:
        ArchError: a missing, unknown or ill-typed field, or layers that do not make a network.

    """
    if not isinstance(data, dict):
        raise ArchError(f"{where}: expected a JSON object, received {type(data).__name__}")
    known = {"name", "description", "input", "layers", "folded", "published_sha256", "unnamed_variables"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ArchError(f"{where}: unknown field {unknown[0]!r}; expected name, description, input, layers")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArchError(f"{where}.layers: expected a non-empty list, received {layers!r}")
    folds = data.get("folded", [])
    if not isinstance(folds, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in folds
    ):
        raise ArchError(f"{where}.folded: expected [[batchnorm, layer], ...], received {folds!r}")
    name = data.get("name", "custom")
    arch = Architecture(
        name=str(name),
        input=_input(data.get("input"), f"{where}.input"),
        layers=tuple(_layer(layer, f"{where}.layers[{i}]") for i, layer in enumerate(layers)),
        description=str(data.get("description", "")),
        folded=tuple((a, b) for a, b in folds),
        published_sha256=str(data.get("published_sha256", "")),
        unnamed_variables=_choice(
            data.get("unnamed_variables", ""), f"{where}.unnamed_variables", UNNAMED_VARIABLE_ORDERS
        ),
    )
    check_architecture(arch, where=where)
    return arch


def _describe(layer: Layer, index: int) -> str:
    return f"layers[{index}] ({layer.type}{' ' + layer.name if isinstance(layer, (Conv, Dense, BatchNorm)) else ''})"


def check_architecture(arch: Architecture, *, where: str = "architecture") -> None:
    """Refuse layer sequences that do not make an AlexNet-family network, naming the first offender.

    Rules: convolutions, pads, pools and LRN before one flatten; dense layers after it; at least one
    dense layer; a softmax only last; unique layer names; every feature map at least 1x1.

    Raises:
        ArchError: the first layer that does not fit.

    """
    seen: set[str] = set()
    flat = False
    shapes = trace(arch)
    for index, layer in enumerate(arch.layers):
        what = f"{where}: {_describe(layer, index)}"
        name = getattr(layer, "name", None)
        if name is not None:
            if name in seen:
                raise ArchError(f"{what}: expected unique layer names, received {name!r} twice")
            seen.add(name)
        if isinstance(layer, Flatten):
            if flat:
                raise ArchError(f"{what}: expected one flatten, received a second")
            flat = True
        elif isinstance(layer, (Conv, ZeroPad, MaxPool, LRN)) and flat:
            raise ArchError(f"{what}: expected spatial layers before the flatten, received one after it")
        elif isinstance(layer, Dense) and not flat:
            raise ArchError(f"{what}: expected a flatten before the first dense layer, received none")
        elif isinstance(layer, Softmax) and index != len(arch.layers) - 1:
            raise ArchError(f"{what}: expected softmax only as the last layer (the head)")
        if isinstance(layer, Conv) and (shapes[index][2] % layer.groups or layer.filters % layer.groups):
            raise ArchError(
                f"{what}: expected input ({shapes[index][2]}) and output ({layer.filters}) channels divisible "
                f"by {layer.groups} groups"
            )
        if min(shapes[index + 1][:2]) < 1:
            raise ArchError(f"{what}: the feature map shrinks to {shapes[index + 1][:2]} at input {shapes[0][:2]}")
    if not any(isinstance(layer, Dense) for layer in arch.layers):
        raise ArchError(f"{where}: expected at least one dense layer (the logits), received none")
    last = [layer for layer in arch.layers if not isinstance(layer, (Dropout, Softmax))][-1]
    if not isinstance(last, Dense):
        raise ArchError(f"{where}: expected the logits from a dense layer, received {last.type} last")


# --- presets ------------------------------------------------------------------------------------

_CAFFE_LRN = LRN(size=5, alpha=1e-4, beta=0.75, k=1.0)
_POOL3 = MaxPool((3, 3), (2, 2), "VALID")
_BVLC_INPUT = InputSpec(227, 227, 3, "BGR", 1.0, (104.007, 116.669, 122.679), "crop", 256)
_KERAS_INPUT = InputSpec(224, 224, 3, "RGB", 1 / 255, (), "crop", 256)


def _bvlc(name: str, conv1: Padding, pool: str, description: str) -> Architecture:
    caffe_pool = MaxPool((3, 3), (2, 2), pool)
    return Architecture(
        name=name,
        input=_BVLC_INPUT,
        description=description,
        layers=(
            Conv("conv1", 96, (11, 11), (4, 4), conv1), ReLU(), _CAFFE_LRN, caffe_pool,
            Conv("conv2", 256, (5, 5), (1, 1), ((2, 2), (2, 2)), 2), ReLU(), _CAFFE_LRN, caffe_pool,
            Conv("conv3", 384, (3, 3), (1, 1), ((1, 1), (1, 1))), ReLU(),
            Conv("conv4", 384, (3, 3), (1, 1), ((1, 1), (1, 1)), 2), ReLU(),
            Conv("conv5", 256, (3, 3), (1, 1), ((1, 1), (1, 1)), 2), ReLU(), caffe_pool,
            Flatten("hwc"), Dense("fc6", 4096), ReLU(), Dropout(0.5), Dense("fc7", 4096), ReLU(), Dropout(0.5),
            Dense("fc8", 1000),
        ),
        published_sha256=PUBLISHED_SHA256,
    )


def _keras_half(name: str, hidden: tuple[int, int], description: str) -> Architecture:
    return Architecture(
        name=name,
        input=_KERAS_INPUT,
        description=description,
        layers=(
            ZeroPad(((1, 2), (1, 2))),
            Conv("conv1", 48, (11, 11), (4, 4), "VALID"), ReLU(), _POOL3,
            Conv("conv2", 128, (5, 5), (1, 1), "SAME"), ReLU(), _POOL3,
            Conv("conv3", 192, (3, 3), (1, 1), "SAME"), ReLU(),
            Conv("conv4", 192, (3, 3), (1, 1), "SAME"), ReLU(),
            Conv("conv5", 128, (3, 3), (1, 1), "SAME"), ReLU(), _POOL3,
            Flatten("hwc"), Dropout(0.2), Dense("fc1", hidden[0]), ReLU(), Dropout(0.2),
            Dense("fc2", hidden[1]), ReLU(), Dense("fc3", 1000), Softmax(),
        ),
    )


def _oxflower() -> Architecture:
    pool2 = MaxPool((2, 2), (2, 2), "VALID")
    return Architecture(
        name="oxflower17-bn",
        input=_KERAS_INPUT,
        description="Keras AlexNet with BatchNormalization on oxflower17 (17 classes), standalone Keras 2.",
        layers=(
            Conv("conv1", 96, (11, 11), (4, 4), "VALID"), ReLU(), pool2, BatchNorm("bn1"),
            Conv("conv2", 256, (11, 11), (1, 1), "VALID"), ReLU(), pool2, BatchNorm("bn2"),
            Conv("conv3", 384, (3, 3), (1, 1), "VALID"), ReLU(), BatchNorm("bn3"),
            Conv("conv4", 384, (3, 3), (1, 1), "VALID"), ReLU(), BatchNorm("bn4"),
            Conv("conv5", 256, (3, 3), (1, 1), "VALID"), ReLU(), pool2, BatchNorm("bn5"),
            Flatten("hwc"),
            Dense("fc1", 4096), ReLU(), Dropout(0.4), BatchNorm("bn6"),
            Dense("fc2", 4096), ReLU(), Dropout(0.4), BatchNorm("bn7"),
            Dense("fc3", 1000), ReLU(), Dropout(0.4), BatchNorm("bn8"),
            Dense("fc4", 17), Softmax(),
        ),
    )


def _tfnn_paper() -> Architecture:
    paper_lrn = LRN.from_tf(depth_radius=2, alpha=1e-4, beta=0.75, bias=2.0)
    return Architecture(
        name="tfnn-paper",
        input=InputSpec(224, 224, 3, "RGB", 1.0, (), "crop", 256),
        description="tf.nn AlexNet with the paper's LRN (k=2, n=5, alpha=1e-4 on the plain sum); "
        "preprocessing not defined by the source (here: RGB 0-255).",
        layers=(
            Conv("conv1", 96, (11, 11), (4, 4), "SAME"), ReLU(), paper_lrn, _POOL3,
            Conv("conv2", 256, (5, 5), (1, 1), "SAME", 2), ReLU(), paper_lrn, _POOL3,
            Conv("conv3", 384, (3, 3), (1, 1), "SAME"), ReLU(),
            Conv("conv4", 384, (3, 3), (1, 1), "SAME", 2), ReLU(),
            Conv("conv5", 256, (3, 3), (1, 1), "SAME", 2), ReLU(), _POOL3,
            Flatten("hwc"), Dense("fc6", 4096), ReLU(), Dropout(0.5), Dense("fc7", 4096), ReLU(), Dropout(0.5),
            Dense("fc8", 1000),
        ),
    )


def _mnist() -> Architecture:
    lrn = LRN.from_tf(depth_radius=4, alpha=0.001 / 9.0, beta=0.75, bias=1.0)
    pool = MaxPool((2, 2), (2, 2), "SAME")
    return Architecture(
        name="mnist",
        input=InputSpec(28, 28, 1, "GRAY", 1 / 255, (), "resize", 28),
        description="AlexNet-style MNIST network (tf.nn): 784 floats in [0, 1] as 28x28x1.",
        unnamed_variables="kernels-then-biases",  # wc1..out, then bc1..out (NETWORKS.md)
        layers=(
            Conv("conv1", 64, (3, 3), (1, 1), "SAME"), ReLU(), pool, lrn, Dropout(0.2),
            Conv("conv2", 128, (3, 3), (1, 1), "SAME"), ReLU(), pool, lrn, Dropout(0.2),
            Conv("conv3", 256, (3, 3), (1, 1), "SAME"), ReLU(), pool, lrn, Dropout(0.2),
            Flatten("hwc"), Dense("fc1", 1024), ReLU(), Dense("fc2", 256), ReLU(), Dense("fc3", 10),
        ),
    )


PRESETS: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        _bvlc(
            "bvlc-alexnet", "VALID", "CEIL",
            "BVLC Caffe AlexNet (models/bvlc_alexnet/deploy.prototxt) as in bvlc_alexnet.npy; the default.",
        ),
        _bvlc(
            "guerzhoy", "SAME", "VALID",
            "Guerzhoy's myalexnet_forward: bvlc weights, conv1 padded SAME (57x57), pools rounding down. "
            "Not Caffe-faithful.",
        ),
        _tfnn_paper(),
        _keras_half("keras-v1", (2048, 2048), "Half-width Keras AlexNet, functional API, Softmax head."),
        _keras_half("keras-v2", (1024, 128), "The same network as a subclassed Keras model (weights files only)."),
        _oxflower(),
        _mnist(),
    )
}
# Old --profile values and what they now mean.
PROFILE_ALIASES: dict[str, str] = {"caffe": "bvlc-alexnet", "guerzhoy": "guerzhoy"}


def preset(name: str) -> Architecture:
    """The preset called ``name`` (``NAME-folded``: with its BatchNormalization folded).

    Raises:
        ArchError: no such preset.

    """
    base = name[: -len(FOLDED_SUFFIX)] if name.endswith(FOLDED_SUFFIX) else name
    if base not in PRESETS:
        raise ArchError(f"--arch: expected a preset ({', '.join(PRESETS)}) or a .json file, received {name!r}")
    return folded(PRESETS[base]) if base != name else PRESETS[base]


def load_arch(value: str | os.PathLike[str] | Architecture | None) -> Architecture:
    """An architecture from a preset name, a JSON file path, or itself; ``None`` is the default preset.

    Raises:
        ArchError: an unknown preset, an unreadable file or invalid JSON.

    """
    if value is None:
        return PRESETS[DEFAULT_ARCH]
    if isinstance(value, Architecture):
        return value
    text = str(value)
    if not text.lower().endswith(".json"):
        return preset(text)
    path = Path(text)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArchError(f"--arch {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ArchError(f"--arch {path}: expected JSON, received invalid JSON ({exc})") from None
    return from_json(data, where=str(path))


def resolve(arch: str | None, profile: str | None) -> Architecture:
    """``--arch`` with the old ``--profile`` as an alias (``caffe`` = bvlc-alexnet, ``guerzhoy``).

    Raises:
        ArchError: both given and disagreeing, or an unknown value.

    """
    if profile is not None:
        check_choice("--profile", profile, tuple(PROFILE_ALIASES))
        if arch is not None and load_arch(arch).name != PROFILE_ALIASES[profile]:
            raise ArchError(
                f"--profile {profile} is an alias of --arch {PROFILE_ALIASES[profile]}, received --arch {arch}"
            )
        return PRESETS[PROFILE_ALIASES[profile]]
    return load_arch(arch)


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices``, naming the option.

    Raises:
        InputError: an unknown value.

    """
    if value not in choices:
        raise InputError(f"{option}: expected one of {', '.join(choices)}, received {value!r}")
