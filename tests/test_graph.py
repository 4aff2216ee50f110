"""The canonical TF graph against the float64 oracle, for every group mode and the two bvlc-weight presets."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from alexnet_export.graph import AlexNet, check_options  # noqa: E402
from alexnet_export.reference import forward, softmax  # noqa: E402
from converters.arch import PRESETS  # noqa: E402
from converters.errors import InputError  # noqa: E402
from converters.weights import AlexNetWeights, with_arch  # noqa: E402

BVLC_PRESETS = {"caffe": PRESETS["bvlc-alexnet"], "guerzhoy": PRESETS["guerzhoy"]}

FP32_RTOL = 1e-5  # relative to the largest |logit|: measured ~5e-7 on these weights


def assert_logits_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=FP32_RTOL, atol=FP32_RTOL * scale)


@pytest.fixture(scope="module")
def oracle(small_weights: AlexNetWeights, images5: np.ndarray) -> dict[str, np.ndarray]:
    return {p: forward(small_weights, images5, arch=arch) for p, arch in BVLC_PRESETS.items()}


@pytest.mark.parametrize("profile", ["caffe", "guerzhoy"])
@pytest.mark.parametrize("groups", ["native", "split", "dense"])
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_graph_matches_oracle(small_weights, images5, oracle, groups: str, profile: str, batch: int) -> None:
    module = AlexNet(with_arch(small_weights, BVLC_PRESETS[profile]), groups=groups)
    out = module.serve(tf.constant(images5[:batch]))
    assert set(out) == {"logits", "probabilities"}
    assert out["logits"].shape == (batch, 17)
    assert_logits_close(out["logits"].numpy(), oracle[profile][:batch])
    # softmax moves each probability by at most 2 * max|logit error|
    bound = 2 * FP32_RTOL * np.abs(oracle[profile]).max()
    np.testing.assert_allclose(out["probabilities"].numpy(), softmax(oracle[profile][:batch]), rtol=0, atol=bound)


def test_profiles_really_differ(oracle: dict[str, np.ndarray]) -> None:
    assert np.abs(oracle["caffe"] - oracle["guerzhoy"]).max() > 1e-2 * np.abs(oracle["caffe"]).max()


def test_variables_are_named_after_layers_and_frozen(small_weights: AlexNetWeights) -> None:
    module = AlexNet(small_weights)
    names = sorted(v.name for v in module.variables)
    assert names == sorted(f"{layer}/{part}:0" for layer in small_weights for part in ("kernel", "bias"))
    assert not module.trainable_variables
    assert module.layer("conv2").kernel.shape == (5, 5, 6, 32)  # grouped HWIO


def test_dense_mode_stores_block_diagonal_kernels(small_weights: AlexNetWeights) -> None:
    module = AlexNet(small_weights, groups="dense")
    kernel = module.layer("conv2").kernel.numpy()
    assert kernel.shape == (5, 5, 12, 32)
    assert not kernel[:, :, :6, 16:].any() and not kernel[:, :, 6:, :16].any()


def test_graph_uses_caffe_lrn_constants(small_weights: AlexNetWeights) -> None:
    module = AlexNet(small_weights)  # keep a reference: tf.function holds its instance weakly
    graph = module.serve.get_concrete_function().graph.as_graph_def()
    lrns = [n for n in graph.node if n.op == "LRN"]
    assert len(lrns) == 2
    for node in lrns:
        assert node.attr["depth_radius"].i == 2
        assert node.attr["alpha"].f == pytest.approx(2e-5)
        assert node.attr["beta"].f == pytest.approx(0.75) and node.attr["bias"].f == pytest.approx(1.0)


def test_bad_options_are_refused() -> None:
    with pytest.raises(InputError, match=r"--groups: expected one of native, split, dense, received 'grouped'"):
        check_options(groups="grouped")
