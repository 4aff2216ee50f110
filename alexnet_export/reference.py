"""Float64 numpy forward pass of any architecture: the oracle every artifact is compared with.

Written independently of TensorFlow, from the definitions in :mod:`converters.arch`: convolution with
explicit zero padding (SAME computed as TF does) and channel groups; zero padding; across-channel LRN
in Caffe's form ``b_c = a_c / (k + alpha / n * sum_{|c'-c| <= n//2} a_c'^2) ** beta``; inference
BatchNormalization from its four statistics (never folded here, so a fold is checked, not assumed);
max-pooling with VALID, SAME (padded positions ignored) or Caffe's CEIL rounding (windows clipped at
the edge); flatten in ``hwc`` or ``chw`` order; dense layers; dropout as the identity. The logits are
the last dense layer's output (a Softmax head's input).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

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
    ZeroPad,
    conv_pads,
    pool_pads,
    same_pads,
)
from converters.arch import pooled_size as _pooled
from converters.weights import AlexNetWeights

__all__ = ["conv2d", "dense64", "forward", "layer_outputs", "lrn", "max_pool", "pooled_size", "same_pads", "softmax"]


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    stride: int | tuple[int, int],
    pads: tuple[int, int] | tuple[tuple[int, int], tuple[int, int]],
    groups: int,
) -> np.ndarray:
    """Grouped 2-D convolution (cross-correlation) of NHWC ``x`` with an HWIO grouped kernel.

    Args:
        x: input ``(N, H, W, C)``.
        kernel: ``(kh, kw, C/groups, C_out)``.
        bias: ``(C_out,)``.
        stride: step, the same in both directions or ``(sh, sw)``.
        pads: zero padding ``(before, after)`` for both axes, or ``((top, bottom), (left, right))``.
        groups: channel groups.

    """
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (pads, pads) if isinstance(pads[0], int) else pads
    kh, kw, cin_g, cout = kernel.shape
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    cout_g = cout // groups
    outs = []
    for g in range(groups):
        part = windows[:, :, :, g * cin_g : (g + 1) * cin_g]  # (N, Ho, Wo, cin_g, kh, kw)
        k = kernel[:, :, :, g * cout_g : (g + 1) * cout_g].astype(np.float64)
        outs.append(np.einsum("nhwcij,ijco->nhwo", part, k, optimize=True))
    return np.concatenate(outs, axis=3) + bias.astype(np.float64)


CAFFE_LRN = LRN()


def lrn(x: np.ndarray, params: LRN = CAFFE_LRN) -> np.ndarray:
    """Caffe's across-channel local response normalization of NHWC ``x``."""
    half = params.size // 2
    squares = np.pad(np.square(x), ((0, 0), (0, 0), (0, 0), (half, half)))
    window = sum(squares[..., i : i + x.shape[3]] for i in range(params.size))
    return np.asarray(x / (params.k + params.alpha / params.size * window) ** params.beta)


def max_pool(
    x: np.ndarray,
    *,
    ceil: bool | None = None,
    kernel: int | tuple[int, int] = 3,
    stride: int | tuple[int, int] = 2,
    padding: str = "VALID",
) -> np.ndarray:
    """Max-pool NHWC ``x``: VALID, SAME or CEIL; padded positions hold -inf, so they never win.

    ``ceil=True``/``False`` is the older spelling of ``padding="CEIL"``/``"VALID"``.
    """
    if ceil is not None:
        padding = "CEIL" if ceil else "VALID"
    size = (kernel, kernel) if isinstance(kernel, int) else kernel
    steps = (stride, stride) if isinstance(stride, int) else stride
    _n, h, w, _c = x.shape
    spec = MaxPool(size, steps, padding)
    (top, bottom), (left, right) = pool_pads(spec, h, w)
    oh, ow = _pooled(h, size[0], steps[0], padding), _pooled(w, size[1], steps[1], padding)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(xp, size, axis=(1, 2))
    return np.asarray(windows[:, : oh * steps[0] : steps[0], : ow * steps[1] : steps[1]].max(axis=(4, 5)))


def pooled_size(size: int, *, ceil: bool, kernel: int = 3, stride: int = 2) -> int:
    """Output size of an unpadded max-pool axis; Caffe rounds up (``ceil``), TF ``VALID`` rounds down."""
    return _pooled(size, kernel, stride, "CEIL" if ceil else "VALID")


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray,
               epsilon: float) -> np.ndarray:
    """Inference BatchNormalization over the last axis, unfolded, in float64."""
    as64 = [np.asarray(a, dtype=np.float64) for a in (gamma, beta, mean, variance)]
    return np.asarray(as64[0] * (x - as64[2]) / np.sqrt(as64[3] + epsilon) + as64[1])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def dense64(x: np.ndarray, kernel: np.ndarray, rows: int = 1024) -> np.ndarray:
    """``x @ kernel`` in float64, converting ``rows`` kernel rows at a time.

    fc6's kernel in float64 is 302 MB; converting it whole doubled the oracle's peak memory.
    """
    out = np.zeros((x.shape[0], kernel.shape[1]), dtype=np.float64)
    for start in range(0, kernel.shape[0], rows):
        out += x[:, start : start + rows] @ kernel[start : start + rows].astype(np.float64)
    return out


def _step(layer: Layer, weights: AlexNetWeights) -> Callable[[np.ndarray], np.ndarray] | None:
    """The float64 function of one layer (``None``: the identity, e.g. dropout or the softmax head)."""
    if isinstance(layer, Conv):
        params = weights[layer.name]
        return lambda x: conv2d(
            x, params.kernel, params.bias, stride=layer.stride, pads=conv_pads(layer, x.shape[1], x.shape[2]),
            groups=layer.groups,
        )
    if isinstance(layer, ZeroPad):
        return lambda x: np.pad(x, ((0, 0), *layer.pads, (0, 0)))
    if isinstance(layer, ReLU):
        return lambda x: np.maximum(x, 0.0)
    if isinstance(layer, LRN):
        return lambda x: lrn(x, layer)
    if isinstance(layer, BatchNorm):
        norm = weights.norms[layer.name]
        return lambda x: batch_norm(x, norm.gamma, norm.beta, norm.mean, norm.variance, layer.epsilon)
    if isinstance(layer, MaxPool):
        return lambda x: max_pool(x, kernel=layer.size, stride=layer.stride, padding=layer.padding)
    if isinstance(layer, Flatten):
        order = (0, 1, 2, 3) if layer.order == "hwc" else (0, 3, 1, 2)
        return lambda x: x.transpose(order).reshape(x.shape[0], -1)
    if isinstance(layer, Dense):
        params = weights[layer.name]
        return lambda x: dense64(x, params.kernel) + params.bias.astype(np.float64)
    return None


def layer_outputs(weights: AlexNetWeights, images: np.ndarray) -> list[np.ndarray]:
    """The float64 output of every layer of ``weights.arch`` in order (the identity for dropout/softmax).

    Args:
        weights: the canonical weight set (its architecture says what to compute).
        images: preprocessed input batch, float NHWC at the architecture's input size.

    """
    x = np.asarray(images, dtype=np.float64)
    outputs = []
    for layer in weights.arch.layers:
        step = _step(layer, weights)
        x = step(x) if step is not None else x
        outputs.append(x)
    return outputs


def forward(weights: AlexNetWeights, images: np.ndarray, *, arch: Architecture | None = None) -> np.ndarray:
    """Logits of ``images`` (preprocessed, float NHWC at the input size) in float64.

    Args:
        weights: the canonical weight set; its architecture is used unless ``arch`` is given.
        images: preprocessed input batch.
        arch: compute this architecture instead (same weights; e.g. guerzhoy on bvlc weights).

    """
    if arch is not None and arch is not weights.arch:
        weights = AlexNetWeights(weights.layers, arch, weights.norms, weights.source)
    x = np.asarray(images, dtype=np.float64)
    expected = (weights.arch.input.height, weights.arch.input.width, weights.arch.input.channels)
    if x.shape[1:] != expected:
        raise ValueError(f"oracle: expected images of shape (N, {', '.join(map(str, expected))}), received {x.shape}")
    for layer in weights.arch.layers:
        step = _step(layer, weights)
        if step is not None:
            x = step(x)
    return x
