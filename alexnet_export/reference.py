"""Float64 numpy forward pass of AlexNet: the oracle every artifact is compared with.

Written independently of TensorFlow, from Caffe's definitions: convolution with symmetric zero
padding and channel groups, across-channel LRN with Caffe's formula
``b_c = a_c / (k + alpha / n * sum_{|c'-c| <= n//2} a_c'^2) ** beta``, and max-pooling whose output
size Caffe rounds up (``ceil``). Layout facts come from :mod:`converters.spec` only.
"""

from __future__ import annotations

import math

import numpy as np

from converters.spec import (
    CONV_LAYERS,
    DENSE_LAYERS,
    LRN,
    POOL_SIZE,
    POOL_STRIDE,
    PROFILES,
    LRNParams,
)
from converters.weights import AlexNetWeights


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    stride: int,
    pads: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """Grouped 2-D convolution (cross-correlation) of NHWC ``x`` with an HWIO grouped kernel.

    Args:
        x: input ``(N, H, W, C)``.
        kernel: ``(kh, kw, C/groups, C_out)``.
        bias: ``(C_out,)``.
        stride: step in both spatial directions.
        pads: zero padding ``(before, after)`` applied to both H and W.
        groups: channel groups.

    """
    kh, kw, cin_g, cout = kernel.shape
    xp = np.pad(x, ((0, 0), pads, pads, (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    cout_g = cout // groups
    outs = []
    for g in range(groups):
        part = windows[:, :, :, g * cin_g : (g + 1) * cin_g]  # (N, Ho, Wo, cin_g, kh, kw)
        k = kernel[:, :, :, g * cout_g : (g + 1) * cout_g].astype(np.float64)
        outs.append(np.einsum("nhwcij,ijco->nhwo", part, k, optimize=True))
    return np.concatenate(outs, axis=3) + bias.astype(np.float64)


def lrn(x: np.ndarray, params: LRNParams = LRN) -> np.ndarray:
    """Caffe's across-channel local response normalization of NHWC ``x``."""
    half = params.local_size // 2
    squares = np.pad(np.square(x), ((0, 0), (0, 0), (0, 0), (half, half)))
    window = sum(squares[..., i : i + x.shape[3]] for i in range(params.local_size))
    return np.asarray(x / (params.k + params.alpha / params.local_size * window) ** params.beta)


def pooled_size(size: int, *, ceil: bool, kernel: int = POOL_SIZE, stride: int = POOL_STRIDE) -> int:
    """Output size of an unpadded max-pool; Caffe rounds up, TF ``VALID`` rounds down."""
    steps = (size - kernel) / stride
    out = (math.ceil(steps) if ceil else math.floor(steps)) + 1
    if ceil and (out - 1) * stride >= size:  # Caffe: the last window must start inside the image
        out -= 1
    return out


def max_pool(x: np.ndarray, *, ceil: bool, kernel: int = POOL_SIZE, stride: int = POOL_STRIDE) -> np.ndarray:
    """Max-pool NHWC ``x``; windows that run past the edge (Caffe's ceil mode) are clipped."""
    _n, h, w, _c = x.shape
    oh, ow = pooled_size(h, ceil=ceil), pooled_size(w, ceil=ceil)
    need_h, need_w = (oh - 1) * stride + kernel, (ow - 1) * stride + kernel
    xp = np.pad(x, ((0, 0), (0, max(need_h - h, 0)), (0, max(need_w - w, 0)), (0, 0)), constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kernel, kernel), axis=(1, 2))
    return np.asarray(windows[:, : oh * stride : stride, : ow * stride : stride].max(axis=(4, 5)))


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


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


def forward(weights: AlexNetWeights, images: np.ndarray, *, profile: str = "caffe") -> np.ndarray:
    """Logits of ``images`` (float NHWC ``(N, 227, 227, 3)``, BGR, mean-subtracted) in float64.

    Args:
        weights: the canonical weight set.
        images: preprocessed input batch.
        profile: a name from :data:`converters.spec.PROFILES`.

    """
    prof = PROFILES[profile]
    x = np.asarray(images, dtype=np.float64)
    for spec in CONV_LAYERS:
        layer = weights[spec.name]
        pads = (spec.padding, spec.padding)
        if spec.name == "conv1" and prof.conv1_same:
            pads = same_pads(x.shape[1], spec.kernel_size, spec.stride)
        x = conv2d(x, layer.kernel, layer.bias, stride=spec.stride, pads=pads, groups=spec.groups)
        x = np.maximum(x, 0.0)
        if spec.lrn:
            x = lrn(x)
        if spec.pool:
            x = max_pool(x, ceil=prof.pool_ceil)
    x = x.reshape(x.shape[0], -1)  # (h, w, c) order: fc6's rows
    for dense in DENSE_LAYERS:
        layer = weights[dense.name]
        x = dense64(x, layer.kernel) + layer.bias.astype(np.float64)
        if dense.relu:
            x = np.maximum(x, 0.0)
    return x
