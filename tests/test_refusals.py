"""Every refusal added for issue 14 that the scenario tests do not reach: one line, exit 2, named, nothing written.

Each case builds a hostile or malformed variant of a real artifact, runs one CLI command, and checks the
message, the exit status and that the command's output (``out.npy`` or a ``--json`` report) was not written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper


@pytest.fixture
def made(small_artifacts: Path) -> Path:
    return small_artifacts



def _onnx(made: Path, tmp: Path, change: Callable[[onnx.ModelProto], None]) -> Path:
    model = onnx.load(str(made / "m.onnx"))
    change(model)
    target = tmp / "m.onnx"
    target.write_bytes(model.SerializeToString())
    return target


def _op(model: onnx.ModelProto) -> None:
    model.graph.node[0].op_type = "RandomNormalLike"


def _subgraph(model: onnx.ModelProto) -> None:
    body = helper.make_graph([], "body", [], [])
    model.graph.node[0].attribute.append(helper.make_attribute("then_branch", body))


def _huge(model: onnx.ModelProto) -> None:
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    del tensor.dims[:]
    tensor.dims.extend([1 << 20, 1 << 20])


def _sparse(model: onnx.ModelProto) -> None:
    values = helper.make_tensor("sv", TensorProto.FLOAT, [1], [1.0])
    indices = helper.make_tensor("si", TensorProto.INT64, [1], [0])
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))


def _function(model: onnx.ModelProto) -> None:
    model.functions.append(
        helper.make_function(
            "local", "f", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])], [helper.make_opsetid("", 17)]
        )
    )


def _short_external(model: onnx.ModelProto) -> None:
    tensor = next(t for t in model.graph.initializer if t.name == "fc8/bias")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "side.bin"), ("offset", "0"), ("length", "4096")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _empty(model: onnx.ModelProto) -> None:
    model.Clear()  # serialises to an empty file


def _no_inputs(model: onnx.ModelProto) -> None:
    del model.graph.input[:]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_empty, "expected an ONNX graph with nodes, inputs and outputs, received 0 nodes, 0 inputs and 0 outputs"),
        (_no_inputs, "expected an ONNX graph with nodes, inputs and outputs, received "),
        (_op, "op RandomNormalLike is not one the toolkit's graphs use; refused"),
        (_subgraph, "expected no subgraphs, received one"),
        (_huge, "expected at most 268435456 values, received shape [1048576, 1048576]"),
        (_sparse, "expected no sparse initializers, received 1"),
        (_function, "expected no model-local functions, received 1"),
        (_short_external, "external data ends past its file"),
    ],
    ids=["empty", "no-inputs", "op", "subgraph", "huge-initializer", "sparse", "local-function", "external-past-end"],
)
def test_onnx_refusals(cli, made: Path, tmp_path: Path, small_npy: Path, change, expected: str) -> None:
    (tmp_path / "side.bin").write_bytes(b"\0" * 16)
    target = _onnx(made, tmp_path, change)
    result = cli("extract", target, tmp_path / "out.npy")
    _refused(result, expected, str(target))
    assert not (tmp_path / "out.npy").exists()
    if change in (_empty, _no_inputs):  # verify reads the file's content before its checks ask for an input
        checked = cli("verify", target, "--weights", small_npy, "--json", tmp_path / "r.json")
        _refused(checked, expected, str(target))
        assert not (tmp_path / "r.json").exists()


def _tflite(made: Path, tmp: Path, change: Callable[..., None]) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf((made / "m.tflite").read_bytes(), 0)
    change(model, schema)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target = tmp / "m.tflite"
    target.write_bytes(builder.Output())
    return target


def _while(model, schema) -> None:
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.WHILE


def _two_subgraphs(model, schema) -> None:
    model.subgraphs.append(model.subgraphs[0])


def _opcode(model, schema) -> None:
    model.subgraphs[0].operators[0].opcodeIndex = len(model.operatorCodes) + 5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_while, "operator 0 is WHILE, not one the toolkit's graphs use; refused"),
        (_two_subgraphs, "expected one subgraph, received 2"),
        (_opcode, "operator 0 names opcode"),
    ],
    ids=["while", "two-subgraphs", "opcode-index"],
)
def test_tflite_refusals(cli, made: Path, tmp_path: Path, change, expected: str) -> None:
    target = _tflite(made, tmp_path, change)
    result = cli("extract", target, tmp_path / "out.npy")
    _refused(result, expected, str(target))
    assert not (tmp_path / "out.npy").exists()


def test_a_refused_artifact_after_an_onnx_whose_rows_have_started_still_exits_2_with_one_line(
    cli, made: Path, small_npy: Path, tmp_path: Path
) -> None:
    target = _tflite(made, tmp_path, _while)  # checked after m.onnx, whose rows start once it passed
    result = cli("verify", made / "m.onnx", target, "--weights", small_npy, "--json", tmp_path / "r.json")
    _refused(result, "is WHILE, not one the toolkit's graphs use", str(target))
    assert not (tmp_path / "r.json").exists()


def test_a_refused_artifact_is_never_read_for_its_report_digest(
    cli, made: Path, small_npy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify hashes an artifact's files on a thread of its own, and only once the artifact passed its checks."""
    import time

    import alexnet_export.verify as verify_module

    hashed: list[str] = []
    real = verify_module.tree_sha256
    monkeypatch.setattr(verify_module, "tree_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    target = _tflite(made, tmp_path, _while)  # checked after m.onnx, which passes
    result = cli("verify", made / "m.onnx", target, "--weights", small_npy)
    _refused(result, "is WHILE, not one the toolkit's graphs use", str(target))
    deadline = time.monotonic() + 10
    while "m.onnx" not in hashed and time.monotonic() < deadline:  # the checked one is hashed beside the rest
        time.sleep(0.01)
    assert hashed == ["m.onnx"]


def test_a_file_that_is_not_a_flatbuffer_is_refused(cli, tmp_path: Path) -> None:
    target = tmp_path / "m.tflite"
    target.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    _refused(
        cli("extract", target, tmp_path / "out.npy"), "expected a TFLite flatbuffer (identifier TFL3)", str(target)
    )


def _savedmodel(made: Path, tmp: Path, change: Callable[..., None]) -> Path:
    from tensorflow.core.protobuf import saved_model_pb2

    folder = tmp / "sm"
    shutil.copytree(made / "sm", folder)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    change(proto)
    (folder / "saved_model.pb").write_bytes(proto.SerializeToString())
    return folder


def _asset(proto) -> None:
    proto.meta_graphs[0].asset_file_def.add().filename = "x.txt"


def _two_graphs(proto) -> None:
    proto.meta_graphs.add().CopyFrom(proto.meta_graphs[0])


def _registered(proto) -> None:
    node = next(n for n in proto.meta_graphs[0].object_graph_def.nodes if n.WhichOneof("kind") == "user_object")
    node.registered_name = "my_package.Evil"


def _keras(proto) -> None:
    node = next(n for n in proto.meta_graphs[0].object_graph_def.nodes if n.WhichOneof("kind") == "user_object")
    node.user_object.identifier = "_tf_keras_layer"


def _big_variable(proto) -> None:
    node = next(n for n in proto.meta_graphs[0].object_graph_def.nodes if n.WhichOneof("kind") == "variable")
    del node.variable.shape.dim[:]
    node.variable.shape.dim.add().size = 50000
    node.variable.shape.dim.add().size = 50000


def _missing_call(proto) -> None:
    library = proto.meta_graphs[0].graph_def.library
    node = next(n for f in library.function for n in f.node_def if n.op == "StatefulPartitionedCall")
    node.attr["f"].func.name = "__inference_elsewhere_1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_asset, "expected no assets, received 1"),
        (_two_graphs, "expected one MetaGraph, received 2"),
        (_registered, "is a registered class (my_package.Evil), refused"),
        (_keras, "is a '_tf_keras_layer', whose Python code loading would run"),
        (_big_variable, "expected a known shape of at most 268435456 values, received [50000, 50000]"),
        (_missing_call, "calls '__inference_elsewhere_1', not in the library"),
    ],
    ids=["asset", "two-metagraphs", "registered-class", "keras-object", "huge-variable", "missing-function"],
)
def test_savedmodel_refusals(cli, made: Path, tmp_path: Path, change, expected: str) -> None:
    folder = _savedmodel(made, tmp_path, change)
    result = cli("extract", folder, tmp_path / "out.npy")
    _refused(result, expected, str(folder))
    assert not (tmp_path / "out.npy").exists()


def test_an_oversized_graph_file_is_refused_before_it_is_read(cli, made: Path, tmp_path: Path) -> None:
    folder = tmp_path / "sm"
    shutil.copytree(made / "sm", folder)
    with open(folder / "saved_model.pb", "r+b") as stream:
        stream.truncate(65 * 2**20)  # sparse: nothing is written, the size is what is checked
    _refused(
        cli("extract", folder, tmp_path / "out.npy"), "expected a graph of at most 64 MiB, received 65 MiB", str(folder)
    )


@pytest.mark.parametrize(
    ("listing", "expected"),
    [
        ({"artifacts": ["gone.onnx"]}, "artifact 'gone.onnx': listed but not there"),
        ({"artifacts": []}, "expected a list of artifacts, received none"),
    ],
    ids=["missing", "empty"],
)
def test_export_folder_listings_that_name_nothing_real(cli, small_npy: Path, tmp_path: Path, listing, expected) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "alexnet-export.json").write_text(json.dumps(listing))
    result = cli("verify", folder, "--weights", small_npy, "--json", tmp_path / "r.json")
    _refused(result, expected, str(folder))
    assert not (tmp_path / "r.json").exists()


def test_an_oversized_manifest_is_refused(cli, made: Path, small_npy: Path, tmp_path: Path) -> None:
    shutil.copy(made / "m.onnx", tmp_path / "m.onnx")
    with open(tmp_path / "m.onnx.alexnet-export.json", "wb") as stream:
        stream.truncate(5 * 2**20)
    result = cli("verify", tmp_path / "m.onnx", "--weights", small_npy)
    _refused(result, "expected a manifest of at most 4 MiB, received 5 MiB", "m.onnx.alexnet-export.json")


def test_report_paths_are_refused_before_the_run(cli, made: Path, small_npy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    _refused(cli("verify", made / "m.onnx", "--weights", small_npy, "--json", folder), "already exists", str(folder))
    _refused(
        cli("verify", made / "m.onnx", "--weights", small_npy, "--json", folder, "--force"),
        "expected a file path for the report, received a folder",
        str(folder),
    )
    same = tmp_path / "r.out"
    _refused(
        cli("verify", made / "m.onnx", "--weights", small_npy, "--json", same, "--markdown", same),
        "--json and --markdown: expected two different paths, received the same one twice",
        "",
    )
    assert not same.exists() and list(folder.iterdir()) == []


def test_a_pickle_of_too_many_opcodes_is_refused(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_npy: Path
) -> None:
    import converters.bvlc_npy as module

    monkeypatch.setattr(module, "MAX_PICKLE_OPS", 50)  # the real bound is 10^6; the file has a few hundred
    _refused(cli("inspect", small_npy), "refused a pickle of more than 50 opcodes", str(small_npy))


def _refused(result, expected: str, where: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output, result.output
    assert expected in result.output and where in result.output, result.output
