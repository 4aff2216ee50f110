"""``--embed-preprocessing``: uint8 RGB in, the Caffe preprocessing in-graph, checked against preprocess.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from alexnet_export.exporters.onnx import OnnxOptions, export_onnx
from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel
from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite
from alexnet_export.graph import embedded_preprocessing
from alexnet_export.parity import TOLERANCES, compare, failures
from alexnet_export.preprocess import BVLC_INPUT, fit_rgb, image_files, input_to_rgb, load_rgb, rgb_to_input
from alexnet_export.reference import forward
from alexnet_export.runtimes import artifact_rows
from alexnet_export.verify import FIXTURE_IMAGES, make_inputs, verify
from converters.errors import InputError


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, small_weights) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embedded")
    paths = {"savedmodel": root / "sm", "onnx": root / "a.onnx", "tflite": root / "a.tflite", "int8": root / "q.tflite"}
    export_savedmodel(small_weights, paths["savedmodel"], options=SavedModelOptions(embed_preprocessing=True))
    export_onnx(small_weights, paths["onnx"], options=OnnxOptions(embed_preprocessing=True))
    export_tflite(small_weights, paths["tflite"], options=TFLiteOptions(embed_preprocessing=True))
    export_tflite(small_weights, paths["int8"], options=TFLiteOptions(embed_preprocessing=True, precision="int8"))
    return paths


def rgb_batch(count: int, size: tuple[int, int] = (227, 227), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *size, 3), dtype=np.uint8)


def test_in_graph_preprocessing_equals_rgb_to_input_at_227() -> None:
    rgb = rgb_batch(3)
    assert np.array_equal(embedded_preprocessing(rgb, BVLC_INPUT).numpy(), np.stack([rgb_to_input(image) for image in rgb]))


def test_in_graph_resize_is_close_to_pillow_on_the_sample_images() -> None:
    """Pillow antialiases when shrinking and rounds to uint8; the in-graph bilinear does neither."""
    for path in image_files(FIXTURE_IMAGES):
        picture = load_rgb(path)
        ours = embedded_preprocessing(picture[None], BVLC_INPUT).numpy()[0]
        pillow = rgb_to_input(fit_rgb(picture, "resize"))
        difference = np.abs(ours - pillow)
        assert difference.mean() < 8 and np.corrcoef(ours.ravel(), pillow.ravel())[0, 1] > 0.95, path.name


def test_input_to_rgb_inverts_rgb_to_input() -> None:
    rgb = rgb_batch(2)
    assert np.array_equal(input_to_rgb(np.stack([rgb_to_input(image) for image in rgb])), rgb)


@pytest.mark.parametrize("kind", ["savedmodel", "onnx", "tflite", "int8"])
def test_every_format_matches_the_oracle_on_uint8_rgb(embedded: dict[str, Path], small_weights, kind: str) -> None:
    rgb = rgb_batch(3, seed=1)
    expected = forward(small_weights, np.stack([rgb_to_input(image) for image in rgb]))
    runner = artifact_rows(embedded[kind])[0]
    metrics = compare(runner.run(rgb), expected)
    precision = "int8" if kind == "int8" else "fp32"
    assert not list(failures(metrics, TOLERANCES[precision], expected.shape)), metrics
    assert runner.run(rgb_batch(2, size=(300, 451))).shape == (2, small_weights.num_classes)  # any size


def test_onnx_input_is_uint8_with_free_height_and_width(embedded: dict[str, Path]) -> None:
    model = onnx.load(embedded["onnx"])
    (graph_input,) = model.graph.input
    tensor = graph_input.type.tensor_type
    assert graph_input.name == "images" and tensor.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in tensor.shape.dim] == ["batch", "height", "width", 3]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["alexnet_export.preprocessing"].startswith("embedded: input uint8 RGB")


def test_verify_feeds_rgb_and_checks_weights(embedded: dict[str, Path], small_weights) -> None:
    report = verify(list(embedded.values()), small_weights, inputs=make_inputs(count=2), include_graph=False)
    assert report.problems == [] and {row.status for row in report.rows if row.device == "cpu"} == {"passed"}
    assert [check.status for check in report.weights] == ["bit-exact", "bit-exact", "bit-exact", "not applicable"]


def test_predict_on_an_embedded_model_matches_resize_mode_at_227(cli, tmp_path: Path, small_npy: Path, embedded) -> None:
    picture = tmp_path / "p.png"
    Image.fromarray(rgb_batch(1, seed=4)[0]).save(picture)
    mine = json.loads(cli("predict", embedded["onnx"], picture, "--json").stdout)
    reference = json.loads(cli("predict", small_npy, picture, "--json", "--fit", "resize").stdout)
    assert [p["index"] for p in mine[0]["predictions"]] == [p["index"] for p in reference[0]["predictions"]]
    other = cli("predict", embedded["tflite"], FIXTURE_IMAGES / "chelsea_cat.png")  # 451x300, resized in-graph
    assert other.exit_code == 0 and "embedded preprocessing" in other.stdout.splitlines()[0]


def test_cli_flags_and_refusals(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2onnx", small_npy, tmp_path / "a.onnx", "--embed-preprocessing")
    assert result.exit_code == 0 and "input uint8 RGB with embedded preprocessing" in result.stdout
    refused = cli("npy2onnx", small_npy, tmp_path / "b.onnx", "--embed-preprocessing", "--layout", "nchw")
    assert refused.exit_code == 2 and refused.stderr == (
        "error: --embed-preprocessing: expected --layout nhwc (images are uint8 RGB [batch, H, W, 3]), "
        "received --layout nchw\n"
    )
    assert not (tmp_path / "b.onnx").exists()
    with pytest.raises(InputError):
        OnnxOptions(layout="nchw", embed_preprocessing=True).check()
    check = cli("npy2tflite", small_npy, tmp_path / "a.tflite", "--embed-preprocessing", "--check-images", "2")
    assert check.exit_code == 0, check.output
    assert "input uint8 RGB with embedded preprocessing" in check.stdout
