"""The oracle's newer operations against direct loops and hand-worked numbers, never against TensorFlow."""

from __future__ import annotations

import itertools

import numpy as np

from alexnet_export.reference import batch_norm, forward, lrn, max_pool
from converters.arch import LRN, Architecture, Dense, Flatten, InputSpec, Softmax, ZeroPad
from converters.weights import build_weights


def test_batch_norm_by_hand() -> None:
    x = np.array([[[[2.0, -1.0]]]])  # N=1, H=1, W=1, C=2
    out = batch_norm(x, np.array([2.0, 0.5]), np.array([1.0, 0.0]), np.array([1.0, 1.0]), np.array([3.0, 0.0]), 1.0)
    # channel 0: 2 * (2 - 1) / sqrt(3 + 1) + 1 = 2; channel 1: 0.5 * (-1 - 1) / sqrt(0 + 1) + 0 = -1
    np.testing.assert_allclose(out, [[[[2.0, -1.0]]]], rtol=0, atol=1e-15)


def _loop_pool(x: np.ndarray, k: int, s: int, pads: tuple[int, int, int, int], out: tuple[int, int]) -> np.ndarray:
    n, h, w, c = x.shape
    top, _bottom, left, _right = pads
    result = np.empty((n, *out, c))
    for b, i, j, ch in itertools.product(range(n), range(out[0]), range(out[1]), range(c)):
        best = -np.inf
        for di, dj in itertools.product(range(k), range(k)):
            r, q = i * s + di - top, j * s + dj - left
            if 0 <= r < h and 0 <= q < w:  # padded positions never count
                best = max(best, x[b, r, q, ch])
        result[b, i, j, ch] = best
    return result


def test_same_max_pool_against_a_loop() -> None:
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 3)) - 5.0  # all negative: zero padding would win
    # SAME, 2x2 stride 2: out 4x3; pads (0, 1) rows and (0, 1) columns
    np.testing.assert_array_equal(max_pool(x, kernel=2, stride=2, padding="SAME"), _loop_pool(x, 2, 2, (0, 1, 0, 1), (4, 3)))


def test_caffe_ceil_pool_against_a_loop() -> None:
    x = np.random.default_rng(1).normal(size=(1, 8, 6, 2)) - 5.0
    # 3x3 stride 2, ceil: rows (8-3)/2 -> 2.5 -> 3+1 = 4; cols (6-3)/2 -> 1.5 -> 2+1 = 3
    np.testing.assert_array_equal(max_pool(x, kernel=3, stride=2, padding="CEIL"), _loop_pool(x, 3, 2, (0, 1, 0, 1), (4, 3)))


def test_lrn_with_a_nine_channel_window_against_a_loop() -> None:
    params = LRN(size=9, alpha=0.001, beta=0.75, k=1.0)  # the MNIST network's tf.nn.lrn(4, 1.0, 0.001/9, 0.75)
    x = np.random.default_rng(2).normal(0, 20, size=(1, 2, 3, 13))
    expected = np.empty_like(x)
    for idx in itertools.product(range(1), range(2), range(3)):
        for c in range(13):
            window = sum(x[(*idx, j)] ** 2 for j in range(max(0, c - 4), min(13, c + 5)))
            expected[(*idx, c)] = x[(*idx, c)] / (1.0 + 0.001 / 9 * window) ** 0.75
    np.testing.assert_allclose(lrn(x, params), expected, rtol=1e-13)


def test_paper_lrn_k2_by_hand() -> None:
    x = np.zeros((1, 1, 1, 5))
    x[..., 2] = 10.0
    params = LRN.from_tf(depth_radius=2, alpha=1e-4, beta=0.75, bias=2.0)
    # b = 10 / (2 + 1e-4 * 100) ** 0.75
    assert np.isclose(lrn(x, params)[0, 0, 0, 2], 10.0 / (2.0 + 1e-4 * 100.0) ** 0.75, rtol=1e-14)


def _tiny(layers: tuple, height: int = 3, width: int = 2, channels: int = 1) -> Architecture:
    return Architecture("tiny", InputSpec(height, width, channels, "GRAY" if channels == 1 else "RGB"), layers)


def test_asymmetric_zero_padding_and_softmax_head_by_hand() -> None:
    arch = _tiny((ZeroPad(((1, 2), (0, 3))), Flatten("hwc"), Dense("fc", 30), Softmax()))
    kernel = np.eye(6 * 5, dtype=np.float32)  # (3+1+2) x (2+0+3) = 6 x 5 cells, one channel
    weights = build_weights({"fc": (kernel, np.zeros(30, np.float32))}, arch=arch)
    x = np.arange(1, 7, dtype=np.float64).reshape(1, 3, 2, 1)
    logits = forward(weights, x)
    expected = np.zeros((6, 5))
    expected[1:4, 0:2] = x[0, :, :, 0]  # one row on top, two below; none left, three right
    np.testing.assert_array_equal(logits[0], expected.reshape(-1))  # the logits are the softmax's input


def test_chw_flatten_order_by_hand() -> None:
    arch = _tiny((Flatten("chw"), Dense("fc", 12)), height=2, width=3, channels=3)
    weights = build_weights({"fc": (np.eye(18, 12, dtype=np.float32), np.zeros(12, np.float32))}, arch=arch)
    x = np.arange(18, dtype=np.float64).reshape(1, 2, 3, 3)  # value = (h * 3 + w) * 3 + c
    np.testing.assert_array_equal(forward(weights, x)[0], x[0].transpose(2, 0, 1).reshape(-1)[:12])
