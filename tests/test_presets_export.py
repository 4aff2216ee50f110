"""Every preset through the whole pipeline: graph, SavedModel, ONNX (both layouts), TFLite, verify, extract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from alexnet_export.export import ExportPlan, export_all
from alexnet_export.exporters.onnx import OnnxOptions, build_model
from alexnet_export.extract import extract
from alexnet_export.reference import forward
from alexnet_export.verify import accuracy_profile, independent_fold, make_inputs
from converters.arch import PRESETS
from converters.fold import fold_batchnorm
from converters.synthetic import synthesize
from converters.weights import AlexNetWeights
from tests.test_presets import SMALL

NEW = ["tfnn-paper", "keras-v1", "keras-v2", "oxflower17-bn", "mnist"]


def _weights(name: str) -> AlexNetWeights:
    return synthesize(arch=PRESETS[name], width_divisor=SMALL[name], num_classes=7, seed=11)


@pytest.mark.parametrize("name", NEW)
def test_export_verifies_and_extracts(tmp_path: Path, name: str) -> None:
    weights = _weights(name)
    report = export_all(weights, tmp_path / "out", plan=ExportPlan(), batch=3)
    assert report.exit_code == 0, report.problems
    ran = [row for row in report.rows if row.status != "not verified"]
    assert {row.format for row in ran} == {"graph", "savedmodel", "onnx", "tflite"}
    assert all(row.metrics is not None and row.metrics.max_rel < 1e-5 for row in ran)
    expected_status = "fold-exact" if weights.norms else "bit-exact"
    assert [check.status for check in report.weights] == [expected_status] * 3
    folded = fold_batchnorm(weights)
    for artifact in ("savedmodel", "alexnet.onnx", "alexnet_fp32.tflite"):
        back = extract(tmp_path / "out" / artifact)  # the architecture is read from the artifact
        assert back.arch.name == folded.arch.name and back.bit_equal(folded), artifact


def test_oxflower_fold_is_checked_not_assumed() -> None:
    weights = _weights("oxflower17-bn")
    mine, theirs = fold_batchnorm(weights), independent_fold(weights)
    assert sorted(theirs) == ["conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3", "fc4"]
    for name, (kernel, bias) in theirs.items():
        np.testing.assert_allclose(mine[name].kernel, kernel, rtol=3e-7, atol=0)
        np.testing.assert_allclose(mine[name].bias, bias, rtol=3e-7, atol=1e-7 * np.abs(bias).max())
    assert not np.array_equal(mine["conv2"].kernel, weights["conv2"].kernel)  # the fold changed something


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_onnx_both_layouts_match_the_oracle(name: str, layout: str) -> None:
    import onnxruntime as ort

    weights = _weights(name)
    model = build_model(weights, OnnxOptions(layout=layout, opset=13 if layout == "nchw" else 26))
    ops = {node.op_type for node in model.graph.node}
    if layout == "nchw":
        assert "Transpose" not in ops, name  # the first dense layer's rows are permuted instead
    images = make_inputs(count=2, fixtures=False, spec=weights.arch.input).images
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if layout == "nchw" else images
    logits = session.run(["logits"], {"images": feed})[0]
    expected = forward(weights, images)
    assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("name", ["tfnn-paper", "oxflower17-bn"])
def test_grouped_modes(tmp_path: Path, name: str) -> None:
    weights = _weights(name)
    images = make_inputs(count=2, fixtures=False, spec=weights.arch.input).images
    expected = forward(weights, images)
    import onnxruntime as ort

    for groups in ("split", "dense"):
        model = build_model(weights, OnnxOptions(groups=groups))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        logits = session.run(["logits"], {"images": images})[0]
        assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max(), groups


@pytest.mark.parametrize("name", ["keras-v1", "oxflower17-bn", "mnist"])
@pytest.mark.parametrize("precision", ["fp16", "int8-dynamic", "int8"])
def test_tflite_precisions_stay_within_their_tolerance(tmp_path: Path, name: str, precision: str) -> None:
    from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite

    weights = _weights(name)
    out = tmp_path / f"{name}_{precision}.tflite"
    export_tflite(weights, out, options=TFLiteOptions(precision=precision))
    profile = accuracy_profile(out, weights, precision=precision, count=4)
    assert profile.row.status == "passed", profile.line()


def test_batchnorm_that_cannot_fold_stays_a_scale_and_shift() -> None:
    """A BN before a SAME convolution (zero padding would meet the shift) is one Mul and one Add."""
    import onnxruntime as ort

    from converters.arch import BatchNorm, fold_plan
    from converters.weights import with_arch

    data = PRESETS["mnist"].to_json()
    data["layers"].insert(3, {"type": "batchnorm", "name": "bn1", "epsilon": 0.001})  # after conv1's pool, before LRN
    from converters.arch import from_json

    arch = from_json(data)
    assert isinstance(arch.layers[3], BatchNorm) and fold_plan(arch) == ()
    weights = synthesize(arch=arch, width_divisor=4, seed=2)
    model = build_model(weights, OnnxOptions())
    assert [n.op_type for n in model.graph.node].count("Mul") == 1
    images = make_inputs(count=2, fixtures=False, spec=arch.input).images
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = forward(weights, images)
    assert np.abs(session.run(["logits"], {"images": images})[0] - expected).max() <= 1e-5 * np.abs(expected).max()
    without_bn = with_arch(weights, arch)  # same arrays; the BN's effect is real:
    assert without_bn is weights
    from converters.errors import InputError

    with pytest.raises(InputError, match=r"BatchNormalization bn1 is stored as a scale and shift"):
        from alexnet_export.extract import stored_architecture

        stored_architecture(arch)
