"""Keras models built by hand from NETWORKS.md's tables with the installed Keras, saved with save_weights,
exported with --arch: ONNX, SavedModel and TFLite logits match Keras's own pre-softmax output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")


def _oxflower(width: int) -> tuple[object, object]:
    """oxflower17-bn at 1/width of its widths: Conv/ReLU/pool/BN blocks, BN after dense+dropout, Softmax."""
    L = keras.layers
    x = images = keras.Input((224, 224, 3))
    x = L.Conv2D(96 // width, 11, strides=4, padding="valid", activation="relu")(x)
    x = L.BatchNormalization()(L.MaxPooling2D(2, 2)(x))
    x = L.Conv2D(256 // width, 11, padding="valid", activation="relu")(x)
    x = L.BatchNormalization()(L.MaxPooling2D(2, 2)(x))
    x = L.BatchNormalization()(L.Conv2D(384 // width, 3, padding="valid", activation="relu")(x))
    x = L.BatchNormalization()(L.Conv2D(384 // width, 3, padding="valid", activation="relu")(x))
    x = L.Conv2D(256 // width, 3, padding="valid", activation="relu")(x)
    x = L.Flatten()(L.BatchNormalization()(L.MaxPooling2D(2, 2)(x)))
    for units in (4096 // width, 4096 // width, 1000 // width):
        x = L.BatchNormalization()(L.Dropout(0.4)(L.Dense(units, activation="relu")(x)))
    logits = L.Dense(17)(x)
    return keras.Model(images, L.Softmax()(logits)), keras.Model(images, logits)


def _keras_v1(width: int) -> tuple[object, object]:
    L = keras.layers
    x = images = keras.Input((224, 224, 3))
    x = L.ZeroPadding2D(((1, 2), (1, 2)))(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(48 // width, 11, strides=4, padding="valid", activation="relu")(x))
    x = L.MaxPooling2D(3, 2)(L.Conv2D(128 // width, 5, padding="same", activation="relu")(x))
    x = L.Conv2D(192 // width, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(192 // width, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(128 // width, 3, padding="same", activation="relu")(x))
    x = L.Dropout(0.2)(L.Flatten()(x))
    x = L.Dropout(0.2)(L.Dense(2048 // width, activation="relu")(x))
    x = L.Dense(2048 // width, activation="relu")(x)
    logits = L.Dense(5)(x)
    return keras.Model(images, L.Softmax()(logits)), keras.Model(images, logits)


def _randomise_batchnorm(model: object, seed: int) -> None:
    """Non-trivial BN statistics, and non-zero biases as training leaves them (Keras initialises them to 0)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # type: ignore[attr-defined]
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, n).astype(np.float32), rng.normal(0, 0.5, n).astype(np.float32),
                rng.normal(0, 0.5, n).astype(np.float32), rng.uniform(0.3, 3.0, n).astype(np.float32),
            ])


@pytest.mark.parametrize(("arch", "build"), [("oxflower17-bn", _oxflower), ("keras-v1", _keras_v1)])
def test_keras_weights_export_and_match_keras(cli, tmp_path: Path, arch: str, build) -> None:
    keras.utils.set_random_seed(4)
    model, logits_model = build(8)
    _randomise_batchnorm(model, 9)
    model.save_weights(tmp_path / "model.weights.h5")
    images = np.random.default_rng(2).uniform(0, 1, (3, 224, 224, 3)).astype(np.float32)  # RGB / 255
    expected = np.asarray(logits_model(images))
    assert np.allclose(np.asarray(model(images)).sum(axis=1), 1.0, atol=1e-5)  # the source outputs probabilities

    result = cli("export", tmp_path / "model.weights.h5", tmp_path / "out", "--arch", arch, "--batch", "2", "--quiet")
    assert result.exit_code == 0, result.output
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    scale = np.abs(expected).max()
    session = ort.InferenceSession(str(tmp_path / "out" / "alexnet.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"images": images})[0]
    assert np.abs(onnx_logits - expected).max() <= 1e-5 * scale
    saved = tf.saved_model.load(str(tmp_path / "out" / "savedmodel")).signatures["serving_default"]
    assert np.abs(saved(images=tf.constant(images))["logits"].numpy() - expected).max() <= 1e-5 * scale
    runner = Interpreter(model_path=str(tmp_path / "out" / "alexnet_fp32.tflite")).get_signature_runner()
    assert np.abs(runner(images=images)["logits"] - expected).max() <= 1e-5 * scale
