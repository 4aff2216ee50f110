"""Keras 3 interop: the model builder, .weights.h5 written by the toolkit and read back without Keras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from alexnet_export.reference import forward
from converters import read_weights
from converters.bvlc_npy import write_npy
from converters.errors import InputError, OutputExistsError, WeightsError
from converters.weights import AlexNetWeights

keras_model = pytest.importorskip("alexnet_export.keras_model")


@pytest.fixture()
def keras_file(tmp_path: Path, small_weights: AlexNetWeights) -> Path:
    return keras_model.write_keras_weights(small_weights, tmp_path / "alexnet.weights.h5")


def _rel(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_load_weights_accepts_the_file_and_holds_the_weights_bit_exactly(
    keras_file: Path, small_weights: AlexNetWeights
) -> None:
    model = keras_model.build_model(small_weights, load=False)
    assert not np.any(model.get_layer("fc6").get_weights()[0])  # zeros before loading
    model.load_weights(keras_file)
    for name, layer in small_weights.layers.items():
        kernel, bias = model.get_layer(name).get_weights()
        assert kernel.dtype == np.float32 and np.array_equal(kernel, layer.kernel), name
        assert np.array_equal(bias, layer.bias), name


def test_the_model_follows_the_contract_and_matches_the_oracle(small_weights: AlexNetWeights, images5) -> None:
    model = keras_model.build_model(small_weights)
    assert model.input_shape == (None, 227, 227, 3) and model.inputs[0].name == "images"
    assert [layer.name for layer in model.layers if layer.weights] == list(small_weights.layers)
    assert model.get_layer("conv2").groups == 2 and model.get_layer("conv2").kernel.shape == (5, 5, 6, 32)
    out = model(images5)
    logits, probabilities = np.asarray(out["logits"]), np.asarray(out["probabilities"])
    oracle = forward(small_weights, images5)
    assert logits.shape == (5, 17) and _rel(logits, oracle) < 1e-5
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(np.argsort(-logits, axis=1)[:, :5], np.argsort(-oracle, axis=1)[:, :5])


def test_guerzhoy_profile_matches_its_oracle(small_weights: AlexNetWeights, images5) -> None:
    from converters.arch import PRESETS
    from converters.weights import with_arch

    logits = np.asarray(keras_model.build_model(with_arch(small_weights, PRESETS["guerzhoy"]))(images5)["logits"])
    oracle = forward(small_weights, images5, arch=PRESETS["guerzhoy"])
    assert _rel(logits, oracle) < 1e-5
    assert _rel(logits, forward(small_weights, images5)) > 1e-3  # the profile really changes the function


def test_lrn_layer_has_caffe_constants_and_matches_tf_lrn() -> None:
    import tensorflow as tf

    layer = keras_model.LocalResponseNormalization()
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (5, 1e-4, 0.75, 1.0)
    x = np.random.default_rng(0).normal(0, 30, (2, 4, 4, 11)).astype(np.float32)
    expected = tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75)
    assert np.allclose(np.asarray(layer(x)), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert keras_model.LocalResponseNormalization.from_config(layer.get_config()).alpha == 1e-4


def test_toolkit_reads_keras_files_without_keras_bit_exactly(keras_file: Path, small_weights: AlexNetWeights) -> None:
    loaded = read_weights(keras_file)
    assert loaded.bit_equal(small_weights)
    assert loaded.source is not None and loaded.source.format == "keras-h5"
    code = f"import sys; from converters import read_weights; read_weights({str(keras_file)!r}); print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_file_saved_by_keras_itself_is_read(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    model = keras_model.build_model(small_weights)
    model.save_weights(tmp_path / "by_keras.weights.h5")
    assert read_weights(tmp_path / "by_keras.weights.h5").bit_equal(small_weights)


def test_cli_round_trips_npy_keras_npy_to_the_same_bytes(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2keras", small_npy, tmp_path / "w.weights.h5")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {tmp_path / 'w.weights.h5'} (Keras 3 weights, layers named as the architecture,")
    assert cli("h52npy", tmp_path / "w.weights.h5", tmp_path / "back.npy").exit_code == 0
    assert (tmp_path / "back.npy").read_bytes() == small_npy.read_bytes()
    assert cli("inspect", tmp_path / "w.weights.h5").exit_code == 0


def test_extract_writes_keras_weights_from_an_artifact(cli, tmp_path: Path, small_npy: Path) -> None:
    assert cli("npy2onnx", small_npy, tmp_path / "a.onnx").exit_code == 0
    result = cli("extract", tmp_path / "a.onnx", tmp_path / "from_onnx.weights.h5")
    assert result.exit_code == 0, result.output
    assert read_weights(tmp_path / "from_onnx.weights.h5").bit_equal(read_weights(small_npy))


def test_refusals(cli, tmp_path: Path, small_npy: Path, small_weights: AlexNetWeights) -> None:
    bad_name = cli("npy2keras", small_npy, tmp_path / "w.h5")
    assert bad_name.exit_code == 2
    assert bad_name.stderr.strip() == f"error: {tmp_path / 'w.h5'}: expected a file name ending in .weights.h5 (Keras' rule), received w.h5"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"ending in \.weights\.h5"):
        keras_model.write_keras_weights(small_weights, tmp_path / "w.keras")
    (tmp_path / "mine.weights.h5").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        keras_model.write_keras_weights(small_weights, tmp_path / "mine.weights.h5")
    again = cli("npy2keras", small_npy, tmp_path / "mine.weights.h5")
    assert again.exit_code == 2 and "output already exists; pass --force" in again.stderr
    assert (tmp_path / "mine.weights.h5").read_bytes() == b"mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _vars(f: h5py.File, name: str) -> h5py.Group:
    return next(g["vars"] for g in f["layers"].values() if g["vars"].attrs.get("name") == name)


def _swap(group: h5py.Group, key: str, data: np.ndarray) -> None:
    del group[key]
    group[key] = data


BROKEN = [
    ("missing-layer", lambda f: f["layers"].__delitem__(_vars(f, "conv3").parent.name.split("/")[-1]), r"expected 5 conv layers for architecture bvlc-alexnet, received 4 \(conv1, conv2, conv4, conv5\)"),
    ("missing-dataset", lambda f: _vars(f, "fc7").__delitem__("1"), r"layer fc7 \(/layers/.*/vars\): expected datasets 0, 1 \(kernel, bias\) or 0..3 \(BatchNormalization\), received \['0'\]"),
    ("wrong-shape", lambda f: _swap(_vars(f, "fc7"), "1", np.zeros(5, np.float32)), r"layer fc7 bias: expected shape \(512,\), received \(5,\)"),
    ("wrong-dtype", lambda f: _swap(_vars(f, "fc8"), "1", np.zeros(17, np.float64)), r"layer fc8 bias: expected float32, received float64"),
    ("no-name", lambda f: _vars(f, "conv1").attrs.__delitem__("name"), r"layer conv1 kernel: expected shape \(11, 11, 3, 32\), received \(5, 5, 6, 32\)"),
]


@pytest.mark.parametrize("edit,message", [pytest.param(e, m, id=i) for i, e, m in BROKEN])
def test_broken_keras_files_are_refused(cli, tmp_path: Path, keras_file: Path, edit, message: str) -> None:
    with h5py.File(keras_file, "r+") as f:
        edit(f)
    with pytest.raises(WeightsError, match=message):
        read_weights(keras_file)
    result = cli("h52npy", keras_file, tmp_path / "out.npy")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.slow
def test_full_size_round_trip_through_keras(tmp_path: Path, full_npy: Path) -> None:
    weights = read_weights(full_npy)
    keras_model.write_keras_weights(weights, tmp_path / "full.weights.h5")
    model = keras_model.build_model(weights, load=False)
    model.load_weights(tmp_path / "full.weights.h5")
    assert np.array_equal(model.get_layer("fc6").get_weights()[0], weights["fc6"].kernel)
    write_npy(read_weights(tmp_path / "full.weights.h5"), tmp_path / "back.npy")
    assert (tmp_path / "back.npy").read_bytes() == full_npy.read_bytes()
