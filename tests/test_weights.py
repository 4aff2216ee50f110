from __future__ import annotations

import numpy as np
import pytest

from converters.arch import PRESETS, expected_kernel_shape, parameter_count
from converters.errors import WeightsError
from converters.synthetic import synthesize, synthetic_widths
from converters.weights import AlexNetWeights, build_weights, merge_group_entries

BVLC = PRESETS["bvlc-alexnet"]
LAYER_NAMES = BVLC.layer_names
FULL_WIDTHS = BVLC.widths()
FULL_PARAMETER_COUNT = parameter_count(BVLC)


def test_full_size_shapes_match_the_published_file() -> None:
    shapes = {name: expected_kernel_shape(BVLC, name, FULL_WIDTHS) for name in LAYER_NAMES}
    assert shapes == {
        "conv1": (11, 11, 3, 96), "conv2": (5, 5, 48, 256), "conv3": (3, 3, 256, 384),
        "conv4": (3, 3, 192, 384), "conv5": (3, 3, 192, 256), "fc6": (9216, 4096),
        "fc7": (4096, 4096), "fc8": (4096, 1000),
    }
    total = sum(int(np.prod(s)) + s[-1] for s in shapes.values())
    assert total == FULL_PARAMETER_COUNT == 60_965_224


def test_widths_and_classes_are_read_from_shapes(small_weights: AlexNetWeights) -> None:
    assert small_weights.num_classes == 17
    assert small_weights.widths == {
        "conv1": 12, "conv2": 32, "conv3": 48, "conv4": 48, "conv5": 32, "fc6": 512, "fc7": 512, "fc8": 17,
    }


def test_build_does_not_copy_or_mutate_the_callers_arrays(small_weights: AlexNetWeights) -> None:
    arrays = {n: (np.array(layer.kernel), np.array(layer.bias)) for n, layer in small_weights.layers.items()}
    built = build_weights(arrays)
    for name, (kernel, bias) in arrays.items():
        assert kernel.flags.writeable and bias.flags.writeable  # caller's arrays untouched
        assert np.shares_memory(built[name].kernel, kernel)  # no copy of float32 input
        assert not built[name].kernel.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            built[name].kernel[...] = 0


def test_weight_sets_are_frozen(small_weights: AlexNetWeights) -> None:
    with pytest.raises(AttributeError):
        small_weights.layers = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        small_weights.layers["conv1"] = small_weights.layers["conv2"]  # type: ignore[index]


def test_fortran_ordered_input_becomes_c_contiguous(small_weights: AlexNetWeights) -> None:
    arrays = {n: (np.asfortranarray(layer.kernel), layer.bias) for n, layer in small_weights.layers.items()}
    built = build_weights(arrays)
    assert all(built[n].kernel.flags.c_contiguous for n in LAYER_NAMES)
    assert built.bit_equal(small_weights)
    assert not built.bit_equal(synthesize(seed=4, width_divisor=8, num_classes=17))


def test_merge_group_entries_refuses_mixed_forms(small_weights: AlexNetWeights) -> None:
    entries = {n: (layer.kernel, layer.bias) for n, layer in small_weights.layers.items()}
    entries["conv2_1"] = entries["conv2"]
    with pytest.raises(WeightsError, match=r"f: layer conv2: expected either conv2 or per-group entries conv2_1, conv2_2, received conv2, conv2_1"):
        merge_group_entries(entries, where="f")


def test_synthetic_is_deterministic_and_seed_dependent() -> None:
    a, b = synthesize(seed=5, width_divisor=16), synthesize(seed=5, width_divisor=16)
    c = synthesize(seed=6, width_divisor=16)
    assert all(a[n].kernel.tobytes() == b[n].kernel.tobytes() for n in LAYER_NAMES)
    assert all(a[n].kernel.tobytes() != c[n].kernel.tobytes() for n in LAYER_NAMES)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        pytest.param({"width_divisor": 3}, r"--width-divisor: expected a divisor leaving every width a multiple of 2 for architecture bvlc-alexnet, received 3", id="divisor-3"),
        pytest.param({"width_divisor": 32}, r"--width-divisor: .*received 32 \(conv1 has 96 channels\)", id="odd-width"),
        pytest.param({"width_divisor": 0}, r"--width-divisor: expected a positive integer, received 0", id="zero"),
        pytest.param({"num_classes": 0}, r"--num-classes: expected a positive integer, received 0", id="classes"),
    ],
)
def test_synthetic_option_errors(kwargs: dict[str, int], message: str) -> None:
    from converters.errors import InputError

    with pytest.raises(InputError, match=message):
        synthetic_widths(**kwargs)


def test_synthetic_activations_stay_finite_and_informative(images5: np.ndarray) -> None:
    from alexnet_export.reference import forward, softmax

    weights = synthesize(seed=1, width_divisor=8, num_classes=17)
    logits = forward(weights, images5)
    assert np.isfinite(logits).all()
    assert logits.std(axis=1).min() > 0.5 and logits.std(axis=1).max() < 50
    probabilities = softmax(logits)
    assert probabilities.max() < 0.999  # softmax not saturated
    assert np.abs(logits - logits.mean(axis=0)).max() > 1e-3  # different images, different logits
