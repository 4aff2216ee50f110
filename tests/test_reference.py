"""The oracle proven against hand-computed cases, so a mistake shared with TF cannot hide."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_export.reference import conv2d, lrn, max_pool, pooled_size, same_pads
from converters.arch import LRN


def test_lrn_matches_caffes_formula_by_hand() -> None:
    # asymmetric: N=2, H=1, W=3, C=7, values large enough for LRN to matter
    x = np.arange(2 * 1 * 3 * 7, dtype=np.float64).reshape(2, 1, 3, 7) * 37.0 - 100.0
    out = lrn(x)
    expected = np.empty_like(x)
    for n, h, w, c in np.ndindex(*x.shape):
        window = [x[n, h, w, j] ** 2 for j in range(max(0, c - 2), min(7, c + 3))]
        expected[n, h, w, c] = x[n, h, w, c] / (1.0 + 1e-4 / 5 * sum(window)) ** 0.75
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    # one value computed on paper: channel 0 of [300, 400, 0, ...] -> 300 / (1 + 2e-5 * 250000) ** 0.75
    single = lrn(np.array([[[[300.0, 400.0, 0.0, 0.0]]]]))
    assert single[0, 0, 0, 0] == pytest.approx(300.0 / 6.0**0.75, rel=1e-14)


def test_lrn_constants_are_caffes_and_tf_takes_alpha_over_n() -> None:
    caffe = LRN()
    assert (caffe.size, caffe.alpha, caffe.beta, caffe.k) == (5, 1e-4, 0.75, 1.0)
    assert caffe.tf_depth_radius == 2 and caffe.tf_alpha == pytest.approx(2e-5)
    wrong = lrn(np.full((1, 1, 1, 5), 200.0), LRN(alpha=5e-4))  # alpha 1e-4 used as TF's alpha
    assert not np.allclose(wrong, lrn(np.full((1, 1, 1, 5), 200.0)), rtol=1e-3)


def test_max_pool_ceil_mode_by_hand() -> None:
    x = np.arange(36, dtype=np.float64).reshape(1, 6, 6, 1)
    x[0, 5, 5, 0] = 100.0
    caffe = max_pool(x, ceil=True)  # windows start at 0, 2, 4; the last one is clipped to 2 pixels
    assert caffe[..., 0].tolist() == [[[14.0, 16.0, 17.0], [26.0, 28.0, 29.0], [32.0, 34.0, 100.0]]]
    valid = max_pool(x, ceil=False)
    assert valid[..., 0].tolist() == [[[14.0, 16.0], [26.0, 28.0]]]


@pytest.mark.parametrize("size,ceil_out", [(55, 27), (27, 13), (13, 6), (57, 28), (28, 14), (6, 3), (7, 3)])
def test_pooled_sizes(size: int, ceil_out: int) -> None:
    assert pooled_size(size, ceil=True) == ceil_out


def test_valid_pooling_equals_caffe_at_227() -> None:
    for size in (55, 27, 13):
        assert pooled_size(size, ceil=True) == pooled_size(size, ceil=False)


def test_conv2d_by_hand_with_stride_padding_and_groups() -> None:
    x = np.arange(1 * 3 * 4 * 2, dtype=np.float64).reshape(1, 3, 4, 2)  # H=3, W=4, C=2
    kernel = np.zeros((2, 2, 1, 2), np.float32)  # 2 groups, 1 in / 1 out each
    kernel[0, 0, 0, 0] = 1.0  # group 0: top-left tap of channel 0
    kernel[1, 1, 0, 1] = 2.0  # group 1: bottom-right tap of channel 1, doubled
    out = conv2d(x, kernel, np.array([0.5, -1.0], np.float32), stride=2, pads=(1, 1), groups=2)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert out.shape == (1, 2, 3, 2)
    for i, j in np.ndindex(2, 3):
        assert out[0, i, j, 0] == xp[0, 2 * i, 2 * j, 0] + 0.5
        assert out[0, i, j, 1] == 2.0 * xp[0, 2 * i + 1, 2 * j + 1, 1] - 1.0


def test_same_pads_for_guerzhoy_conv1() -> None:
    assert same_pads(227, 11, 4) == (4, 4)  # 57x57 maps
    assert same_pads(28, 5, 1) == (2, 2)
