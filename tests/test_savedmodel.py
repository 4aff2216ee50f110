from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from alexnet_export.artifacts import MANIFEST_NAME, file_sha256  # noqa: E402
from alexnet_export.exporters import savedmodel  # noqa: E402
from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel  # noqa: E402
from alexnet_export.reference import forward  # noqa: E402
from converters.errors import OutputExistsError  # noqa: E402
from converters.weights import AlexNetWeights  # noqa: E402
from tests.conftest import make_images  # noqa: E402
from tests.test_graph import assert_logits_close  # noqa: E402

BIN = Path(sys.executable).parent
RELOAD = """
import sys, numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
fn = model.signatures["serving_default"]
out = fn(images=tf.constant(np.load(sys.argv[2])))
np.save(sys.argv[3], out["logits"].numpy())
print(sorted(out), fn.structured_input_signature[1]["images"].shape)
"""


def reload_logits(model_dir: Path, images: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, str]:
    """Run the SavedModel in a fresh process, as a user would."""
    np.save(tmp_path / "images.npy", images)
    out = subprocess.run(
        [sys.executable, "-c", RELOAD, model_dir, tmp_path / "images.npy", tmp_path / "logits.npy"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return np.load(tmp_path / "logits.npy"), out.stdout


@pytest.mark.parametrize(("options", "arch"), [(SavedModelOptions(), "bvlc-alexnet"), (SavedModelOptions(groups="split"), "guerzhoy")], ids=["native-caffe", "split-guerzhoy"])
def test_reloaded_savedmodel_matches_oracle(tmp_path: Path, small_weights: AlexNetWeights, options: SavedModelOptions, arch: str) -> None:
    from converters.arch import PRESETS
    from converters.weights import with_arch

    model_dir = export_savedmodel(with_arch(small_weights, PRESETS[arch]), tmp_path / "sm", options=options)
    images = make_images(3, seed=7)
    logits, printed = reload_logits(model_dir, images, tmp_path)
    assert "['logits', 'probabilities'] (None, 227, 227, 3)" in printed
    assert_logits_close(logits, forward(small_weights, images, arch=PRESETS[arch]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.npy", "logits.npy", "sm"]


def test_manifest_records_provenance(tmp_path: Path, small_npy: Path) -> None:
    from converters import read_weights

    weights = read_weights(small_npy)
    model_dir = export_savedmodel(weights, tmp_path / "sm", options=SavedModelOptions(groups="dense"))
    manifest = json.loads((model_dir / MANIFEST_NAME).read_text())
    assert manifest["format"] == "savedmodel" and manifest["options"] == {"groups": "dense", "embed_preprocessing": False}
    assert manifest["source"]["sha256"] == file_sha256(small_npy)
    assert manifest["versions"]["tensorflow"] == tf.__version__
    assert manifest["model"] == {"num_classes": 17, "parameters": weights.parameter_count}
    assert manifest["architecture"] == weights.arch.to_json() and manifest["architecture"]["name"] == "bvlc-alexnet"
    files = manifest["files"]
    assert {"saved_model.pb", "variables/variables.index"} <= set(files)
    for name, digest in files.items():
        assert file_sha256(model_dir / name) == digest


def test_saved_model_cli_shows_the_contract(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    model_dir = export_savedmodel(small_weights, tmp_path / "sm")
    shown = subprocess.run(
        [BIN / "saved_model_cli", "show", "--all", "--dir", model_dir], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['images'] tensor_info:" in text and "shape: (-1, 227, 227, 3)" in text
    assert "outputs['logits'] tensor_info:" in text and "shape: (-1, 17)" in text
    assert "outputs['probabilities'] tensor_info:" in text


def test_existing_output_needs_force(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    out = tmp_path / "sm"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"sm: output already exists; pass --force to overwrite it"):
        export_savedmodel(small_weights, out)
    assert (out / "keep.txt").read_text() == "mine"
    export_savedmodel(small_weights, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError("disk on fire")], ids=["ctrl-c", "failure"])
def test_interrupted_export_leaves_nothing(tmp_path: Path, small_weights: AlexNetWeights, monkeypatch, error) -> None:
    real_save = savedmodel.save_module

    def save_then_fail(module, path: Path) -> None:
        real_save(module, path)
        assert (path / "saved_model.pb").exists()  # half way: the temporary holds a model
        raise error

    monkeypatch.setattr(savedmodel, "save_module", save_then_fail)
    with pytest.raises(type(error) if isinstance(error, Exception) else error):
        export_savedmodel(small_weights, tmp_path / "sm")
    assert list(tmp_path.iterdir()) == []


def test_cli_npy2savedmodel(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2savedmodel", small_npy, tmp_path / "out" / "sm", "--groups", "split", "--quiet")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and (tmp_path / "out" / "sm" / "saved_model.pb").exists()
    again = cli("npy2savedmodel", small_npy, tmp_path / "out" / "sm")
    assert again.exit_code == 2 and again.stderr.strip().endswith("sm: output already exists; pass --force to overwrite it")
    bad = cli("npy2savedmodel", small_npy, tmp_path / "x", "--groups", "grouped")
    assert bad.exit_code == 2 and not (tmp_path / "x").exists()
    assert bad.stderr == "error: --groups: expected one of native, split, dense, received 'grouped'\n"
    bad = cli("npy2savedmodel", small_npy, tmp_path / "x", "--profile", "tf")
    assert bad.stderr == "error: --profile: expected one of caffe, guerzhoy, received 'tf'\n"
    bad = cli("npy2savedmodel", small_npy, tmp_path / "x", "--arch", "alexnet9")
    assert bad.exit_code == 2 and "--arch: expected a preset (bvlc-alexnet, guerzhoy, tfnn-paper" in bad.stderr


def test_cli_bad_weights_writes_nothing(cli, tmp_path: Path) -> None:
    (tmp_path / "w.npy").write_bytes(b"\x93NUMPY\x01\x00")
    result = cli("npy2savedmodel", tmp_path / "w.npy", tmp_path / "sm")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "corrupt .npy header" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]


# --- full size, end to end (slow; run in CI) ---------------------------------------------------

@pytest.mark.slow
def test_full_size_npy2savedmodel_end_to_end(tmp_path: Path, full_npy: Path) -> None:
    from converters import read_weights

    inspected = subprocess.run([BIN / "alexnet-export", "inspect", full_npy, "--json"], capture_output=True, text=True)
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["parameters"] == 60_965_224
    done = subprocess.run(
        [BIN / "alexnet-export", "npy2savedmodel", full_npy, tmp_path / "sm", "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    images = make_images(2, seed=11)
    logits, _ = reload_logits(tmp_path / "sm", images, tmp_path)
    assert logits.shape == (2, 1000)
    assert_logits_close(logits, forward(read_weights(full_npy), images))


@pytest.mark.slow
def test_sigterm_during_full_size_export_leaves_nothing(tmp_path: Path, full_npy: Path) -> None:
    target = tmp_path / "sm"
    proc = subprocess.Popen(
        [BIN / "alexnet-export", "npy2savedmodel", full_npy, target, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".sm.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "export finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and stderr.strip() == "error: interrupted; nothing was written"
    assert list(tmp_path.iterdir()) == []
