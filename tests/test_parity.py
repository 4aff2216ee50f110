from __future__ import annotations

import numpy as np

from alexnet_export.parity import TOLERANCES, Tolerance, allclose_failures, compare, failures, top_k


def test_compare_figures_by_hand() -> None:
    expected = np.array([[1.0, 2.0, 3.0], [3.0, 0.0, -1.0]])
    actual = np.array([[1.0, 2.0, 3.5], [3.0, 0.5, -1.0]], np.float32)
    m = compare(actual, expected)
    assert m.max_abs == 0.5 and m.max_rel == 0.5 / 3.0 and m.mean_abs == 1.0 / 6
    assert m.top1 == 1.0 and m.nonfinite == 0 and m.shape == (2, 3)
    assert m.cosine == np.float64(10 / np.sqrt(10.25 * 10))  # row 2: (3, .5, -1) . (3, 0, -1)


def test_classes_are_compared_by_index_not_after_sorting() -> None:
    expected = np.array([[5.0, 1.0, 0.0]])
    permuted = np.array([[1.0, 5.0, 0.0]])  # same values, other classes: MMdnn's sort would pass this
    m = compare(permuted, expected)
    assert m.top1 == 0.0 and failures(m, TOLERANCES["int8"], (1, 3))
    assert top_k(expected, 2).tolist() == [[0, 1]]


def test_nan_and_shape_are_failures() -> None:
    m = compare(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]))
    assert failures(m, TOLERANCES["int8"], (1, 2)) == ["1 NaN/Inf values"]
    assert m.to_json()["max_abs"] is None
    m = compare(np.zeros((1, 3)), np.zeros((1, 2)))
    assert failures(m, TOLERANCES["fp32"], (1, 2)) == ["shape (1, 3), expected (1, 2)"]


def test_allclose_is_off_by_default_and_names_the_atol_that_would_pass() -> None:
    expected = np.array([[10.0, -2.0, 0.0]])
    actual = expected + np.array([[0.5, 0.01, 0.001]])
    assert allclose_failures(actual, expected, TOLERANCES["fp32"]) == []
    tolerance = Tolerance(1.0, 0.0, 0.0, 0.0, atol=0.01, rtol=0.01)
    # excess over rtol*|e|: 0.5 - 0.1 = 0.4, 0.01 - 0.02 < 0, 0.001 - 0 = 0.001
    assert allclose_failures(actual, expected, tolerance) == [
        "allclose(atol=0.01, rtol=0.01) fails at 1 of 3 values (passes with atol >= 0.4)"
    ]
    assert allclose_failures(actual, expected, Tolerance(1.0, 0.0, 0.0, 0.0, atol=0.4)) == [
        "allclose(atol=0.4, rtol=0) fails at 1 of 3 values (passes with atol >= 0.5)"
    ]
    assert allclose_failures(actual, expected, Tolerance(1.0, 0.0, 0.0, 0.0, atol=0.5)) == []
