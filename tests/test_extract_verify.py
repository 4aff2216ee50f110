from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")
jsonschema = pytest.importorskip("jsonschema")

from alexnet_export.export import ExportPlan, export_all  # noqa: E402
from alexnet_export.exporters.onnx import OnnxOptions, export_onnx  # noqa: E402
from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel  # noqa: E402
from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite  # noqa: E402
from alexnet_export.extract import extract  # noqa: E402
from alexnet_export.preprocess import image_files  # noqa: E402
from alexnet_export.report import verify_markdown  # noqa: E402
from alexnet_export.verify import FIXTURE_IMAGES, SCHEMA_PATH, make_inputs, verify  # noqa: E402
from converters import read_weights  # noqa: E402
from converters.errors import InputError  # noqa: E402
from converters.synthetic import synthesize  # noqa: E402
from converters.weights import AlexNetWeights  # noqa: E402

SCHEMA = json.loads(SCHEMA_PATH.read_text())
FIXTURES = image_files(FIXTURE_IMAGES)


@pytest.mark.parametrize("groups", ["native", "split", "dense"])
def test_every_fp32_artifact_gives_the_weights_back_bit_exactly(tmp_path: Path, small_weights, groups: str) -> None:
    paths = [
        export_savedmodel(small_weights, tmp_path / "sm", options=SavedModelOptions(groups=groups)),
        export_onnx(small_weights, tmp_path / "a.onnx", options=OnnxOptions(groups=groups)).path,
        export_onnx(small_weights, tmp_path / "b.onnx", options=OnnxOptions(groups=groups, layout="nchw")).path,
        export_tflite(small_weights, tmp_path / "m.tflite", options=TFLiteOptions(groups=groups)).path,
    ]
    for path in paths:
        assert extract(path).bit_equal(small_weights), path


def test_cli_extract_to_npy_and_h5(cli, tmp_path: Path, small_npy: Path) -> None:
    assert cli("npy2onnx", small_npy, tmp_path / "m.onnx", "--layout", "nchw", "--quiet").exit_code == 0
    for out in ("back.npy", "back.h5"):
        result = cli("extract", tmp_path / "m.onnx", tmp_path / out)
        assert result.exit_code == 0, result.output
        assert read_weights(tmp_path / out).bit_equal(read_weights(small_npy))
    assert (tmp_path / "back.npy").read_bytes() == small_npy.read_bytes()  # the legacy layout, byte for byte


def test_extract_refuses_quantised_and_unknown_files(cli, tmp_path: Path, small_weights) -> None:
    export_tflite(small_weights, tmp_path / "q.tflite", options=TFLiteOptions(precision="int8-dynamic"))
    with pytest.raises(InputError, match=r"q\.tflite: .*expected float32 weights \(an fp32 export\), received a quantised"):
        extract(tmp_path / "q.tflite")
    (tmp_path / "x.pt").write_bytes(b"x")
    result = cli("extract", tmp_path / "x.pt", tmp_path / "out.npy")
    assert result.exit_code == 2 and "expected a SavedModel folder, a .onnx or a .tflite file, received .pt" in result.output
    result = cli("extract", tmp_path / "q.tflite", tmp_path / "out.txt")
    assert result.exit_code == 2 and result.output.strip().endswith("expected an output ending in .npy (legacy bvlc layout), .h5 (self-describing HDF5) or .weights.h5 (Keras 3), received .txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tflite", "q.tflite.alexnet-export.json", "x.pt"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, small_weights: AlexNetWeights) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("export") / "out"
    report = export_all(small_weights, out, plan=ExportPlan(precisions=("fp32", "int8")), batch=4)
    return out, report


def test_export_writes_everything_and_passes(exported) -> None:
    out, report = exported
    assert report.exit_code == 0, report.problems
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "savedmodel", "alexnet.onnx", "alexnet.onnx.alexnet-export.json", "alexnet_fp32.tflite",
        "alexnet_fp32.tflite.alexnet-export.json", "alexnet_int8.tflite", "alexnet_int8.tflite.alexnet-export.json",
        "report.json", "report.md", "alexnet-export.json",
    ])
    statuses = {(row.artifact.rsplit("/", 1)[-1], row.device.split(":")[0]): row.status for row in report.rows}
    assert all(status == "passed" for (_, device), status in statuses.items() if device == "cpu")
    assert all(status == "not verified" for (_, device), status in statuses.items() if device == "gpu")
    assert [check.status for check in report.weights] == ["bit-exact", "bit-exact", "bit-exact", "not applicable"]
    content = json.loads((out / "report.json").read_text())
    jsonschema.validate(content, SCHEMA)
    assert content["passed"] is True and content["inputs"]["count"] == 4 + len(FIXTURES)
    assert content["inputs"]["sources"][1:] == [f"fixtures: {path.name}" for path in FIXTURES]
    top5 = content["inputs"]["image_top5"]
    assert [entry["source"] for entry in top5] == [f"fixtures: {path.name}" for path in FIXTURES]
    assert all(p["label"] == f"class {p['index']}" for entry in top5 for p in entry["predictions"])  # 17 classes
    manifest = json.loads((out / "alexnet-export.json").read_text())
    assert manifest["artifacts"] == ["savedmodel", "alexnet.onnx", "alexnet_fp32.tflite", "alexnet_int8.tflite"]
    assert "report.json" in manifest["files"] and manifest["passed"] is True
    assert "| passed |" in (out / "report.md").read_text()
    named = [r["artifact"] for r in content["rows"] if r["format"] != "graph"] + [c["artifact"] for c in content["structure"]]
    named += [c["artifact"] for c in content["weights"]] + list(content["artifacts"])
    assert all(Path(name).parent == out for name in named), named  # the folder's name, not its temporary one


def _verify(paths: list[Path], weights: AlexNetWeights, **kwargs):
    return verify(paths, weights, inputs=make_inputs(count=3, fixtures=False), device="cpu", include_graph=False, **kwargs)


def _edit_onnx(source: Path, target: Path, edit) -> Path:
    model = onnx.load(str(source))
    edit(model)
    onnx.save(model, str(target))
    return target


def test_one_changed_onnx_weight_is_caught(exported, tmp_path: Path, small_weights) -> None:
    out, _ = exported

    def nudge(model) -> None:
        tensor = next(t for t in model.graph.initializer if t.name == "conv3/kernel")
        array = onnx.numpy_helper.to_array(tensor).copy()
        array.flat[7] = np.nextafter(array.flat[7], np.float32(1))  # one ulp: invisible in the logits
        tensor.CopyFrom(onnx.numpy_helper.from_array(array, "conv3/kernel"))

    report = _verify([_edit_onnx(out / "alexnet.onnx", tmp_path / "nudged.onnx", nudge)], small_weights)
    assert report.exit_code == 1
    assert report.weights[0].status == "mismatch"
    assert len(report.weights[0].mismatches) == 1 and report.weights[0].mismatches[0].startswith("conv3/kernel (1 values")
    assert any("nudged.onnx: weights differ from the source: conv3/kernel" in p for p in report.problems)


def test_fc6_rows_in_the_wrong_order_are_caught(exported, tmp_path: Path, small_weights) -> None:
    export_onnx(small_weights, tmp_path / "nchw.onnx", options=OnnxOptions(layout="nchw"))

    def unpermute(model) -> None:  # what a converter that forgets the NCHW flatten order would write
        tensor = next(t for t in model.graph.initializer if t.name == "fc6/kernel")
        tensor.CopyFrom(onnx.numpy_helper.from_array(small_weights["fc6"].kernel, "fc6/kernel"))

    report = _verify([_edit_onnx(tmp_path / "nchw.onnx", tmp_path / "bad.onnx", unpermute)], small_weights)
    assert report.exit_code == 1
    (row,) = report.rows
    assert row.status == "failed" and row.failures[0].startswith("max_rel ")
    assert report.weights[0].mismatches[0].startswith("fc6/kernel (")


def test_wrong_lrn_alpha_is_caught_by_the_logits(exported, tmp_path: Path, small_weights) -> None:
    out, _ = exported

    def tf_alpha(model) -> None:  # TF's alpha / n written where ONNX wants Caffe's alpha
        for node in model.graph.node:
            if node.op_type == "LRN":
                for attr in node.attribute:
                    if attr.name == "alpha":
                        attr.f = 2e-5

    report = _verify([_edit_onnx(out / "alexnet.onnx", tmp_path / "lrn.onnx", tf_alpha)], small_weights)
    assert report.exit_code == 1 and report.rows[0].status == "failed"
    assert report.weights[0].status == "bit-exact"  # only the logits can see this one


def test_tflite_from_other_weights_is_caught(tmp_path: Path, small_weights) -> None:
    other = synthesize(seed=4, width_divisor=8, num_classes=17)
    export_tflite(other, tmp_path / "other.tflite")
    report = _verify([tmp_path / "other.tflite"], small_weights)
    assert report.exit_code == 1 and report.rows[0].status == "failed"
    assert report.weights[0].status == "mismatch" and len(report.weights[0].mismatches) == 16
    assert len(report.problems) == 2  # the logits row and the weights, both listed


def test_require_gpu_fails_without_a_gpu(exported, small_weights) -> None:
    out, _ = exported
    report = verify(
        [out / "alexnet.onnx"], small_weights, inputs=make_inputs(count=2, fixtures=False), require_gpu=True
    )
    if not any(row.device.startswith("gpu") and row.status == "passed" for row in report.rows):
        assert "--require-gpu: no GPU row could run on this machine" in report.problems
        assert report.exit_code == 1
    assert "not verified" in verify_markdown(report)


def test_cli_verify_exit_codes(cli, exported, tmp_path: Path, small_npy: Path) -> None:
    out, _ = exported
    result = cli("verify", out, "--weights", small_npy, "--device", "cpu", "--batch", "2", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    jsonschema.validate(json.loads((tmp_path / "r.json").read_text()), SCHEMA)
    other = tmp_path / "other.npy"
    assert cli("synthesize", other, "--seed", "9", "--width-divisor", "8", "--num-classes", "17").exit_code == 0
    result = cli("verify", out / "alexnet.onnx", "--weights", other, "--device", "cpu", "--batch", "2")
    assert result.exit_code == 1 and "FAILED" in result.output
    result = cli("verify", tmp_path / "missing.onnx", "--weights", small_npy)
    assert result.exit_code == 2 and result.output == f"error: {tmp_path / 'missing.onnx'}: no such artifact\n"
    result = cli("verify", out, "--weights", small_npy, "--device", "tpu")
    assert result.exit_code == 2 and result.output == "error: --device: expected one of cpu, gpu, all, received 'tpu'\n"


def test_no_images_at_all_is_refused() -> None:
    with pytest.raises(InputError, match=r"--batch: expected at least one image, received 0 synthetic images and no folder"):
        make_inputs(count=0, fixtures=False)


def test_batch_0_runs_the_sample_images_alone(cli, exported, tmp_path: Path, small_npy: Path) -> None:
    out, _ = exported
    result = cli("verify", out / "alexnet.onnx", "--weights", small_npy, "--batch", "0", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    sources = json.loads((tmp_path / "r.json").read_text())["inputs"]["sources"]
    assert sources == [f"fixtures: {path.name}" for path in FIXTURES] and len(sources) == 3


def test_cli_export_refuses_unknown_formats(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("export", small_npy, tmp_path / "out", "--formats", "onnx,coreml")
    assert result.exit_code == 2
    assert result.output == (
        "error: --formats: expected a comma-separated subset of savedmodel, onnx, tflite, received 'onnx,coreml'\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_environment_names_the_delegates_that_ran(exported) -> None:
    out, _ = exported
    content = json.loads((out / "report.json").read_text())
    assert content["environment"]["litert_delegates"] == ["XNNPACK"]  # reference kernels were not asked for


def test_a_folder_without_saved_model_pb_is_refused(cli, tmp_path: Path, small_npy: Path) -> None:
    (tmp_path / "notsm").mkdir()
    result = cli("extract", tmp_path / "notsm", tmp_path / "out.npy")
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path / 'notsm'}: expected a SavedModel folder (saved_model.pb), received a folder without one\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notsm"]


def test_onnx_without_a_layer_is_named(cli, exported, tmp_path: Path) -> None:
    out, _ = exported

    def drop_fc7(model) -> None:
        for tensor in model.graph.initializer:
            if tensor.name == "fc7/kernel":
                tensor.name = "fc7/weights"

    broken = _edit_onnx(out / "alexnet.onnx", tmp_path / "broken.onnx", drop_fc7)
    result = cli("extract", broken, tmp_path / "out.npy")
    assert result.exit_code == 2
    assert result.output == f"error: {broken}: expected initializer fc7/kernel, received none\n"
    assert not (tmp_path / "out.npy").exists()


def test_tflite_precision_is_read_from_its_content_not_a_manifest(cli, exported, tmp_path: Path, small_npy: Path) -> None:
    out, _ = exported
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((out / "alexnet_int8.tflite").read_bytes())
    result = cli("verify", lone, "--weights", small_npy, "--device", "cpu", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["artifacts"][str(lone)]["precision"] == "int8"
    assert [s["status"] for s in report["structure"]] == ["matches"]
    assert {r["precision"] for r in report["rows"] if r["artifact"] == str(lone)} == {"int8"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "-1"], "error: --batch: expected 0 or more images, received -1"),
        (["--max-rel", "0"], "error: --max-rel: expected a positive number, received 0.0"),
        (["--atol", "-1"], "error: --atol: expected a number >= 0, received -1.0"),
        (["--rtol", "nan"], "error: --rtol: expected a number >= 0, received nan"),
        (["--images", "/nonexistent"], "error: /nonexistent: expected a folder of images, received nothing"),
    ],
    ids=["negative-batch", "zero-max-rel", "negative-atol", "nan-rtol", "missing-images"],
)
def test_cli_verify_bad_options(cli, exported, tmp_path: Path, small_npy: Path, args, message) -> None:
    out, _ = exported
    result = cli("verify", out / "alexnet.onnx", "--weights", small_npy, "--json", tmp_path / "r.json", *args)
    assert result.exit_code == 2 and result.output == message + "\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_export_refuses_unknown_precisions_and_existing_folders(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("export", small_npy, tmp_path / "out", "--precision", "fp32,bf16")
    assert result.exit_code == 2 and result.output == (
        "error: --precision: expected a comma-separated subset of fp32, fp16, int8-dynamic, int8, received 'fp32,bf16'\n"
    )
    (tmp_path / "out").mkdir()
    result = cli("export", small_npy, tmp_path / "out")
    assert result.exit_code == 2 and "output already exists; pass --force" in result.output
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_atol_rtol_add_an_elementwise_check(cli, exported, tmp_path: Path, small_npy: Path) -> None:
    out, _ = exported
    loose = cli("verify", out / "alexnet.onnx", "--weights", small_npy, "--atol", "1e-3", "--rtol", "1e-3",
                "--json", tmp_path / "r.json")
    assert loose.exit_code == 0, loose.output
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert all(row["tolerance"]["atol"] == 1e-3 and row["tolerance"]["rtol"] == 1e-3 for row in rows if row["tolerance"])
    strict = cli("verify", out / "alexnet.onnx", "--weights", small_npy, "--atol", "1e-12")
    assert strict.exit_code == 1
    assert "allclose(atol=1e-12, rtol=0) fails at" in strict.stdout and "(passes with atol >= " in strict.stdout
