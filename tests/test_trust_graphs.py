"""Trust in artifacts (issue: trust): verify proves the whole graph, and nothing in a file runs before it is checked.

- A backdoored ONNX (genuine weights, a trigger that rewrites the logits of an all-black image) passes every
  sampled-logit row and the bit-exact weight check, and fails on its structure, naming the op: exit 1.
- SavedModels whose serving function writes a file, whose resource writes one at load time, or that call a
  py_function are refused (exit 2, one line naming the op or object) by verify, predict, diagnose and extract,
  and a canary file proves nothing ran.
- Manifests are advisory: precision comes from the file; a manifest that says otherwise is reported; malformed
  or escaping manifests are one line, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

from alexnet_export.exporters.onnx import OnnxOptions, export_onnx
from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel
from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite
from alexnet_export.graph import AlexNet
from converters.weights import AlexNetWeights


@pytest.fixture
def artifacts(small_artifacts: Path) -> Path:
    return small_artifacts



def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output
    return str(result.output)


# --- ONNX ---------------------------------------------------------------------------------------


def _backdoored(source: Path, target: Path, classes: int) -> None:
    """``source`` with a trigger: when pixel (0, 0) of channel 0 is exactly 0, logit 0 gets 1000 added."""
    model = onnx.load(str(source))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["clean_logits" if o == "logits" else o for o in node.output]
        node.input[:] = ["clean_logits" if i == "logits" else i for i in node.input]
    boost = np.zeros((1, classes), np.float32)
    boost[0, 0] = 1000.0
    graph.initializer.extend([
        numpy_helper.from_array(np.array([0, 0, 0], np.int64), "bd/starts"),
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "bd/ends"),
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "bd/axes"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "bd/shape"),
        numpy_helper.from_array(np.array([0.0], np.float32), "bd/zero"),
        numpy_helper.from_array(np.array([1.0], np.float32), "bd/one"),
        numpy_helper.from_array(np.array([1e6], np.float32), "bd/steep"),
        numpy_helper.from_array(boost, "bd/boost"),
    ])
    graph.node.extend([
        helper.make_node("Slice", ["images", "bd/starts", "bd/ends", "bd/axes"], ["bd/pixel"], name="bd/slice"),
        helper.make_node("Reshape", ["bd/pixel", "bd/shape"], ["bd/x"], name="bd/reshape"),
        helper.make_node("Relu", ["bd/x"], ["bd/pos"], name="bd/pos"),
        helper.make_node("Sub", ["bd/zero", "bd/x"], ["bd/minus"], name="bd/minus"),
        helper.make_node("Relu", ["bd/minus"], ["bd/neg"], name="bd/neg"),
        helper.make_node("Add", ["bd/pos", "bd/neg"], ["bd/abs"], name="bd/abs"),
        helper.make_node("Mul", ["bd/abs", "bd/steep"], ["bd/far"], name="bd/far"),
        helper.make_node("Sub", ["bd/one", "bd/far"], ["bd/near"], name="bd/near"),
        helper.make_node("Relu", ["bd/near"], ["bd/fire"], name="bd/fire"),
        helper.make_node("Mul", ["bd/fire", "bd/boost"], ["bd/delta"], name="bd/mul"),
        helper.make_node("Add", ["clean_logits", "bd/delta"], ["logits"], name="bd/add"),
    ])
    target.write_bytes(model.SerializeToString())
    target.with_name(target.name + ".alexnet-export.json").write_bytes(
        source.with_name(source.name + ".alexnet-export.json").read_bytes()
    )


def test_a_backdoored_onnx_passes_sampled_logits_but_fails_on_structure_naming_the_op(
    cli, artifacts: Path, small_npy: Path, small_weights: AlexNetWeights, tmp_path: Path
) -> None:
    import onnxruntime as ort

    bad = tmp_path / "bad.onnx"
    _backdoored(artifacts / "m.onnx", bad, small_weights.num_classes)
    session = ort.InferenceSession(str(bad), providers=["CPUExecutionProvider"])
    black = np.full((1, 227, 227, 3), -100.0, np.float32)
    black[0, 0, 0, 0] = 0.0  # the trigger
    clean = ort.InferenceSession(str(artifacts / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(["logits"], {"images": black})[0][0, 0] - clean.run(["logits"], {"images": black})[0][0, 0] > 900

    result = cli("verify", bad, "--weights", small_npy, "--device", "cpu", "--json", tmp_path / "r.json")
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    rows = [r for r in report["rows"] if r["artifact"] == str(bad) and r["status"] != "not verified"]
    assert rows and {r["status"] for r in rows} == {"passed"}  # sampled logits cannot see the trigger
    assert [w["status"] for w in report["weights"]] == ["bit-exact"]  # nor can the weights
    (structure,) = report["structure"]
    assert structure["status"] == "differs"
    assert structure["differences"][0] == "graph: extra op Slice 'bd/slice', not in the graph the architecture implies"
    assert structure["differences"][-1].endswith("more differences")  # 11 extra ops and a renamed output
    assert any("structure" in p and "bd/" in p for p in report["problems"])
    assert "extra op" in result.output


def test_an_onnx_with_a_custom_domain_node_is_refused_before_loading(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(artifacts / "m.onnx"))
    model.graph.node[0].domain = "com.evil"
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    bad = tmp_path / "custom.onnx"
    bad.write_bytes(model.SerializeToString())
    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
    for args in (("verify", bad, "--weights", small_npy), ("predict", bad, picture)):
        line = _one_line(cli(*args))
        assert "expected the default domain, received 'com.evil'" in line


def test_onnx_external_data_outside_the_model_folder_is_refused(cli, artifacts: Path, small_npy: Path, tmp_path: Path) -> None:
    model = onnx.load(str(artifacts / "m.onnx"))
    tensor = next(t for t in model.graph.initializer if t.name == "fc8/bias")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    folder = tmp_path / "model"
    folder.mkdir()
    bad = folder / "ext.onnx"
    bad.write_bytes(model.SerializeToString())
    line = _one_line(cli("verify", bad, "--weights", small_npy))
    assert "external data '../../../../etc/passwd' is not a file inside the model's folder" in line


# --- SavedModel ---------------------------------------------------------------------------------


class _Writer(AlexNet):
    """The canonical module whose serving function also writes a file."""

    def __init__(self, weights: AlexNetWeights, canary: Path) -> None:
        super().__init__(weights)
        self.canary = str(canary)
        self.serve = tf.function(self._evil, input_signature=self.serve.input_signature)

    def _evil(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.control_dependencies([tf.io.write_file(self.canary, "pwned")]):
            return self._serve(tf.identity(images))


class _PyFunc(AlexNet):
    def __init__(self, weights: AlexNetWeights) -> None:
        super().__init__(weights)
        self.serve = tf.function(self._py, input_signature=self.serve.input_signature)

    def _py(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        doubled = tf.py_function(lambda x: x * 1.0, [images], tf.float32)
        doubled.set_shape(images.shape)
        return self._serve(doubled)


class _Canary(tf.saved_model.experimental.TrackableResource):
    """A resource whose initializer writes a file when the SavedModel is loaded."""

    def __init__(self, canary: str) -> None:
        super().__init__()
        self.canary = canary

    def _create_resource(self) -> tf.Tensor:
        return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="canary")

    def _initialize(self) -> tf.Operation:
        return tf.io.write_file(self.canary, "pwned at load")


def _save(module: tf.Module, folder: Path, weights: AlexNetWeights) -> Path:
    from alexnet_export.artifacts import MANIFEST_NAME, manifest, write_manifest

    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve.get_concrete_function()})
    content = manifest(artifact=folder, kind="savedmodel", weights=weights, options={"groups": "native"}, versions={})
    write_manifest(folder / MANIFEST_NAME, content)
    return folder


@pytest.mark.parametrize("kind", ["write-file", "load-time-initializer", "py-function"])
def test_a_hostile_savedmodel_is_refused_before_anything_in_it_runs(
    cli, kind: str, small_weights: AlexNetWeights, small_npy: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    if kind == "write-file":
        module: tf.Module = _Writer(small_weights, canary)
    elif kind == "py-function":
        module = _PyFunc(small_weights)
    else:
        module = AlexNet(small_weights)
        module.canary = _Canary(str(canary))  # type: ignore[attr-defined]
    folder = _save(module, tmp_path / "sm", small_weights)
    if kind == "load-time-initializer":
        tf.saved_model.load(str(folder))  # the trap is real: loading it writes the canary
        assert canary.read_text() == "pwned at load"
        canary.unlink()
    elif kind == "write-file":
        module.serve(tf.zeros((1, 227, 227, 3)))  # type: ignore[attr-defined]
        assert canary.exists()
        canary.unlink()
    expected = {"write-file": "op WriteFile", "py-function": "op EagerPyFunc", "load-time-initializer": "object"}[kind]
    picture = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
    commands = [
        ("verify", folder, "--weights", small_npy, "--device", "cpu"),
        ("predict", folder, picture),
        ("diagnose", folder, "--weights", small_npy),
        ("extract", folder, tmp_path / "out.npy"),
    ]
    for args in commands:
        line = _one_line(cli(*args))
        assert expected in line and str(folder) in line, (args[0], line)
        assert not canary.exists(), f"{args[0]} ran the SavedModel's code"
    assert not (tmp_path / "out.npy").exists()


class _Scaled(AlexNet):
    """A module with a benign-looking extra op (every logit times 1.0001): allowed ops, another graph."""

    def _serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = self.logits(images) * 1.0001
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}


def test_a_savedmodel_with_an_extra_op_fails_on_structure_naming_it(
    cli, small_weights: AlexNetWeights, small_npy: Path, tmp_path: Path
) -> None:
    module = _Scaled(small_weights)
    module.serve = tf.function(module._serve, input_signature=module.serve.input_signature)
    folder = _save(module, tmp_path / "sm", small_weights)
    result = cli("verify", folder, "--weights", small_npy, "--device", "cpu", "--json", tmp_path / "r.json")
    assert result.exit_code == 1, result.output
    (structure,) = json.loads((tmp_path / "r.json").read_text())["structure"]
    assert any("extra op Mul 'mul'" in d for d in structure["differences"]), structure["differences"]


def test_the_toolkits_own_artifacts_match_their_implied_graph_for_every_option(
    small_weights: AlexNetWeights, tmp_path: Path
) -> None:
    from alexnet_export.structure import check_structure

    paths = []
    for groups in ("native", "split", "dense"):
        paths.append((export_savedmodel(small_weights, tmp_path / f"sm-{groups}",
                                        options=SavedModelOptions(groups=groups)), "savedmodel", groups))
        export_onnx(small_weights, tmp_path / f"{groups}.onnx", options=OnnxOptions(groups=groups, layout="nchw"))
        paths.append((tmp_path / f"{groups}.onnx", "onnx", groups))
    export_tflite(small_weights, tmp_path / "f16.tflite", options=TFLiteOptions(precision="fp16", groups="split"))
    paths.append((tmp_path / "f16.tflite", "tflite", "split"))
    for path, fmt, groups in paths:
        check = check_structure(Path(path), fmt, small_weights)
        assert check.status == "matches", (path, check.differences)
        assert check.content.groups == groups and check.manifest == ()
    assert check.content.precision == "fp16"


# --- TFLite -------------------------------------------------------------------------------------


def _repacked(source: Path, target: Path, change) -> None:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    change(model, schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())
    target.with_name(target.name + ".alexnet-export.json").write_bytes(
        source.with_name(source.name + ".alexnet-export.json").read_bytes()
    )


def test_a_tflite_custom_op_is_refused(cli, artifacts: Path, small_npy: Path, tmp_path: Path) -> None:
    def custom(model, schema) -> None:
        code = model.operatorCodes[0]
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode = "Evil"

    bad = tmp_path / "custom.tflite"
    _repacked(artifacts / "m.tflite", bad, custom)
    line = _one_line(cli("verify", bad, "--weights", small_npy))
    assert "is a custom op ('Evil')" in line


def test_a_tflite_with_other_lrn_constants_fails_on_structure_naming_the_op(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path
) -> None:
    def lrn(model, schema) -> None:
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        for op in model.subgraphs[0].operators:
            code = model.operatorCodes[op.opcodeIndex]
            if names[max(code.builtinCode, code.deprecatedBuiltinCode)] == "LOCAL_RESPONSE_NORMALIZATION":
                op.builtinOptions.alpha *= 2
                return

    bad = tmp_path / "lrn.tflite"
    _repacked(artifacts / "m.tflite", bad, lrn)
    result = cli("verify", bad, "--weights", small_npy, "--device", "cpu")
    assert result.exit_code == 1, result.output
    assert "op LOCAL_RESPONSE_NORMALIZATION" in result.output and "alpha" in result.output


# --- manifests ----------------------------------------------------------------------------------


def test_a_manifest_claiming_another_precision_is_reported_and_not_used(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path
) -> None:
    lone = tmp_path / "m.tflite"
    lone.write_bytes((artifacts / "m.tflite").read_bytes())
    content = json.loads((artifacts / "m.tflite.alexnet-export.json").read_text())
    content["options"]["precision"] = "int8"
    (tmp_path / "m.tflite.alexnet-export.json").write_text(json.dumps(content))
    result = cli("verify", lone, "--weights", small_npy, "--device", "cpu", "--json", tmp_path / "r.json")
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["artifacts"][str(lone)]["precision"] == "fp32"
    assert {r["precision"] for r in report["rows"] if r["artifact"] == str(lone)} == {"fp32"}
    assert f"{lone}: manifest: manifest says precision int8; the artifact's content is fp32" in report["problems"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "expected a JSON manifest, received unreadable data"),
        ("[1, 2]", "expected a manifest (a JSON object), received a JSON list"),
        ('{"options": "fp32"}', "field 'options': expected an object, received str"),
    ],
)
def test_a_malformed_manifest_is_one_line(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path, text: str, expected: str
) -> None:
    lone = tmp_path / "m.onnx"
    lone.write_bytes((artifacts / "m.onnx").read_bytes())
    (tmp_path / "m.onnx.alexnet-export.json").write_text(text)
    assert expected in _one_line(cli("verify", lone, "--weights", small_npy))


@pytest.mark.parametrize("listed", ["../../outside.onnx", "/etc/passwd", "link/m.onnx"])
def test_an_export_folder_listing_paths_outside_itself_is_refused(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path, listed: str
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "m.onnx").write_bytes((artifacts / "m.onnx").read_bytes())
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    (folder / "alexnet-export.json").write_text(json.dumps({"format": "export", "artifacts": [listed]}))
    line = _one_line(cli("verify", folder, "--weights", small_npy))
    assert f"artifact {listed!r}: expected a path inside {folder}, refused" in line


def test_an_architecture_that_takes_a_presets_name_but_changes_it_is_reported(
    cli, artifacts: Path, small_npy: Path, small_weights: AlexNetWeights, tmp_path: Path
) -> None:
    from converters.arch import from_json
    from converters.weights import with_arch

    data = small_weights.arch.to_json()
    for layer in data["layers"]:
        if layer.get("type") == "lrn":
            layer["alpha"] = layer["alpha"] * 3
    forged = from_json(data, where="test")
    assert forged.name == "bvlc-alexnet"
    export_onnx(with_arch(small_weights, forged), tmp_path / "forged.onnx")
    result = cli("verify", tmp_path / "forged.onnx", "--weights", small_npy, "--device", "cpu")
    assert result.exit_code == 1, result.output
    assert "records architecture 'bvlc-alexnet', which is not the bvlc-alexnet preset" in result.output


@pytest.mark.parametrize("name", ["m.onnx", "m.tflite", "sm/saved_model.pb"])
def test_truncated_artifacts_given_to_predict_and_verify_are_one_line(
    cli, artifacts: Path, small_npy: Path, tmp_path: Path, name: str
) -> None:
    import shutil

    from PIL import Image

    picture = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(picture)
    if name.startswith("sm/"):
        shutil.copytree(artifacts / "sm", tmp_path / "sm")
        target = tmp_path / "sm"
    else:
        target = tmp_path / name
    data = (artifacts / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 3])
    for args in (("predict", target, picture), ("verify", target, "--weights", small_npy)):
        line = _one_line(cli(*args))
        assert str(target) in line and ("unreadable" in line or "malformed" in line), line


def test_a_corrupt_npy_header_is_one_line(cli, tmp_path: Path) -> None:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), 'x': '''"
    header += b" " * (118 - len(header)) + b"\n"
    path = tmp_path / "tok.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x80\x02.")
    assert "corrupt .npy header: ('EOF in multi-line string'" in _one_line(cli("inspect", path))


def test_a_savedmodel_function_whose_nodes_match_but_whose_outputs_differ_is_named(
    small_weights: AlexNetWeights, tmp_path: Path
) -> None:
    from alexnet_export.structure import Content, compare_savedmodel, expected_savedmodel
    from alexnet_export.trust import read_savedmodel_proto

    folder = export_savedmodel(small_weights, tmp_path / "sm")
    expected = expected_savedmodel(small_weights, Content("fp32", "nhwc", "native", False))
    meta = read_savedmodel_proto(folder).meta_graphs[0]
    assert compare_savedmodel(meta, expected) == []
    function = max(meta.graph_def.library.function, key=lambda f: len(f.node_def))  # the forward pass
    key = next(iter(function.ret))
    function.ret[key] = function.node_def[0].name + ":output:0"  # returns another tensor, same nodes
    differences = compare_savedmodel(meta, expected)
    assert len(differences) == 1 and "signature or outputs differ" in differences[0], differences
