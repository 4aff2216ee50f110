"""Any architecture as a Keras 3 model, and Keras ``.weights.h5`` files of the canonical weights.

The model follows the exported-model contract: input ``images`` float32 ``(batch, H, W, C)``
(preprocessed), outputs ``logits`` and ``probabilities``. For BVLC AlexNet the layers are named ``conv1`` ..
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

from converters.arch import (
    LRN,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool,
    ReLU,
    ZeroPad,
    conv_pads,
    pool_pads,
    same_pads,
    trace,
)
from converters.atomic import atomic_output
from converters.errors import InputError
from converters.hdf5 import KERAS_SUFFIX, check_keras_name
from converters.weights import AlexNetWeights


@keras.saving.register_keras_serializable(package="alexnet_export")
class LocalResponseNormalization(keras.layers.Layer):  # type: ignore[misc]
    """Caffe's across-channel LRN: ``x / (k + alpha / size * sum of x^2 over size channels) ** beta``."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0, **kwargs: Any) -> None:
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


def _keras_padding(layer: Conv, height: int, width: int) -> tuple[str, tuple[tuple[int, int], tuple[int, int]] | None]:
    """Keras' ``same``/``valid`` for these pads at this size, or ``valid`` after a ZeroPadding2D of them."""
    pads = conv_pads(layer, height, width)
    if pads == ((0, 0), (0, 0)):
        return "valid", None
    same = (same_pads(height, layer.kernel[0], layer.stride[0]), same_pads(width, layer.kernel[1], layer.stride[1]))
    return ("same", None) if pads == same else ("valid", pads)


def _unique(name: str, used: set[str]) -> str:
    candidate, count = name, 1
    while candidate in used:
        count += 1
        candidate = f"{name}_{count}"
    used.add(candidate)
    return candidate


def build_model(weights: AlexNetWeights, *, load: bool = True) -> keras.Model:
    """The Keras model of ``weights``' architecture, widths and classes, holding ``weights`` unless ``load`` is false.

    Layers with weights keep the architecture's names (``conv1`` .. ``fc8``, ``bn1`` ...); a ReLU right
    after one becomes its activation; weightless layers are named after the layer before them.

    Args:
        weights: the canonical weight set (its shapes give the widths).
        load: set the layers' weights from ``weights`` (else zeros, e.g. before ``load_weights``).

    Raises:
        InputError: a Caffe ceil-rounded pool whose sizes do not divide (Keras has no such pool).

    """
    arch = weights.arch
    spec = arch.input
    images = keras.Input((spec.height, spec.width, spec.channels), name="images", dtype="float32")
    x, scope, used = images, "images", {"images"}
    shapes = trace(arch, weights.widths)
    layers = arch.layers
    for index, layer in enumerate(layers):
        relu_next = index + 1 < len(layers) and isinstance(layers[index + 1], ReLU)
        if isinstance(layer, Conv):
            scope = layer.name
            padding, explicit = _keras_padding(layer, *shapes[index][:2])
            if explicit is not None:
                x = keras.layers.ZeroPadding2D(explicit, name=_unique(f"{scope}_pad", used))(x)
            x = keras.layers.Conv2D(
                weights[layer.name].kernel.shape[-1], layer.kernel, strides=layer.stride, padding=padding,
                groups=layer.groups, activation="relu" if relu_next else None, kernel_initializer="zeros",
                name=_unique(layer.name, used),
            )(x)
        elif isinstance(layer, Dense):
            scope = layer.name
            x = keras.layers.Dense(
                weights[layer.name].kernel.shape[-1], activation="relu" if relu_next else None,
                kernel_initializer="zeros", name=_unique(layer.name, used),
            )(x)
        elif isinstance(layer, ReLU):
            if index == 0 or not isinstance(layers[index - 1], (Conv, Dense)):
                x = keras.layers.ReLU(name=_unique(f"{scope}_relu", used))(x)
        else:
            x = _weightless(layer, x, _unique(f"{scope}_{layer.type}", used), shapes[index])
    probabilities = keras.layers.Softmax(name="probabilities")(x)
    model = keras.Model(images, {"logits": x, "probabilities": probabilities}, name=arch.name.replace("-", "_"))
    if load:
        for name, params in weights.layers.items():
            model.get_layer(name).set_weights([params.kernel, params.bias])
        for name, norm in weights.norms.items():
            model.get_layer(name).set_weights(list(norm.arrays()))
    return model


def _weightless(layer: Layer, x: Any, name: str, shape: tuple[int, int, int]) -> Any:
    """The Keras layer of a layer without kernel and bias (BatchNormalization's statistics are set later)."""
    if isinstance(layer, LRN):
        return LocalResponseNormalization(layer.size, layer.alpha, layer.beta, layer.k, name=name)(x)
    if isinstance(layer, MaxPool):
        if layer.padding == "CEIL" and pool_pads(layer, shape[0], shape[1]) != ((0, 0), (0, 0)):
            raise InputError(f"{name}: Keras has no ceil-rounded max-pool, and this one's sizes do not divide")
        padding = "same" if layer.padding == "SAME" else "valid"
        return keras.layers.MaxPooling2D(layer.size, layer.stride, padding=padding, name=name)(x)
    if isinstance(layer, ZeroPad):
        return keras.layers.ZeroPadding2D(layer.pads, name=name)(x)
    if isinstance(layer, BatchNorm):
        return keras.layers.BatchNormalization(epsilon=layer.epsilon, name=layer.name)(x)
    if isinstance(layer, Flatten):
        if layer.order == "chw":
            x = keras.layers.Permute((3, 1, 2), name=f"{name}_chw")(x)
        return keras.layers.Flatten(name=name)(x)
    if isinstance(layer, Dropout):
        return keras.layers.Dropout(layer.rate, name=name)(x)
    return x  # the softmax head: the model adds its own "probabilities"


def write_keras_weights(
    weights: AlexNetWeights, out: str | os.PathLike[str], *, force: bool = False
) -> Path:
    """Write ``weights`` as a Keras 3 ``.weights.h5`` file (``model.save_weights``), atomically.

    Raises:
        InputError: ``out`` does not end in ``.weights.h5`` (Keras refuses other names).
        OutputExistsError: ``out`` exists and ``force`` is false.

    """
    out = Path(out)
    check_keras_name(out)
    model = build_model(weights)
    with atomic_output(out, force=force) as tmp:
        staging = tmp.with_name(tmp.name + KERAS_SUFFIX)  # Keras checks the suffix of the name it writes
        try:
            model.save_weights(staging)
            os.replace(staging, tmp)
        finally:
            staging.unlink(missing_ok=True)
    return out
