from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from alexnet_export.artifacts import file_sha256, sidecar_manifest_path  # noqa: E402
from alexnet_export.exporters.onnx import (  # noqa: E402
    NEWEST_OPSET,
    OnnxOptions,
    build,
    build_model,
    export_onnx,
    node_counts,
    write_model,
)
from alexnet_export.reference import forward  # noqa: E402
from converters.errors import InputError, OutputExistsError  # noqa: E402
from converters.layouts import fc6_rows_hwc_to_chw, hwio_to_oihw  # noqa: E402
from converters.weights import AlexNetWeights  # noqa: E402
from tests.conftest import make_images  # noqa: E402
from tests.test_graph import assert_logits_close  # noqa: E402

BIN = Path(sys.executable).parent
OPSETS = [13, 17, NEWEST_OPSET]
_MODELS: dict[tuple[str, OnnxOptions], onnx.ModelProto] = {}


def model_for(weights: AlexNetWeights, options: OnnxOptions) -> onnx.ModelProto:
    """Build each option set once per test session."""
    key = (weights.arch.name, options)
    if key not in _MODELS:
        _MODELS[key] = build_model(weights, options)
    return _MODELS[key]


def run_onnx(model: onnx.ModelProto | Path, images: np.ndarray, layout: str) -> dict[str, np.ndarray]:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(images.transpose(0, 3, 1, 2)) if layout == "nchw" else images
    names = [out.name for out in session.get_outputs()]
    return dict(zip(names, session.run(None, {"images": feed}), strict=True))


@pytest.fixture(scope="module")
def oracle5(small_weights: AlexNetWeights, images5: np.ndarray) -> np.ndarray:
    return forward(small_weights, images5)


@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
@pytest.mark.parametrize("groups", ["native", "split", "dense"])
@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_onnxruntime_matches_oracle(
    small_weights: AlexNetWeights, images5: np.ndarray, oracle5: np.ndarray, layout: str, groups: str, opset: int
) -> None:
    model = model_for(small_weights, OnnxOptions(opset=opset, layout=layout, groups=groups))
    for batch in (1, 5):
        out = run_onnx(model, images5[:batch], layout)
        assert out["logits"].shape == (batch, 17) and out["probabilities"].shape == (batch, 17)
        assert_logits_close(out["logits"], oracle5[:batch])
        np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_guerzhoy_profile_matches_its_oracle(small_weights: AlexNetWeights, images5: np.ndarray) -> None:
    from converters.arch import PRESETS
    from converters.weights import with_arch

    model = model_for(with_arch(small_weights, PRESETS["guerzhoy"]), OnnxOptions(layout="nchw"))
    expected = forward(small_weights, images5[:2], arch=PRESETS["guerzhoy"])
    assert_logits_close(run_onnx(model, images5[:2], "nchw")["logits"], expected)
    assert not np.allclose(expected, forward(small_weights, images5[:2]), rtol=1e-3)


def test_onnx_matches_the_saved_model(tmp_path: Path, small_weights: AlexNetWeights, images5: np.ndarray) -> None:
    import tensorflow as tf

    from alexnet_export.exporters.savedmodel import export_savedmodel

    loaded = tf.saved_model.load(str(export_savedmodel(small_weights, tmp_path / "sm")))
    expected = loaded.signatures["serving_default"](images=tf.constant(images5))["logits"].numpy()
    for layout in ("nhwc", "nchw"):
        actual = run_onnx(model_for(small_weights, OnnxOptions(layout=layout)), images5, layout)["logits"]
        assert_logits_close(actual, expected)


EXPECTED_NODES = {
    ("nhwc", "native"): {"Relu": 7, "Conv": 5, "Gemm": 3, "MaxPool": 3, "LRN": 2, "Transpose": 2, "Reshape": 1, "Softmax": 1},
    ("nchw", "native"): {"Relu": 7, "Conv": 5, "Gemm": 3, "MaxPool": 3, "LRN": 2, "Reshape": 1, "Softmax": 1},
    ("nchw", "dense"): {"Relu": 7, "Conv": 5, "Gemm": 3, "MaxPool": 3, "LRN": 2, "Reshape": 1, "Softmax": 1},
    ("nchw", "split"): {
        "Conv": 8, "Relu": 7, "Concat": 3, "Gemm": 3, "MaxPool": 3, "Split": 3, "LRN": 2, "Reshape": 1, "Softmax": 1
    },
}


@pytest.mark.parametrize(("layout", "groups"), list(EXPECTED_NODES), ids=lambda v: str(v))
def test_graph_shape(small_weights: AlexNetWeights, layout: str, groups: str) -> None:
    model = model_for(small_weights, OnnxOptions(layout=layout, groups=groups))
    assert node_counts(model) == EXPECTED_NODES[layout, groups]
    initializers = {tensor.name for tensor in model.graph.initializer}
    for node in model.graph.node:
        assert any(name not in initializers for name in node.input), f"{node.name} computes on weights alone"
    names = [node.name for node in model.graph.node]
    assert len(set(names)) == len(names)
    assert [n for n in names if n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")] == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"
    ]


def test_grouped_convs_and_lrn_keep_caffe_parameters(small_weights: AlexNetWeights) -> None:
    model = model_for(small_weights, OnnxOptions(layout="nchw"))
    attrs = {
        node.name: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} for node in model.graph.node
    }
    assert [attrs[name].get("group", 1) for name in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    lrn = [node.name for node in model.graph.node if node.op_type == "LRN"]
    assert lrn == ["conv1/lrn", "conv2/lrn"]
    for name in lrn:
        assert attrs[name]["size"] == 5 and attrs[name]["beta"] == pytest.approx(0.75) and attrs[name]["bias"] == 1.0
        assert attrs[name]["alpha"] == pytest.approx(1e-4, rel=1e-6)  # Caffe's alpha, not TF's alpha / n
    assert attrs["conv1"]["strides"] == [4, 4]
    assert [attrs[n]["kernel_shape"] for n in ("conv1/maxpool", "conv2/maxpool", "conv5/maxpool")] == [[3, 3]] * 3


def test_initializers_are_the_weights_in_named_layouts(small_weights: AlexNetWeights) -> None:
    for layout in ("nhwc", "nchw"):
        model = model_for(small_weights, OnnxOptions(layout=layout))
        stored = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        for name in ("conv1", "conv2", "conv5"):
            assert np.array_equal(stored[f"{name}/kernel"], hwio_to_oihw(small_weights[name].kernel))
            assert np.array_equal(stored[f"{name}/bias"], small_weights[name].bias)
        fc6 = small_weights["fc6"].kernel
        assert np.array_equal(stored["fc6/kernel"], fc6_rows_hwc_to_chw(fc6, (6, 6, 32)) if layout == "nchw" else fc6)
        assert np.array_equal(stored["fc8/kernel"], small_weights["fc8"].kernel)


@pytest.mark.parametrize("opset", OPSETS, ids=lambda o: f"opset{o}")
def test_contract_versions_and_provenance(small_weights: AlexNetWeights, opset: int) -> None:
    model = model_for(small_weights, OnnxOptions(opset=opset, layout="nchw", groups="split") if opset != 17 else OnnxOptions())
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    assert model.ir_version == onnx.helper.find_min_ir_version_for(list(model.opset_import))
    assert model.ir_version <= 13  # onnxruntime 1.31 loads at most IR 13
    shape = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert model.graph.input[0].name == "images"
    assert shape in (["batch", 227, 227, 3], ["batch", 3, 227, 227])
    assert [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output] == [
        ("logits", ["batch", 17]), ("probabilities", ["batch", 17])
    ]
    props = {p.key: p.value for p in model.metadata_props}
    assert small_weights.source is None  # in memory: no file to name
    assert props["alexnet_export.source_sha256"] == "" and props["alexnet_export.source_format"] == "in-memory"
    assert props["alexnet_export.layout"] in ("nhwc", "nchw") and "104.007" in props["alexnet_export.preprocessing"]
    assert model.producer_name == "alexnet-export"
    onnx.checker.check_model(model, full_check=True)


def test_streamed_file_is_the_same_model(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    options = OnnxOptions(layout="nchw", groups="split")
    skeleton, initializers = build(small_weights, options)
    assert len(skeleton.graph.initializer) == 0
    write_model(skeleton, initializers, tmp_path / "m.onnx")
    assert onnx.load(str(tmp_path / "m.onnx")) == model_for(small_weights, options)


def test_export_writes_file_and_manifest_deterministically(tmp_path: Path, small_npy: Path) -> None:
    from converters import read_weights

    weights = read_weights(small_npy)
    first = export_onnx(weights, tmp_path / "a.onnx", options=OnnxOptions(layout="nchw"))
    export_onnx(weights, tmp_path / "b.onnx", options=OnnxOptions(layout="nchw"))
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    manifest = json.loads(sidecar_manifest_path(tmp_path / "a.onnx").read_text())
    assert manifest["files"] == {"a.onnx": file_sha256(tmp_path / "a.onnx")}
    assert manifest["source"]["sha256"] == file_sha256(small_npy) and manifest["format"] == "onnx"
    assert manifest["nodes"] == first.nodes == EXPECTED_NODES["nchw", "native"]
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "a.onnx")).metadata_props}
    assert props["alexnet_export.source_sha256"] == file_sha256(small_npy)
    assert props["alexnet_export.version"] == manifest["toolkit"]["version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.onnx", "a.onnx.alexnet-export.json", "b.onnx", "b.onnx.alexnet-export.json"
    ]


def test_bytes_do_not_depend_on_the_process(tmp_path: Path, small_npy: Path, cli) -> None:
    assert cli("npy2onnx", small_npy, tmp_path / "here.onnx", "--quiet").exit_code == 0
    done = subprocess.run(
        [BIN / "alexnet-export", "npy2onnx", small_npy, tmp_path / "there.onnx", "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "here.onnx").read_bytes() == (tmp_path / "there.onnx").read_bytes()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (OnnxOptions(opset=12), r"--opset: expected 13\.\.26, received 12"),
        (OnnxOptions(opset=27), r"--opset: expected 13\.\.26, received 27"),
        (OnnxOptions(layout="NCHW"), r"--layout: expected one of nhwc, nchw, received 'NCHW'"),
        (OnnxOptions(groups="grouped"), r"--groups: expected one of native, split, dense, received 'grouped'"),
    ],
    ids=["opset-low", "opset-high", "layout", "groups"],
)
def test_bad_options_are_refused_before_any_work(tmp_path: Path, small_weights: AlexNetWeights, options, message) -> None:
    with pytest.raises(InputError, match=message):
        export_onnx(small_weights, tmp_path / "m.onnx", options=options)
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_need_force(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match=r"m\.onnx: output already exists; pass --force"):
        export_onnx(small_weights, out)
    assert out.read_bytes() == b"keep"
    out.unlink()
    sidecar_manifest_path(out).write_text("keep")
    with pytest.raises(OutputExistsError, match=r"m.onnx.alexnet-export.json: output already exists"):
        export_onnx(small_weights, out)
    assert not out.exists()
    export_onnx(small_weights, out, force=True)
    assert onnx.load(str(out)).graph.node and json.loads(sidecar_manifest_path(out).read_text())["format"] == "onnx"


def test_cli_npy2onnx_reports_node_counts(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2onnx", small_npy, tmp_path / "m.onnx", "--layout", "nchw", "--opset", "13", "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"wrote {tmp_path / 'm.onnx'} (ONNX opset 13, IR 7, bvlc-alexnet, layout=nchw, groups=native)"
    assert lines[1] == "nodes: 22 (Relu 7, Conv 5, Gemm 3, MaxPool 3, LRN 2, Reshape 1, Softmax 1)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--opset", "9"], "error: --opset: expected 13..26, received 9"),
        (["--layout", "chw"], "error: --layout: expected one of nhwc, nchw, received 'chw'"),
    ],
)
def test_cli_bad_option_is_one_line(cli, tmp_path: Path, small_npy: Path, args: list[str], message: str) -> None:
    result = cli("npy2onnx", small_npy, tmp_path / "m.onnx", *args)
    assert result.exit_code == 2 and result.output.strip() == message
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_weights_writes_nothing(cli, tmp_path: Path) -> None:
    (tmp_path / "w.npy").write_bytes(b"not numpy")
    result = cli("npy2onnx", tmp_path / "w.npy", tmp_path / "m.onnx")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "w.npy" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]


@pytest.mark.slow
def test_full_size_npy2onnx_end_to_end(tmp_path: Path, full_npy: Path) -> None:
    from converters import read_weights

    done = subprocess.run(
        [BIN / "alexnet-export", "npy2onnx", full_npy, tmp_path / "alexnet.onnx", "--layout", "nchw", "--quiet"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert "nodes: 22 " in done.stdout
    images = make_images(2, seed=11)
    out = run_onnx(tmp_path / "alexnet.onnx", images, "nchw")
    assert out["logits"].shape == (2, 1000)
    assert_logits_close(out["logits"], forward(read_weights(full_npy), images))
