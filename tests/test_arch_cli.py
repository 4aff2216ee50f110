"""The CLI side of architectures: arch list/show, --arch everywhere, --profile as an alias, --labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alexnet_export.verify import FIXTURE_IMAGES
from converters.arch import PRESETS


def test_arch_list_and_show(cli, tmp_path: Path) -> None:
    listed = cli("arch", "list")
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(PRESETS)
    shown = cli("arch", "show", "oxflower17-bn", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout) == PRESETS["oxflower17-bn"].to_json()
    table = cli("arch", "show", "mnist")
    assert table.exit_code == 0 and "28x28x1 GRAY" in table.stdout and "4 x 4 x 256" in table.stdout
    bad = cli("arch", "show", "vgg16")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --arch: expected a preset (bvlc-alexnet, guerzhoy")


def test_edited_json_is_accepted_everywhere(cli, tmp_path: Path) -> None:
    data = json.loads(cli("arch", "show", "mnist", "--json").stdout)
    data["name"] = "mnist-5"
    data["layers"][-1]["units"] = 5
    (tmp_path / "mnist5.json").write_text(json.dumps(data))
    made = cli("synthesize", tmp_path / "w.npy", "--arch", tmp_path / "mnist5.json", "--width-divisor", "4")
    assert made.exit_code == 0 and "mnist-5" in made.stdout and "5 classes" in made.stdout
    inspected = cli("inspect", tmp_path / "w.npy", "--arch", tmp_path / "mnist5.json", "--json")
    summary = json.loads(inspected.stdout)
    assert summary["architecture"] == "mnist-5" and summary["num_classes"] == 5
    wrong = cli("inspect", tmp_path / "w.npy")
    assert wrong.exit_code == 2 and "unknown layer 'fc1'" in wrong.stderr and "architecture bvlc-alexnet" in wrong.stderr


def test_profile_is_an_alias_of_arch(cli, small_npy: Path, tmp_path: Path) -> None:
    clash = cli("npy2onnx", small_npy, tmp_path / "m.onnx", "--profile", "guerzhoy", "--arch", "bvlc-alexnet")
    assert clash.exit_code == 2
    assert clash.stderr == "error: --profile guerzhoy is an alias of --arch guerzhoy, received --arch bvlc-alexnet\n"
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("arch", ["mnist", "keras-v1"])
def test_predict_uses_the_architecture_preprocessing_and_labels(cli, tmp_path: Path, arch: str) -> None:
    pytest.importorskip("tensorflow")
    assert cli("synthesize", tmp_path / "w.npy", "--arch", arch, "--width-divisor", "8", "--num-classes", "3").exit_code == 0
    (tmp_path / "labels.txt").write_text("# my classes\nzero\none\ntwo\n")
    picture = FIXTURE_IMAGES / "chelsea_cat.png"
    out = cli("export", tmp_path / "w.npy", tmp_path / "out", "--arch", arch, "--formats", "onnx",
              "--labels", tmp_path / "labels.txt", "--batch", "1", "--quiet")
    assert out.exit_code == 0, out.output
    from_artifact = cli("predict", tmp_path / "out" / "alexnet.onnx", picture, "--json", "--top", "3")
    assert from_artifact.exit_code == 0, from_artifact.output
    predictions = json.loads(from_artifact.stdout)[0]["predictions"]
    assert sorted(p["label"] for p in predictions) == ["one", "two", "zero"]  # the labels given at export
    from_weights = cli("predict", tmp_path / "w.npy", picture, "--json", "--top", "3", "--arch", arch,
                       "--labels", tmp_path / "labels.txt")
    assert [p["label"] for p in json.loads(from_weights.stdout)[0]["predictions"]] == [p["label"] for p in predictions]
    wrong = cli("predict", tmp_path / "w.npy", picture, "--arch", arch, "--top", "3", "--labels", picture)
    assert wrong.exit_code == 2 and "--labels" in wrong.stderr


def test_extract_names_the_folded_layers(cli, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    assert cli("synthesize", tmp_path / "w.npy", "--arch", "oxflower17-bn", "--width-divisor", "8").exit_code == 0
    assert cli("npy2onnx", tmp_path / "w.npy", tmp_path / "m.onnx", "--arch", "oxflower17-bn", "--quiet").exit_code == 0
    out = cli("extract", tmp_path / "m.onnx", tmp_path / "back.h5")
    assert out.exit_code == 0, out.output
    assert "folded BatchNormalization: bn1 into conv2, bn2 into conv3" in out.stdout
    assert "--arch oxflower17-bn-folded" in out.stdout
    again = cli("inspect", tmp_path / "back.h5", "--json")  # the HDF5 file records the folded architecture
    assert json.loads(again.stdout)["architecture"] == "oxflower17-bn-folded"
