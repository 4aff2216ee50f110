"""ImageNet labels and ``predict`` on every kind of model, with the sample images in alexnet_export/sample_images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alexnet_export.labels import imagenet_classes, label, top_k
from alexnet_export.preprocess import image_files
from alexnet_export.verify import FIXTURE_IMAGES
from converters.bvlc_npy import write_npy
from converters.hdf5 import write_h5
from converters.synthetic import synthesize

SAMPLES = image_files(FIXTURE_IMAGES)


def test_the_class_table_is_the_standard_order() -> None:
    classes = imagenet_classes()
    assert len(classes) == 1000 and [c.index for c in classes] == list(range(1000))
    assert (classes[0].wnid, classes[0].label) == ("n01440764", "tench")
    assert (classes[281].wnid, classes[281].label) == ("n02123045", "tabby")
    assert (classes[999].wnid, classes[999].label) == ("n15075141", "toilet tissue")
    wnids = [c.wnid for c in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000  # index order is wnid order
    assert len({c.label for c in classes}) == 1000
    assert classes[134].label == "crane bird" and classes[517].label == "crane"
    assert classes[2].synset.startswith("great white shark, white shark")


def test_labels_for_other_class_counts_are_not_invented() -> None:
    assert label(281, 1000) == "tabby" and label(3, 17) == "class 3"


def test_top_k_is_sorted_and_deterministic_on_ties() -> None:
    probabilities = np.array([0.1, 0.3, 0.3, 0.05, 0.25])
    assert [e["index"] for e in top_k(probabilities, 3)] == [1, 2, 4]
    assert top_k(probabilities, 1) == [{"index": 1, "label": "class 1", "probability": 0.3}]


def test_there_are_sample_images_with_attribution() -> None:
    assert len(SAMPLES) >= 3
    readme = (FIXTURE_IMAGES / "SOURCES.md").read_text()
    for path in SAMPLES:
        assert f"`{path.name}`" in readme


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small 1000-class weight set in every form predict accepts."""
    from alexnet_export.exporters.onnx import OnnxOptions, export_onnx
    from alexnet_export.exporters.savedmodel import export_savedmodel
    from alexnet_export.exporters.tflite import export_tflite
    from alexnet_export.keras_model import write_keras_weights

    root = tmp_path_factory.mktemp("models")
    weights = synthesize(seed=5, width_divisor=8, num_classes=1000)
    paths = {
        "npy": root / "w.npy", "h5": root / "w.h5", "keras": root / "w.weights.h5", "savedmodel": root / "sm",
        "onnx": root / "a.onnx", "onnx-nchw": root / "nchw.onnx", "tflite": root / "a.tflite",
    }
    write_npy(weights, paths["npy"])
    write_h5(weights, paths["h5"])
    write_keras_weights(weights, paths["keras"])
    export_savedmodel(weights, paths["savedmodel"])
    export_onnx(weights, paths["onnx"])
    export_onnx(weights, paths["onnx-nchw"], options=OnnxOptions(layout="nchw"))
    export_tflite(weights, paths["tflite"])
    return paths


def test_every_model_kind_gives_the_same_top5(cli, models: dict[str, Path]) -> None:
    answers = {}
    for kind, path in models.items():
        result = cli("predict", path, *SAMPLES, "--json")
        assert result.exit_code == 0, f"{kind}: {result.output}"
        answers[kind] = json.loads(result.stdout)
    reference = answers["npy"]
    assert [entry["path"] for entry in reference] == [str(p) for p in SAMPLES]
    for entry in reference:
        assert len(entry["predictions"]) == 5
        assert set(entry["predictions"][0]) == {"index", "label", "probability"}
        assert all(p["label"] == imagenet_classes()[p["index"]].label for p in entry["predictions"])
    for kind, answer in answers.items():
        for mine, theirs in zip(answer, reference, strict=True):
            assert [p["index"] for p in mine["predictions"]] == [p["index"] for p in theirs["predictions"]], kind
            assert np.allclose(
                [p["probability"] for p in mine["predictions"]], [p["probability"] for p in theirs["predictions"]],
                rtol=1e-4, atol=1e-6,
            ), kind


def test_text_output_names_the_runtime_and_ranks_classes(cli, models: dict[str, Path]) -> None:
    result = cli("predict", models["tflite"], SAMPLES[0], "--top", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"model: {models['tflite']} (tflite, bvlc-alexnet) on LiteRT XNNPACK"
    assert lines[1] == str(SAMPLES[0]) and len(lines) == 5
    assert [line.split()[0] for line in lines[2:]] == ["1.", "2.", "3."]
    probabilities = [float(line.split()[1]) for line in lines[2:]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_resize_mode_changes_the_input(cli, models: dict[str, Path]) -> None:
    crop = json.loads(cli("predict", models["npy"], SAMPLES[0], "--json").stdout)
    resize = json.loads(cli("predict", models["npy"], SAMPLES[0], "--json", "--fit", "resize").stdout)
    assert crop[0]["predictions"][0]["probability"] != resize[0]["predictions"][0]["probability"]


def test_bad_input_gets_one_line_and_exit_2(cli, tmp_path: Path, models: dict[str, Path]) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    cases = [
        ((models["onnx"], tmp_path / "missing.jpg"), f"error: {tmp_path / 'missing.jpg'}: no such image file"),
        ((models["onnx"], tmp_path / "broken.jpg"), f"error: {tmp_path / 'broken.jpg'}: expected an image Pillow can decode"),
        ((models["onnx"], SAMPLES[0], "--top", "0"), "error: --top: expected 1 or more classes, received 0"),
        ((models["onnx"], SAMPLES[0], "--top", "1001"), "error: --top: expected at most 1000 (the model's classes), received 1001"),
        ((models["onnx"], SAMPLES[0], "--fit", "stretch"), "error: --fit: expected one of crop, resize, received 'stretch'"),
        ((tmp_path / "nope.onnx", SAMPLES[0]), f"error: {tmp_path / 'nope.onnx'}: no such artifact"),
    ]
    for args, message in cases:
        result = cli("predict", *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr


def test_verify_reports_the_oracle_top5_with_imagenet_labels(cli, tmp_path: Path, models: dict[str, Path]) -> None:
    result = cli("verify", models["onnx"], "--weights", models["npy"], "--batch", "1", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    top5 = json.loads((tmp_path / "r.json").read_text())["inputs"]["image_top5"]
    assert [entry["source"] for entry in top5] == [f"fixtures: {path.name}" for path in SAMPLES]
    predicted = json.loads(cli("predict", models["npy"], *SAMPLES, "--json").stdout)
    for entry, answer in zip(top5, predicted, strict=True):
        assert [p["index"] for p in entry["predictions"]] == [p["index"] for p in answer["predictions"]]
        assert all(p["label"] == imagenet_classes()[p["index"]].label for p in entry["predictions"])
    first = top5[0]["predictions"][0]
    assert f"oracle top-1 for fixtures: {SAMPLES[0].name}: {first['label']} ({first['index']}," in result.stdout
