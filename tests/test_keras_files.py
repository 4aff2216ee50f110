"""Keras full-model files (``.keras``, legacy ``.h5`` by Keras 3 and by Keras 2 = tf_keras) exported with no
--arch: the architecture comes from the file's config, and every artifact matches the framework's own logits.
Files with code in them (Lambda, custom classes) are refused before anything in them runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

WIDTH = 8


def _oxflower_sequential(K: Any) -> Any:
    """oxflower17-bn (NETWORKS.md) at 1/8 width as a Sequential model, BN via its own layer."""
    L = K.layers
    layers: list[Any] = [K.Input((224, 224, 3))]
    for filters, kernel, stride, pool in (
        (96, 11, 4, True),
        (256, 11, 1, True),
        (384, 3, 1, False),
        (384, 3, 1, False),
    ):
        layers += [L.Conv2D(filters // WIDTH, kernel, strides=stride, padding="valid"), L.Activation("relu")]
        layers += [L.MaxPooling2D(2, 2)] if pool else []
        layers += [L.BatchNormalization()]
    layers += [
        L.Conv2D(256 // WIDTH, 3, padding="valid", activation="relu"),
        L.MaxPooling2D(2, 2),
        L.BatchNormalization(),
    ]
    layers += [L.Flatten()]
    for units in (4096, 4096, 1000):
        layers += [L.Dense(units // WIDTH, activation="relu"), L.Dropout(0.4), L.BatchNormalization()]
    layers += [L.Dense(17), L.Activation("softmax")]
    return K.Sequential(layers)


def _keras_v1_functional(K: Any, classes: int = 5, width: int = WIDTH) -> Any:
    WIDTH = width
    L = K.layers
    x = images = K.Input((224, 224, 3))
    x = L.ZeroPadding2D(((1, 2), (1, 2)))(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(48 // WIDTH, 11, strides=4, padding="valid", activation="relu")(x))
    x = L.MaxPooling2D(3, 2)(L.Conv2D(128 // WIDTH, 5, padding="same", activation="relu")(x))
    x = L.Conv2D(192 // WIDTH, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(192 // WIDTH, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(3, 2)(L.Conv2D(128 // WIDTH, 3, padding="same", activation="relu")(x))
    x = L.Dropout(0.2)(L.Flatten()(x))
    x = L.Dropout(0.2)(L.Dense(2048 // WIDTH, activation="relu")(x))
    x = L.Dense(2048 // WIDTH, activation="relu")(x)
    return K.Model(images, L.Softmax()(L.Dense(classes)(x)))


def _randomise(K: Any, model: Any, seed: int) -> None:
    """Non-zero biases and non-trivial BN statistics, as training leaves them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, K.layers.Conv2D | K.layers.Dense):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
        if isinstance(layer, K.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.uniform(0.3, 3.0, n).astype(np.float32),
                ]
            )


def _logits(K: Any, model: Any, images: np.ndarray) -> np.ndarray:
    """The model's pre-softmax output, computed by the framework itself."""
    head = K.Model(model.inputs, model.layers[-1].input)
    return np.asarray(head(images))


def _modules() -> list[Any]:
    found = [pytest.param("keras3", id="keras3")]
    try:
        import tf_keras  # noqa: F401

        found.append(pytest.param("keras2", id="keras2-tf_keras"))
    except ImportError:  # pragma: no cover - tf_keras is in the dev extra
        pass
    return found


def _framework(name: str) -> Any:
    if name == "keras2":
        import tf_keras

        return tf_keras
    return keras


CASES = [
    ("keras3", ".keras", _oxflower_sequential, "oxflower17-bn"),
    ("keras3", ".h5", _oxflower_sequential, "oxflower17-bn"),
    ("keras2", ".h5", _oxflower_sequential, "oxflower17-bn"),
    ("keras3", ".keras", _keras_v1_functional, "keras-v1"),
    ("keras3", ".h5", _keras_v1_functional, "keras-v1"),
    ("keras2", ".h5", _keras_v1_functional, "keras-v1"),
]


@pytest.mark.parametrize(
    ("framework", "suffix", "build", "preset"),
    CASES,
    ids=[f"{c[3]}-{c[0]}{c[1]}" for c in CASES],
)
def test_a_keras_model_file_exports_with_no_arch_and_matches_the_framework(
    cli, tmp_path: Path, framework: str, suffix: str, build: Any, preset: str
) -> None:
    if framework == "keras2":
        pytest.importorskip("tf_keras")
    K = _framework(framework)
    K.utils.set_random_seed(4)
    model = build(K)
    _randomise(K, model, 9)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    images = np.random.default_rng(2).uniform(0, 1, (3, 224, 224, 3)).astype(np.float32)
    expected = _logits(K, model, images)

    result = cli("export", path, tmp_path / "out", "--batch", "2", "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "alexnet-export.json").read_text())
    assert manifest["architecture"]["name"] == preset
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    scale = np.abs(expected).max()
    session = ort.InferenceSession(str(tmp_path / "out" / "alexnet.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["logits"], {"images": images})[0] - expected).max() <= 1e-5 * scale
    saved = tf.saved_model.load(str(tmp_path / "out" / "savedmodel")).signatures["serving_default"]
    assert np.abs(saved(images=tf.constant(images))["logits"].numpy() - expected).max() <= 1e-5 * scale
    runner = Interpreter(model_path=str(tmp_path / "out" / "alexnet_fp32.tflite")).get_signature_runner()
    assert np.abs(runner(images=images)["logits"] - expected).max() <= 1e-5 * scale


def test_inspect_shows_the_inferred_architecture_and_the_source_kind(cli, tmp_path: Path) -> None:
    model = _keras_v1_functional(keras, classes=7)
    model.save(tmp_path / "v1.keras")
    result = cli("inspect", tmp_path / "v1.keras", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["architecture"] == "keras-v1" and report["source_format"] == "keras"
    sources = {row["layer"]: row.get("source", "") for row in report["shapes"]}
    assert sources["conv1"].startswith("conv2d") and sources["conv1"].endswith("(Conv2D)")
    assert sources["fc3"].startswith("dense") and sources["fc3"].endswith("(Dense)")
    table = cli("inspect", tmp_path / "v1.keras")
    assert "keras-v1" in table.stdout and "fc3" in table.stdout


def test_an_unmatched_network_gets_its_own_architecture_named_after_the_model(tmp_path: Path) -> None:
    from converters import read_weights

    L = keras.layers
    model = keras.Sequential(
        [keras.Input((40, 36, 1)), L.Conv2D(5, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(), L.Dense(4)],
        name="tiny",
    )
    model.save(tmp_path / "tiny.keras")
    weights = read_weights(tmp_path / "tiny.keras")
    assert weights.arch.name == "keras-tiny"
    assert (weights.arch.input.height, weights.arch.input.width, weights.arch.input.channel_order) == (40, 36, "GRAY")
    assert list(weights.layers) == ["conv1", "fc1"]
    kernel = model.layers[0].get_weights()[0]
    assert weights["conv1"].kernel.tobytes() == kernel.tobytes()


def test_arch_that_disagrees_with_the_file_names_the_first_difference(cli, tmp_path: Path) -> None:
    model = _keras_v1_functional(keras)
    model.save(tmp_path / "v1.keras")
    result = cli("inspect", tmp_path / "v1.keras", "--arch", "oxflower17-bn")
    assert result.exit_code == 2
    assert "differs from --arch oxflower17-bn: layer 0 is zeropad" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    same = cli("inspect", tmp_path / "v1.keras", "--arch", "keras-v1")
    assert same.exit_code == 0, same.output


def test_a_residual_connection_and_a_second_input_are_refused_with_the_layer(cli, tmp_path: Path) -> None:
    L = keras.layers
    x = images = keras.Input((32, 32, 3))
    y = L.Conv2D(3, 3, padding="same", name="branch")(x)
    y = L.Add(name="skip")([x, y])
    keras.Model(images, L.Dense(2)(L.Flatten()(y))).save(tmp_path / "residual.keras")
    result = cli("inspect", tmp_path / "residual.keras")
    assert result.exit_code == 2
    assert "layer 'skip' (Add): expected one input (an AlexNet is a chain), received 2" in result.stderr, result.stderr

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    keras.Model([a, b], L.Dense(2)(L.Flatten()(L.Concatenate()([a, b])))).save(tmp_path / "two.keras")
    result = cli("inspect", tmp_path / "two.keras")
    assert result.exit_code == 2 and "expected a model with one input, received 2" in result.stderr, result.stderr


def test_a_lambda_layer_in_a_keras2_h5_is_refused_and_its_code_never_runs(cli, tmp_path: Path) -> None:
    tf_keras = pytest.importorskip("tf_keras")
    canary = tmp_path / "canary"

    def payload(x: Any, canary: str = str(canary)) -> Any:
        open(canary, "w").close()  # what a hostile Lambda would do when deserialised and called
        return x

    L = tf_keras.layers
    model = tf_keras.Sequential(
        [tf_keras.Input((16, 16, 3)), L.Lambda(payload, name="hostile"), L.Flatten(), L.Dense(2)]
    )
    canary.unlink()  # building the model called it once, here in the test
    model.save(tmp_path / "lambda.h5")
    assert not canary.exists()
    for command in (("inspect",), ("export",)):
        args = (tmp_path / "lambda.h5", tmp_path / "out") if command == ("export",) else (tmp_path / "lambda.h5",)
        result = cli(*command, *args)
        assert result.exit_code == 2, result.output
        assert "layer 'hostile' (Lambda): not supported (nothing in the file was run)" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not canary.exists() and not (tmp_path / "out").exists()


def test_a_custom_class_in_a_keras_file_is_refused(cli, tmp_path: Path) -> None:
    @keras.saving.register_keras_serializable(package="Hostile")
    class Custom(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x

    model = keras.Sequential(
        [keras.Input((16, 16, 3)), Custom(name="mine"), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.save(tmp_path / "custom.keras")
    result = cli("inspect", tmp_path / "custom.keras")
    assert result.exit_code == 2
    assert "layer 'mine' (Custom): not supported" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["config"]["layers"][1]["config"].update(activation="tanh"), "activation 'tanh' not supported"),
        (
            lambda c: c["config"]["layers"][1]["config"].update(dilation_rate=[2, 2]),
            "dilation_rate [2, 2] not supported",
        ),
        (
            lambda c: c["config"]["layers"][1]["config"].update(data_format="channels_first"),
            "expected data_format channels_last",
        ),
        (lambda c: c.update(class_name="MyModel"), "model class MyModel: not supported"),
    ],
    ids=["activation", "dilation", "channels-first", "subclassed"],
)
def test_unsupported_configs_are_one_line(cli, tmp_path: Path, change: Any, message: str) -> None:
    import h5py

    L = keras.layers
    keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as file:
        config = json.loads(file.attrs["model_config"])
        change(config)
        file.attrs["model_config"] = json.dumps(config)
    result = cli("inspect", tmp_path / "m.h5")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_dataset_with_the_wrong_shape_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import h5py

    from converters import read_weights
    from converters.errors import WeightsError

    L = keras.layers
    keras.Sequential([keras.Input((16, 16, 3)), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)]).save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as file:
        conv = next(k for k in file["model_weights"] if k.startswith("conv2d"))
        group = file["model_weights"][conv]
        name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][1]
        del group[name]
        group.create_dataset(name, shape=(50000, 50000), dtype="f4")  # declared 9 GiB, never allocated
    with pytest.raises(WeightsError, match=r"expected shape \(2,\), received \(50000, 50000\)"):
        read_weights(tmp_path / "m.h5")


@pytest.mark.slow
def test_a_full_size_keras_v1_model_exports_and_matches_keras(cli, tmp_path: Path) -> None:
    keras.utils.set_random_seed(5)
    model = _keras_v1_functional(keras, classes=1000, width=1)
    _randomise(keras, model, 3)
    model.save(tmp_path / "keras_v1.keras")
    images = np.random.default_rng(4).uniform(0, 1, (2, 224, 224, 3)).astype(np.float32)
    expected = _logits(keras, model, images)
    result = cli("export", tmp_path / "keras_v1.keras", tmp_path / "out", "--formats", "onnx", "--batch", "2", "--quiet")
    assert result.exit_code == 0, result.output
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "out" / "alexnet.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(["logits"], {"images": images})[0] - expected).max() <= 1e-5 * np.abs(expected).max()
