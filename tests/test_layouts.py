from __future__ import annotations

import numpy as np
import pytest

from converters.errors import WeightsError
from converters.layouts import fc6_rows_chw_to_hwc, fc6_rows_hwc_to_chw, hwio_to_oihw, oihw_to_hwio


def test_hwio_oihw_round_trip_is_bit_exact() -> None:
    kernel = np.random.default_rng(0).normal(size=(5, 3, 7, 11)).astype(np.float32)
    oihw = hwio_to_oihw(kernel)
    assert oihw.shape == (11, 7, 5, 3) and oihw.flags.c_contiguous
    assert oihw[10, 6, 4, 2] == kernel[4, 2, 6, 10]
    assert np.array_equal(oihw_to_hwio(oihw), kernel)


def test_fc6_rows_follow_the_flatten_order() -> None:
    channels, out = 5, 3
    pool5 = np.random.default_rng(1).normal(size=(6, 6, channels)).astype(np.float32)  # one image, HWC
    kernel = np.random.default_rng(2).normal(size=(36 * channels, out)).astype(np.float32)
    nhwc_logits = pool5.reshape(-1) @ kernel
    grid = (6, 6, channels)
    nchw_logits = pool5.transpose(2, 0, 1).reshape(-1) @ fc6_rows_hwc_to_chw(kernel, grid)
    np.testing.assert_allclose(nchw_logits, nhwc_logits, rtol=1e-5)
    assert np.array_equal(fc6_rows_chw_to_hwc(fc6_rows_hwc_to_chw(kernel, grid), grid), kernel)
    assert not np.array_equal(fc6_rows_hwc_to_chw(kernel, grid), kernel)


def test_row_permutation_for_a_non_square_map() -> None:
    # asymmetric grid (h=2, w=3, c=5) so that a swapped h/w or c order cannot pass
    cube = np.random.default_rng(3).normal(size=(2, 3, 5)).astype(np.float32)
    kernel = np.random.default_rng(4).normal(size=(30, 4)).astype(np.float32)
    expected = cube.reshape(-1) @ kernel
    np.testing.assert_allclose(cube.transpose(2, 0, 1).reshape(-1) @ fc6_rows_hwc_to_chw(kernel, (2, 3, 5)), expected, rtol=1e-5)
    assert np.array_equal(fc6_rows_chw_to_hwc(fc6_rows_hwc_to_chw(kernel, (2, 3, 5)), (2, 3, 5)), kernel)


def test_layout_errors_name_what_was_expected() -> None:
    with pytest.raises(WeightsError, match=r"expected a 4-d HWIO kernel, received shape \(3, 3\)"):
        hwio_to_oihw(np.zeros((3, 3), np.float32))
    with pytest.raises(WeightsError, match=r"expected 6x6x256 = 9216 rows in \(h, w, c\) order, received shape \(40, 2\)"):
        fc6_rows_hwc_to_chw(np.zeros((40, 2), np.float32))
