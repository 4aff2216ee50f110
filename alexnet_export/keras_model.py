"""BVLC AlexNet as a Keras 3 model, and Keras ``.weights.h5`` files of the canonical weights.

The model follows the exported-model contract: input ``images`` float32 ``(batch, 227, 227, 3)``
(BGR, mean-subtracted), outputs ``logits`` and ``probabilities``. Layers are named ``conv1`` ..
``fc8`` and hold the canonical arrays unchanged: Keras' grouped ``Conv2D(groups=2)`` kernel is the
grouped HWIO layout ``(kh, kw, C_in/G, C_out)``, and ``Dense`` after a channels-last ``Flatten`` takes
fc6 rows in (h, w, c) order. Caffe's LRN is :class:`LocalResponseNormalization`, written with
``keras.ops`` (no backend-specific op), with Caffe's constants (size 5, alpha 1e-4, beta 0.75, k 1).

``write_keras_weights`` builds the model and calls ``model.save_weights``, so the file is exactly what
this Keras version's ``model.load_weights`` expects; :func:`converters.hdf5.read_h5` reads it back
without Keras.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras

from converters.atomic import atomic_output
from converters.hdf5 import KERAS_SUFFIX, check_keras_name
from converters.spec import CONV_LAYERS, DENSE_LAYERS, INPUT_CHANNELS, INPUT_SIZE, LRN, POOL_SIZE, POOL_STRIDE, PROFILES
from converters.weights import AlexNetWeights


@keras.saving.register_keras_serializable(package="alexnet_export")
class LocalResponseNormalization(keras.layers.Layer):  # type: ignore[misc]
    """Caffe's across-channel LRN: ``x / (k + alpha / size * sum of x^2 over size channels) ** beta``."""

    def __init__(
        self, size: int = LRN.local_size, alpha: float = LRN.alpha, beta: float = LRN.beta, k: float = LRN.k,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, x: Any) -> Any:
        """Normalise across the channel axis (last) with a window of ``size`` channels, zero-padded."""
        half = self.size // 2
        channels = x.shape[-1]
        padded = keras.ops.pad(keras.ops.square(x), [[0, 0], [0, 0], [0, 0], [half, half]])
        total = padded[..., 0:channels]
        for offset in range(1, self.size):
            total = total + padded[..., offset : offset + channels]
        return x / keras.ops.power(self.k + (self.alpha / self.size) * total, self.beta)

    def get_config(self) -> dict[str, Any]:
        """The constants, so a saved ``.keras`` model rebuilds the same layer."""
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


def build_model(weights: AlexNetWeights, *, profile: str = "caffe", load: bool = True) -> keras.Model:
    """The Keras model for ``weights``' widths and class count, holding ``weights`` unless ``load`` is false.

    Args:
        weights: the canonical weight set (its shapes give the widths).
        profile: ``caffe`` (faithful) or ``guerzhoy`` (conv1 SAME padding).
        load: set the layers' weights from ``weights`` (else zeros, e.g. before ``load_weights``).

    """
    conv1_same = PROFILES[profile].conv1_same
    images = keras.Input((INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS), name="images", dtype="float32")
    x = images
    for spec in CONV_LAYERS:
        padding = "same" if spec.name != "conv1" or conv1_same else "valid"
        x = keras.layers.Conv2D(
            weights[spec.name].kernel.shape[-1], spec.kernel_size, strides=spec.stride, padding=padding,
            groups=spec.groups, activation="relu", kernel_initializer="zeros", name=spec.name,
        )(x)
        if spec.lrn:
            x = LocalResponseNormalization(name=f"{spec.name}_lrn")(x)
        if spec.pool:
            x = keras.layers.MaxPooling2D(POOL_SIZE, POOL_STRIDE, padding="valid", name=f"{spec.name}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # channels-last: (h, w, c), fc6's row order
    for dense in DENSE_LAYERS:
        x = keras.layers.Dense(
            weights[dense.name].kernel.shape[-1], activation="relu" if dense.relu else None,
            kernel_initializer="zeros", name=dense.name,
        )(x)
    probabilities = keras.layers.Softmax(name="probabilities")(x)
    model = keras.Model(images, {"logits": x, "probabilities": probabilities}, name="alexnet")
    if load:
        for name, layer in weights.layers.items():
            model.get_layer(name).set_weights([layer.kernel, layer.bias])
    return model


def write_keras_weights(
    weights: AlexNetWeights, out: str | os.PathLike[str], *, profile: str = "caffe", force: bool = False
) -> Path:
    """Write ``weights`` as a Keras 3 ``.weights.h5`` file (``model.save_weights``), atomically.

    Raises:
        InputError: ``out`` does not end in ``.weights.h5`` (Keras refuses other names).
        OutputExistsError: ``out`` exists and ``force`` is false.

    """
    out = Path(out)
    check_keras_name(out)
    model = build_model(weights, profile=profile)
    with atomic_output(out, force=force) as tmp:
        staging = tmp.with_name(tmp.name + KERAS_SUFFIX)  # Keras checks the suffix of the name it writes
        try:
            model.save_weights(staging)
            os.replace(staging, tmp)
        finally:
            staging.unlink(missing_ok=True)
    return out
