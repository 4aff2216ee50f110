"""The BVLC AlexNet architecture as data, and shape checks against it.

Facts come from Caffe's ``models/bvlc_alexnet/deploy.prototxt`` and the caffe-tensorflow converter
that produced ``bvlc_alexnet.npy`` (see ``shared/DESIGN.md``). Widths and the class count are not
fixed here: they are read from a weight set's shapes, so a fine-tuned 17-class ``fc8`` or a
width-scaled test network goes through the same code. Everything else (kernel sizes, strides,
padding, groups, LRN and pooling placement) is fixed by the table below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Padding = Literal["VALID", "SAME"]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution layer, always followed by ReLU.

    Attributes:
        name: layer name (also the variable and node name in every artifact).
        kernel_size: square kernel side.
        stride: square stride.
        padding: Caffe's symmetric zero padding in pixels.
        groups: number of channel groups (Caffe ``group``).
        lrn: whether LRN follows the ReLU.
        pool: whether a 3x3/2 max-pool follows (after LRN when both).

    """

    name: str
    kernel_size: int
    stride: int
    padding: int
    groups: int
    lrn: bool
    pool: bool


@dataclass(frozen=True)
class DenseSpec:
    """One fully connected layer.

    Attributes:
        name: layer name.
        relu: whether ReLU follows (fc6, fc7); fc8 produces the logits.

    """

    name: str
    relu: bool


CONV_LAYERS: tuple[ConvSpec, ...] = (
    ConvSpec("conv1", kernel_size=11, stride=4, padding=0, groups=1, lrn=True, pool=True),
    ConvSpec("conv2", kernel_size=5, stride=1, padding=2, groups=2, lrn=True, pool=True),
    ConvSpec("conv3", kernel_size=3, stride=1, padding=1, groups=1, lrn=False, pool=False),
    ConvSpec("conv4", kernel_size=3, stride=1, padding=1, groups=2, lrn=False, pool=False),
    ConvSpec("conv5", kernel_size=3, stride=1, padding=1, groups=2, lrn=False, pool=True),
)
DENSE_LAYERS: tuple[DenseSpec, ...] = (
    DenseSpec("fc6", relu=True),
    DenseSpec("fc7", relu=True),
    DenseSpec("fc8", relu=False),
)
LAYER_NAMES: tuple[str, ...] = tuple(s.name for s in CONV_LAYERS) + tuple(s.name for s in DENSE_LAYERS)
CONV_BY_NAME: dict[str, ConvSpec] = {s.name: s for s in CONV_LAYERS}

# Input: 227x227 BGR, 0-255, minus the per-channel ImageNet mean in B, G, R order.
INPUT_SIZE = 227
INPUT_CHANNELS = 3
BGR_MEAN: tuple[float, float, float] = (104.007, 116.669, 122.679)

# Max-pool 3x3 stride 2; Caffe rounds the output size up (identical to VALID at 227: 55->27->13->6).
POOL_SIZE = 3
POOL_STRIDE = 2
POOL5_SIZE = 6


@dataclass(frozen=True)
class LRNParams:
    """Caffe's across-channel LRN: ``b = a / (k + alpha / n * sum(a^2 over n channels)) ** beta``."""

    local_size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    @property
    def tf_depth_radius(self) -> int:
        """``depth_radius`` of ``tf.nn.local_response_normalization`` (half the window)."""
        return (self.local_size - 1) // 2

    @property
    def tf_alpha(self) -> float:
        """TF multiplies the plain sum by alpha, so Caffe's alpha / n (2e-5, not 1e-4)."""
        return self.alpha / self.local_size


LRN = LRNParams()

# Full-size BVLC AlexNet widths (outputs of each layer) and class count.
FULL_WIDTHS: dict[str, int] = {
    "conv1": 96,
    "conv2": 256,
    "conv3": 384,
    "conv4": 384,
    "conv5": 256,
    "fc6": 4096,
    "fc7": 4096,
    "fc8": 1000,
}
FULL_PARAMETER_COUNT = 60_965_224

# Third-party pin of the widely mirrored bvlc_alexnet.npy.
PUBLISHED_SHA256 = "1294ef51496c52f2e4879ee3b5e1da22c35d61f3240937491b4469403d5428cc"


def input_channels(name: str, widths: dict[str, int]) -> int:
    """Number of input channels (or features) of layer ``name`` given the layer widths.

    Args:
        name: a layer name from :data:`LAYER_NAMES`.
        widths: output width of every layer.

    Returns:
        The channel count feeding ``name``; for fc6 the length of the flattened pool5 map.

    """
    index = LAYER_NAMES.index(name)
    if index == 0:
        return INPUT_CHANNELS
    previous = widths[LAYER_NAMES[index - 1]]
    if name == "fc6":
        return POOL5_SIZE * POOL5_SIZE * previous
    return previous


def expected_kernel_shape(name: str, widths: dict[str, int]) -> tuple[int, ...]:
    """Canonical kernel shape: HWIO grouped ``(k, k, C_in/G, C_out)`` for convs, ``(in, out)`` for fc."""
    c_in = input_channels(name, widths)
    if name in CONV_BY_NAME:
        spec = CONV_BY_NAME[name]
        return (spec.kernel_size, spec.kernel_size, c_in // spec.groups, widths[name])
    return (c_in, widths[name])


# How grouped layers can be computed (see alexnet_export.graph).
GROUP_MODES: tuple[str, ...] = ("native", "split", "dense")


@dataclass(frozen=True)
class Profile:
    """How a forward pass interprets the architecture.

    Attributes:
        name: ``caffe`` (faithful to BVLC Caffe; the default) or ``guerzhoy``.
        conv1_same: pad conv1 the TF ``SAME`` way (57x57 maps, as myalexnet_forward does) instead of
            Caffe's pad 0.
        pool_ceil: round pooled sizes up like Caffe (``True``) or down like TF ``VALID``.

    """

    name: str
    conv1_same: bool
    pool_ceil: bool


PROFILES: dict[str, Profile] = {
    "caffe": Profile("caffe", conv1_same=False, pool_ceil=True),
    "guerzhoy": Profile("guerzhoy", conv1_same=True, pool_ceil=False),
}


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices``, naming the option.

    Raises:
        InputError: an unknown value.

    """
    if value not in choices:
        from converters.errors import InputError

        raise InputError(f"{option}: expected one of {', '.join(choices)}, received {value!r}")
