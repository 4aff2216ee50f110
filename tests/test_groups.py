from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alexnet_export.reference import conv2d
from converters import groups
from converters.errors import WeightsError


@st.composite
def grouped_kernels(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    g = draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    cin_g, cout_g = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31))
    kernel = np.random.default_rng(seed).standard_normal((kh, kw, cin_g, cout_g * g)).astype(np.float32)
    return kernel, g


@settings(max_examples=60, deadline=None)
@given(grouped_kernels())
def test_split_merge_round_trip_is_bit_exact(case: tuple[np.ndarray, int]) -> None:
    kernel, g = case
    parts = groups.split(kernel, g)
    assert len(parts) == g
    assert all(p.shape == (*kernel.shape[:3], kernel.shape[3] // g) for p in parts)
    assert groups.merge(parts).tobytes() == kernel.tobytes()


@settings(max_examples=60, deadline=None)
@given(grouped_kernels())
def test_dense_round_trip_is_bit_exact(case: tuple[np.ndarray, int]) -> None:
    kernel, g = case
    dense = groups.to_dense(kernel, g)
    assert dense.shape == (*kernel.shape[:2], kernel.shape[2] * g, kernel.shape[3])
    assert groups.from_dense(dense, g).tobytes() == kernel.tobytes()


def test_dense_kernel_computes_the_grouped_convolution() -> None:
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)  # G=2: 8 inputs, 6 outputs
    x = rng.standard_normal((2, 7, 5, 8))
    bias = np.zeros(6, np.float32)
    grouped = conv2d(x, kernel, bias, stride=1, pads=(1, 1), groups=2)
    dense = conv2d(x, groups.to_dense(kernel, 2), bias, stride=1, pads=(1, 1), groups=1)
    np.testing.assert_allclose(grouped, dense, rtol=1e-12, atol=1e-12)
    # group 0 outputs must not depend on group 1 inputs
    x2 = x.copy()
    x2[..., 4:] += 1.0
    changed = conv2d(x2, kernel, bias, stride=1, pads=(1, 1), groups=2)
    np.testing.assert_array_equal(changed[..., :3], grouped[..., :3])
    assert not np.allclose(changed[..., 3:], grouped[..., 3:])


def test_from_dense_refuses_off_diagonal_values_naming_the_layer() -> None:
    dense = groups.to_dense(np.ones((3, 3, 2, 4), np.float32), 2)
    dense[0, 0, 0, 3] = 0.5  # input group 0 -> output group 1
    with pytest.raises(WeightsError, match=r"conv4: expected a block-diagonal kernel for 2 groups, received 1 non-zero"):
        groups.from_dense(dense, 2, name="conv4")


def test_split_refuses_indivisible_outputs() -> None:
    with pytest.raises(WeightsError, match=r"conv2: output channels must divide into 2 groups, received shape \(1, 1, 2, 3\)"):
        groups.split(np.zeros((1, 1, 2, 3), np.float32), 2, name="conv2")


def test_merge_refuses_mismatched_parts() -> None:
    with pytest.raises(WeightsError, match=r"group 1 \(1, 1, 2, 4\)"):
        groups.merge([np.zeros((1, 1, 2, 3), np.float32), np.zeros((1, 1, 2, 4), np.float32)], name="conv2")
