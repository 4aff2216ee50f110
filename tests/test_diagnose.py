"""``diagnose`` on artifacts built independently of the exporters, each with one known mistake planted.

ONNX files are written here with ``onnx.helper`` (NCHW, hand-laid-out weights); TFLite files are
converted from a tf.function written here with tf.nn ops (split-conv-concat groups); one SavedModel,
and the ONNX tf2onnx makes of it. Every planted cause must be named at the right layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from alexnet_export.diagnose import CAUSES, diagnose
from alexnet_export.verify import make_inputs
from converters.arch import (
    LRN,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    MaxPool,
    ReLU,
    Softmax,
    ZeroPad,
    conv_pads,
    pool_pads,
    preset,
)
from converters.synthetic import synthesize
from converters.weights import AlexNetWeights

Plant = dict[str, Any]


@pytest.fixture(scope="module")
def bvlc() -> AlexNetWeights:
    return synthesize(seed=3, width_divisor=8, num_classes=17)


@pytest.fixture(scope="module")
def guerzhoy() -> AlexNetWeights:
    return synthesize(seed=5, width_divisor=8, num_classes=17, arch=preset("guerzhoy"))


@pytest.fixture(scope="module")
def bn_weights() -> AlexNetWeights:
    return synthesize(seed=4, width_divisor=8, num_classes=17, arch=preset("oxflower17-bn"))


def images_for(weights: AlexNetWeights) -> np.ndarray:
    return make_inputs(count=2, seed=1, fixtures=False, spec=weights.arch.input).images


def onnx_model(weights: AlexNetWeights, path: Path, plant: Plant | None = None) -> Path:
    """The network as a hand-built NCHW ONNX graph; ``plant`` changes one thing."""
    plant = plant or {}
    arch = weights.arch
    nodes, inits = [], []
    h, w = arch.input.height, arch.input.width
    x = "images"
    if "input_sub" in plant:  # preprocessing inside the model: x - mean (on an input already without mean)
        inits.append(numpy_helper.from_array(np.asarray(plant["input_sub"], np.float32).reshape(1, -1, 1, 1), "mean"))
        nodes.append(helper.make_node("Sub", [x, "mean"], ["centred"]))
        x = "centred"
    conv_count = 0
    for index, layer in enumerate(arch.layers):
        out = f"t{index}"
        if isinstance(layer, Conv):
            conv_count += 1
            kernel = np.array(weights[layer.name].kernel)
            if plant.get("reverse_input_channels") and conv_count == 1:
                kernel = kernel[:, :, ::-1, :]
            if plant.get("swap_groups") == layer.name:
                half = kernel.shape[3] // 2
                kernel = np.concatenate([kernel[..., half:], kernel[..., :half]], axis=3)
            if plant.get("transpose_kernel") == layer.name:
                kernel = kernel.transpose(1, 0, 2, 3)
            if plant.get("perturb") == layer.name:
                kernel = kernel + np.random.default_rng(0).normal(0, kernel.std() * 0.3, kernel.shape)
            padding = plant.get("pads", {}).get(layer.name, layer.padding)
            changed = Conv(layer.name, layer.filters, layer.kernel, layer.stride, padding, layer.groups)
            (top, bottom), (left, right) = conv_pads(changed, h, w)
            inits += [numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)).astype(np.float32), f"{layer.name}_W"),
                      numpy_helper.from_array(np.asarray(weights[layer.name].bias, np.float32), f"{layer.name}_b")]
            nodes.append(helper.make_node("Conv", [x, f"{layer.name}_W", f"{layer.name}_b"], [out], group=layer.groups,
                                          kernel_shape=list(layer.kernel), strides=list(layer.stride),
                                          pads=[top, left, bottom, right]))
            h = (h + top + bottom - layer.kernel[0]) // layer.stride[0] + 1
            w = (w + left + right - layer.kernel[1]) // layer.stride[1] + 1
        elif isinstance(layer, ReLU):
            nodes.append(helper.make_node("Relu", [x], [out]))
        elif isinstance(layer, LRN):
            lrn = plant.get("lrn", layer)
            nodes.append(helper.make_node("LRN", [x], [out], size=lrn.size, alpha=lrn.alpha, beta=lrn.beta, bias=lrn.k))
        elif isinstance(layer, MaxPool):
            padding = plant.get("pool", {}).get(index, layer.padding)
            changed_pool = MaxPool(layer.size, layer.stride, padding)
            (top, bottom), (left, right) = pool_pads(changed_pool, h, w)
            nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=list(layer.size),
                                          strides=list(layer.stride), pads=[top, left, bottom, right]))
            h = (h + top + bottom - layer.size[0]) // layer.stride[0] + 1
            w = (w + left + right - layer.size[1]) // layer.stride[1] + 1
        elif isinstance(layer, BatchNorm):
            norm = weights.norms[layer.name]
            names = [f"{layer.name}_{part}" for part in ("g", "b", "m", "v")]
            inits += [numpy_helper.from_array(np.asarray(a, np.float32), n)
                      for a, n in zip((norm.gamma, norm.beta, norm.mean, norm.variance), names, strict=True)]
            epsilon = plant.get("bn_epsilon", {}).get(layer.name, layer.epsilon)
            nodes.append(helper.make_node("BatchNormalization", [x, *names], [out], epsilon=epsilon))
        elif isinstance(layer, Flatten):
            if not plant.get("flatten_chw"):
                nodes.append(helper.make_node("Transpose", [x], [f"{out}_nhwc"], perm=[0, 2, 3, 1]))
                x = f"{out}_nhwc"
            nodes.append(helper.make_node("Flatten", [x], [out]))
        elif isinstance(layer, Dense):
            inits += [numpy_helper.from_array(np.asarray(weights[layer.name].kernel, np.float32), f"{layer.name}_W"),
                      numpy_helper.from_array(np.asarray(weights[layer.name].bias, np.float32), f"{layer.name}_b")]
            nodes.append(helper.make_node("Gemm", [x, f"{layer.name}_W", f"{layer.name}_b"], [out]))
        elif isinstance(layer, Softmax):
            nodes.append(helper.make_node("Softmax", [x], [out], axis=1))
        elif isinstance(layer, (Dropout, ZeroPad)):
            assert not isinstance(layer, ZeroPad)
            continue
        x = out
        if plant.get("stop_after") == index:  # a graph cut short: later layers would not fit the new shape
            break
    if plant.get("double_softmax"):
        if not arch.has_softmax:
            nodes.append(helper.make_node("Softmax", [x], ["once"], axis=1))
            x = "once"
        nodes.append(helper.make_node("Softmax", [x], ["again"], axis=1))
        x = "again"
    spec = arch.input
    graph = helper.make_graph(
        nodes, "hand-built", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", spec.channels, spec.height, spec.width])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", None] if "stop_after" not in plant else ["N", None, None, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


ONNX_CASES: list[tuple[str, Plant, str, str]] = [
    ("lrn-alpha", {"lrn": LRN(size=5, alpha=2e-5, beta=0.75, k=1.0)}, "lrn1", "lrn-constants"),
    ("lrn-k", {"lrn": LRN(size=5, alpha=1e-4, beta=0.75, k=2.0)}, "lrn1", "lrn-constants"),
    ("pool-same", {"pool": {3: "SAME"}, "stop_after": 7}, "pool1", "pool-rounding"),
    ("rgb", {"reverse_input_channels": True}, "conv1", "channel-order"),
    ("mean-twice", {"input_sub": (104.007, 116.669, 122.679)}, "conv1", "mean-or-scale"),
    ("flatten-chw", {"flatten_chw": True}, "fc6", "flatten-order"),
    ("groups-swapped", {"swap_groups": "conv2"}, "conv2", "group-order"),
    ("kernel-transposed", {"transpose_kernel": "conv3"}, "conv3", "kernel-layout"),
    ("double-softmax", {"double_softmax": True}, "output", "double-softmax"),
]


@pytest.mark.parametrize(("case", "plant", "layer", "cause"), ONNX_CASES, ids=[c[0] for c in ONNX_CASES])
def test_each_planted_cause_in_a_hand_built_onnx_is_named(
    tmp_path: Path, bvlc: AlexNetWeights, case: str, plant: Plant, layer: str, cause: str
) -> None:
    path = onnx_model(bvlc, tmp_path / f"{case}.onnx", plant)
    found = diagnose(path, bvlc, images_for(bvlc))
    assert found.first is not None, found.sentence()
    assert layer in found.rows[found.first].label.split("+") or found.rows[found.first].label.startswith(layer), found.sentence()
    assert found.cause is not None and found.cause.name == cause, found.sentence()
    assert found.cause.max_rel_under_cause <= found.tolerance
    assert all(row.passed for row in found.rows[: found.first])


def test_conv_padding_in_a_hand_built_onnx(tmp_path: Path, guerzhoy: AlexNetWeights) -> None:
    """guerzhoy's port pads conv1 SAME (57x57, absorbed by pool1); a VALID conv1 still runs to the end."""
    path = onnx_model(guerzhoy, tmp_path / "valid.onnx", {"pads": {"conv1": "VALID"}})
    found = diagnose(path, guerzhoy, images_for(guerzhoy))
    assert found.first == 0 and found.rows[0].label == "conv1", found.sentence()
    assert "shape (2, 55, 55, 12) where the oracle has (2, 57, 57, 12)" in found.rows[0].note
    assert found.cause is not None and found.cause.name == "conv-padding" and "VALID instead of SAME" in found.cause.detail


def test_batchnorm_epsilon_in_a_hand_built_onnx(tmp_path: Path, bn_weights: AlexNetWeights) -> None:
    clean = diagnose(onnx_model(bn_weights, tmp_path / "bn.onnx"), bn_weights, images_for(bn_weights))
    assert clean.passed, clean.sentence()
    path = onnx_model(bn_weights, tmp_path / "bn-eps.onnx", {"bn_epsilon": {"bn3": 1e-5}})
    found = diagnose(path, bn_weights, images_for(bn_weights))
    assert found.first is not None and found.rows[found.first].label == "bn3", found.sentence()
    assert found.cause is not None and found.cause.name == "batchnorm" and "epsilon 1e-05" in found.cause.detail


def test_a_correct_hand_built_onnx_is_clean_and_a_random_perturbation_is_unknown(
    tmp_path: Path, bvlc: AlexNetWeights
) -> None:
    clean = diagnose(onnx_model(bvlc, tmp_path / "clean.onnx"), bvlc, images_for(bvlc))
    assert clean.passed and clean.cause is None and clean.sentence().startswith("No divergence")
    noisy = diagnose(onnx_model(bvlc, tmp_path / "noisy.onnx", {"perturb": "conv4"}), bvlc, images_for(bvlc))
    assert noisy.first is not None and noisy.rows[noisy.first].label == "conv4", noisy.sentence()
    assert noisy.cause is None and "(unknown)" in noisy.sentence()
    assert noisy.to_json()["likely_cause"]["name"] == "unknown"


# --- TFLite and SavedModel from a tf.function written here -------------------------------------------------


def tf_network(weights: AlexNetWeights, plant: Plant) -> Callable[[Any], Any]:
    """The network in tf.nn ops (grouped layers as split-conv-concat); ``plant`` changes one thing."""
    import tensorflow as tf

    arch = weights.arch

    def forward(x: Any) -> Any:
        convs = 0
        for layer in arch.layers:
            if isinstance(layer, Conv):
                convs += 1
                kernel = np.array(weights[layer.name].kernel)
                if plant.get("reverse_input_channels") and convs == 1:
                    kernel = kernel[:, :, ::-1, :]
                if plant.get("swap_groups") == layer.name:
                    half = kernel.shape[3] // 2
                    kernel = np.concatenate([kernel[..., half:], kernel[..., :half]], axis=3)
                padding = plant.get("pads", {}).get(layer.name, layer.padding)
                if not isinstance(padding, str):
                    padding = [[0, 0], list(padding[0]), list(padding[1]), [0, 0]]
                parts = tf.split(x, layer.groups, axis=3) if layer.groups > 1 else [x]
                kernels = np.split(kernel, layer.groups, axis=3)
                outs = [tf.nn.conv2d(p, tf.constant(k), strides=layer.stride, padding=padding)
                        for p, k in zip(parts, kernels, strict=True)]
                x = (tf.concat(outs, axis=3) if len(outs) > 1 else outs[0]) + weights[layer.name].bias
            elif isinstance(layer, ReLU):
                x = tf.nn.relu(x)
            elif isinstance(layer, LRN):
                lrn = plant.get("lrn", layer)
                x = tf.nn.local_response_normalization(x, depth_radius=lrn.tf_depth_radius, alpha=lrn.tf_alpha,
                                                       beta=lrn.beta, bias=lrn.k)
            elif isinstance(layer, MaxPool):
                x = tf.nn.max_pool2d(x, layer.size, layer.stride, "VALID")
            elif isinstance(layer, Flatten):
                x = tf.reshape(tf.transpose(x, (0, 3, 1, 2)) if plant.get("flatten_chw") else x, (tf.shape(x)[0], -1))
            elif isinstance(layer, Dense):
                x = tf.matmul(x, tf.constant(np.asarray(weights[layer.name].kernel))) + weights[layer.name].bias
        if plant.get("double_softmax"):
            x = tf.nn.softmax(tf.nn.softmax(x))
        return x

    return forward


def tflite_model(weights: AlexNetWeights, path: Path, plant: Plant) -> Path:
    import tensorflow as tf

    spec = weights.arch.input
    fn = tf.function(tf_network(weights, plant), input_signature=[tf.TensorSpec([1, spec.height, spec.width, spec.channels], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    path.write_bytes(converter.convert())
    return path


TFLITE_CASES: list[tuple[str, Plant, str, str | None]] = [
    ("clean", {}, "", None),
    ("lrn-caffe-alpha-as-tf", {"lrn": LRN(size=5, alpha=5e-4, beta=0.75, k=1.0)}, "lrn1", "lrn-constants"),
    ("rgb", {"reverse_input_channels": True}, "conv1", "channel-order"),
    ("flatten-chw", {"flatten_chw": True}, "fc6", "flatten-order"),
    ("groups-swapped", {"swap_groups": "conv4"}, "conv4", "group-order"),
    ("double-softmax", {"double_softmax": True}, "output", "double-softmax"),
]


@pytest.mark.parametrize(("case", "plant", "layer", "cause"), TFLITE_CASES, ids=[c[0] for c in TFLITE_CASES])
def test_each_planted_cause_in_a_converter_made_tflite_is_named(
    tmp_path: Path, bvlc: AlexNetWeights, case: str, plant: Plant, layer: str, cause: str | None
) -> None:
    path = tflite_model(bvlc, tmp_path / f"{case}.tflite", plant)
    found = diagnose(path, bvlc, images_for(bvlc))
    if cause is None:
        assert found.passed, found.sentence()
        return
    label = found.rows[found.first].label if found.first is not None else ""
    assert layer in label.split("+") or label.startswith(layer), found.sentence()
    assert found.cause is not None and found.cause.name == cause, found.sentence()


def test_a_savedmodel_and_its_tf2onnx_conversion_name_the_same_cause(tmp_path: Path, bvlc: AlexNetWeights) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = bvlc.arch.input
    module = tf.Module()
    module.f = tf.function(tf_network(bvlc, {"swap_groups": "conv5"}),
                           input_signature=[tf.TensorSpec([None, spec.height, spec.width, spec.channels], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=module.f)
    from_savedmodel = diagnose(tmp_path / "sm", bvlc, images_for(bvlc))
    assert from_savedmodel.cause is not None and from_savedmodel.cause.name == "group-order", from_savedmodel.sentence()
    assert from_savedmodel.rows[from_savedmodel.first or 0].label == "conv5"

    onnx_path = tmp_path / "tf2onnx.onnx"
    tf2onnx.convert.from_function(module.f, input_signature=module.f.input_signature, opset=13, output_path=str(onnx_path))
    converted = diagnose(onnx_path, bvlc, images_for(bvlc))
    assert converted.cause is not None and converted.cause.name == "group-order", converted.sentence()
    assert converted.rows[converted.first or 0].label == "conv5"


# --- the command --------------------------------------------------------------------------------------


def test_cli_exit_codes_table_and_json(cli, tmp_path: Path, bvlc: AlexNetWeights, small_npy: Path) -> None:
    clean = onnx_model(bvlc, tmp_path / "clean.onnx")
    ok = cli("diagnose", clean, "--weights", small_npy, "--json", tmp_path / "clean.json")
    assert ok.exit_code == 0, ok.output
    assert "No divergence" in ok.stdout
    report = json.loads((tmp_path / "clean.json").read_text())
    assert report["passed"] is True and report["first_divergence"] is None and report["likely_cause"] is None

    broken = onnx_model(bvlc, tmp_path / "lrn.onnx", {"lrn": LRN(size=5, alpha=2e-5, beta=0.75, k=1.0)})
    bad = cli("diagnose", broken, "--weights", small_npy, "--json", tmp_path / "lrn.json")
    assert bad.exit_code == 1, bad.output
    assert "likely cause lrn-constants" in bad.stdout and "lrn1" in bad.stdout
    report = json.loads((tmp_path / "lrn.json").read_text())
    assert report["first_divergence"]["layer"] == "lrn1" and report["likely_cause"]["name"] == "lrn-constants"
    assert report["likely_cause"]["name"] in CAUSES
    assert [row["passed"] for row in report["layers"]][:2] == [True, True]

    jsonschema = pytest.importorskip("jsonschema")
    from alexnet_export.diagnose import SCHEMA_PATH

    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))

    for args, message in [
        ((tmp_path / "nope.onnx", "--weights", small_npy), "no such artifact"),
        ((clean, "--weights", small_npy, "--batch", "0"), "--batch: expected 1 or more images"),
        ((clean, "--weights", small_npy, "--json", tmp_path / "clean.json"), "already exists"),
    ]:
        result = cli("diagnose", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_verify_points_to_diagnose_for_a_failed_artifact(cli, tmp_path: Path, bvlc: AlexNetWeights, small_npy: Path) -> None:
    broken = onnx_model(bvlc, tmp_path / "lrn.onnx", {"lrn": LRN(size=5, alpha=2e-5, beta=0.75, k=1.0)})
    result = cli("verify", broken, "--weights", small_npy, "--device", "cpu", "--batch", "2", "--arch", "bvlc-alexnet")
    assert result.exit_code == 1, result.output
    assert f"where and why: alexnet-export diagnose {broken} --weights {small_npy}" in result.stdout
