from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")
pytest.importorskip("ai_edge_litert")

from alexnet_export.artifacts import sidecar_manifest_path
from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite
from alexnet_export.parity import TOLERANCES, compare, failures
from alexnet_export.reference import forward
from alexnet_export.runtimes import tflite_rows
from converters.errors import InputError
from converters.weights import AlexNetWeights
from tests.conftest import make_images
from tests.test_graph import assert_logits_close

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory: pytest.TempPathFactory, small_weights: AlexNetWeights) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tflite")
    return {
        precision: export_tflite(small_weights, folder / f"{precision}.tflite", options=TFLiteOptions(precision=precision)).path
        for precision in TOLERANCES
    }


@pytest.mark.parametrize("precision", list(TOLERANCES))
def test_each_precision_is_within_its_declared_tolerance(
    tflite_files: dict[str, Path], small_weights: AlexNetWeights, images5: np.ndarray, precision: str
) -> None:
    (runner,) = tflite_rows(tflite_files[precision])
    expected = forward(small_weights, images5)
    for batch in (1, 5):  # the signature runner resizes the batch dimension
        metrics = compare(runner.run(images5[:batch]), expected[:batch])
        assert failures(metrics, TOLERANCES[precision], (batch, 17)) == [], metrics


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_row_runs_a_few_images_at_a_time_and_gives_the_whole_batchs_logits(
    tflite_files: dict[str, Path], images5: np.ndarray, precision: str
) -> None:
    """The LiteRT row splits a batch (less memory at verify's peak); the logits are those of one whole-batch call."""
    from ai_edge_litert.interpreter import Interpreter

    from alexnet_export.runtimes import LITERT_IMAGES_PER_CALL

    assert 1 < LITERT_IMAGES_PER_CALL < len(images5)  # the batch is split, its last part shorter: 2 + 2 + 1
    (runner,) = tflite_rows(tflite_files[precision])
    whole = Interpreter(model_path=str(tflite_files[precision])).get_signature_runner("serving_default")
    expected = whole(images=images5)["logits"]
    assert runner.run(images5).tobytes() == expected.tobytes()


def test_smaller_precisions_make_smaller_files(tflite_files: dict[str, Path]) -> None:
    size = {p: path.stat().st_size for p, path in tflite_files.items()}
    assert size["fp16"] < 0.6 * size["fp32"] and size["int8"] < 0.35 * size["fp32"]
    assert size["int8-dynamic"] < 0.35 * size["fp32"]


def test_signature_follows_the_contract(tflite_files: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_files["int8"]))
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["images"], "outputs": ["logits", "probabilities"]}
    }
    outputs = interpreter.get_signature_runner("serving_default")(images=make_images(2))
    assert outputs["probabilities"].dtype == np.float32 and outputs["logits"].shape == (2, 17)


def test_int8_calibrates_on_a_folder_and_records_it(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8)).save(images / f"{index}.png")
    summary = export_tflite(
        small_weights, tmp_path / "m.tflite", options=TFLiteOptions(precision="int8", calibration=str(images))
    )
    assert summary.calibration == f"3 images from {images}, preprocessed as 227x227x3 BGR, 0-255 minus the mean (B, G, R) = (104.007, 116.669, 122.679), float32"
    manifest = json.loads(sidecar_manifest_path(tmp_path / "m.tflite").read_text())
    assert manifest["calibration"]["description"] == summary.calibration and len(manifest["calibration"]["sha256"]) == 64
    assert manifest["options"]["precision"] == "int8"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (TFLiteOptions(precision="int4"), r"--precision: expected one of fp32, fp16, int8-dynamic, int8, received 'int4'"),
        (TFLiteOptions(precision="fp16", calibration="x"), r"--calibration: only used with --precision int8"),
        (TFLiteOptions(precision="int8", calibration="/nonexistent"), r"nonexistent: expected a folder of images"),
    ],
    ids=["precision", "calibration-without-int8", "missing-folder"],
)
def test_bad_options_write_nothing(tmp_path: Path, small_weights: AlexNetWeights, options, message) -> None:
    with pytest.raises(InputError, match=message):
        export_tflite(small_weights, tmp_path / "m.tflite", options=options)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_calibration_image_is_named(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(InputError, match=r"bad\.jpg: expected an image Pillow can decode"):
        export_tflite(small_weights, tmp_path / "m.tflite", options=TFLiteOptions("int8", str(tmp_path / "calib")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]


def test_cli_npy2tflite_prints_the_accuracy_profile(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2tflite", small_npy, tmp_path / "m.tflite", "--precision", "int8", "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"wrote {tmp_path / 'm.tflite'} (TFLite int8, ")
    assert lines[1].startswith("calibration: 16 seeded synthetic images (seed 1234; no --calibration folder)")
    assert lines[2].startswith("accuracy vs float64 oracle (8 images, LiteRT XNNPACK): max_abs ")
    assert lines[2].endswith("within the int8 tolerance")


def test_cli_empty_calibration_folder_is_one_line(cli, tmp_path: Path, small_npy: Path) -> None:
    (tmp_path / "calib").mkdir()
    result = cli("npy2tflite", small_npy, tmp_path / "m.tflite", "--precision", "int8", "--calibration", tmp_path / "calib")
    assert result.exit_code == 2 and result.output.startswith(f"error: {tmp_path / 'calib'}: expected image files (")
    assert result.output.endswith("received none\n") and result.output.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]


def test_cli_bad_precision_is_one_line(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2tflite", small_npy, tmp_path / "m.tflite", "--precision", "fp8")
    assert result.exit_code == 2
    assert result.output == "error: --precision: expected one of fp32, fp16, int8-dynamic, int8, received 'fp8'\n"


def test_litert_reference_lrn_kernel_differs_from_tf(tflite_files: dict[str, Path], small_weights, images5) -> None:
    """Why reference-kernel rows are opt-in: LiteRT's reference LRN is not TF's LRN."""
    xnnpack, reference = tflite_rows(tflite_files["fp32"], reference_kernels=True)
    expected = forward(small_weights, images5[:2])
    assert compare(xnnpack.run(images5[:2]), expected).max_rel < 1e-5
    assert compare(reference.run(images5[:2]), expected).max_rel > 1e-2


@pytest.mark.slow
def test_full_size_fp32_tflite_end_to_end(tmp_path: Path, full_npy: Path) -> None:
    from converters import read_weights

    done = subprocess.run(
        [BIN / "alexnet-export", "npy2tflite", full_npy, tmp_path / "alexnet.tflite", "--quiet"],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "" and "within the fp32 tolerance" in done.stdout
    (runner,) = tflite_rows(tmp_path / "alexnet.tflite")
    images = make_images(2, seed=11)
    assert_logits_close(runner.run(images), forward(read_weights(full_npy), images))
