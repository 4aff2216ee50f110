"""The canonical TensorFlow graph of BVLC AlexNet, built from the canonical weight set.

A plain ``tf.Module`` (no Keras on this path) with one child module per layer holding non-trainable
``kernel`` and ``bias`` variables, so variable names and checkpoint keys are ``conv1/kernel`` ...
``fc8/bias`` in every artifact. Caffe facts (padding, LRN constants, pooling) come from
:mod:`converters.spec`; TF's LRN takes ``alpha / n`` (2e-5), not Caffe's 1e-4.

Grouped layers (conv2/4/5) can be expressed three ways, all computing the same function:

- ``native``: one ``tf.nn.conv2d`` with the grouped kernel (TF infers the groups); the default.
- ``split``: per-group convolutions and a concat, for runtimes without grouped convolution.
- ``dense``: the block-diagonal dense kernel in one plain convolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

import numpy as np
import tensorflow as tf

from converters import groups as groups_mod
from converters.spec import (
    BGR_MEAN,
    CONV_LAYERS,
    DENSE_LAYERS,
    GROUP_MODES,
    INPUT_CHANNELS,
    INPUT_SIZE,
    LAYER_NAMES,
    LRN,
    POOL_SIZE,
    POOL_STRIDE,
    PROFILES,
    check_choice,
)
from converters.weights import AlexNetWeights, groups_of

GroupMode = Literal["native", "split", "dense"]
Tensorish = Any  # tf.Tensor or tf.Variable; TF has no type stubs

INPUT_SIGNATURE = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS], tf.float32, name="images")
RGB_SIGNATURE = tf.TensorSpec([None, None, None, INPUT_CHANNELS], tf.uint8, name="images")


def embedded_preprocessing(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 RGB ``[batch, H, W, 3]`` to the model input, in-graph (``--embed-preprocessing``).

    float32, bilinear resize to 227x227 (half-pixel centres, no antialiasing: the op every runtime
    has), RGB -> BGR, minus the BGR mean. At 227x227 the resize is the identity, so the result equals
    :func:`alexnet_export.preprocess.rgb_to_input` exactly; for other sizes it differs from
    ``preprocess(mode="resize")``, which antialiases with Pillow and rounds to uint8 before the mean.
    """
    with tf.name_scope("preprocess"):
        x = tf.image.resize(tf.cast(rgb, tf.float32), [INPUT_SIZE, INPUT_SIZE], method="bilinear")
        x = tf.gather(x, [2, 1, 0], axis=3)  # RGB -> BGR
        return x - tf.constant(BGR_MEAN, tf.float32)


def check_options(*, groups: str, profile: str) -> None:
    """Refuse unknown group modes and profiles with a message naming the option.

    Raises:
        InputError: an unknown value.

    """
    check_choice("--groups", groups, GROUP_MODES)
    check_choice("--profile", profile, tuple(PROFILES))


def stored_kernel(name: str, kernel: np.ndarray, groups: str) -> np.ndarray:
    """The kernel as the graph stores it: dense block-diagonal in ``dense`` mode, else grouped."""
    if groups == "dense" and groups_of(name) > 1:
        return groups_mod.to_dense(kernel, groups_of(name), name=name)
    return kernel


def _conv(x: tf.Tensor, kernel: Tensorish, bias: Tensorish, stride: int, padding: str, groups: int) -> tf.Tensor:
    strides = [1, stride, stride, 1]
    if groups > 1:
        xs = tf.split(x, groups, axis=3)
        ks = tf.split(kernel, groups, axis=3)
        y = tf.concat([tf.nn.conv2d(a, k, strides, padding) for a, k in zip(xs, ks, strict=True)], axis=3)
    else:
        y = tf.nn.conv2d(x, kernel, strides, padding)
    return tf.nn.bias_add(y, bias)


def forward(
    images: tf.Tensor, params: Mapping[str, tuple[Tensorish, Tensorish]], *, groups: str, conv1_same: bool
) -> tf.Tensor:
    """AlexNet's logits from a preprocessed NHWC batch and per-layer (kernel, bias) tensors.

    The weights may be variables (the canonical module) or placeholders (the ONNX exporter traces
    the structure without the weights in it); kernels are stored as :func:`stored_kernel` says.

    Args:
        images: float32 [batch, 227, 227, 3], BGR, mean-subtracted.
        params: (kernel, bias) per layer name.
        groups: grouped-layer mode; only ``split`` changes the ops (``dense`` changes the kernel).
        conv1_same: pad conv1 SAME (the guerzhoy profile) instead of Caffe's VALID.

    """
    x = images
    for spec in CONV_LAYERS:
        kernel, bias = params[spec.name]
        with tf.name_scope(spec.name):
            padding = "SAME" if spec.name != "conv1" or conv1_same else "VALID"
            # Caffe's symmetric pad k//2 at stride 1 is exactly SAME for conv2..conv5
            split = spec.groups if groups == "split" else 1
            x = tf.nn.relu(_conv(x, kernel, bias, spec.stride, padding, split))
            if spec.lrn:
                x = tf.nn.local_response_normalization(
                    x, depth_radius=LRN.tf_depth_radius, bias=LRN.k, alpha=LRN.tf_alpha, beta=LRN.beta
                )
            if spec.pool:
                # VALID equals Caffe's ceil rounding at 227 (55->27->13->6); see reference.py
                x = tf.nn.max_pool2d(x, POOL_SIZE, POOL_STRIDE, "VALID")
    x = tf.reshape(x, [-1, int(params["fc6"][0].shape[0])])  # NHWC flatten: fc6 rows (h, w, c)
    for dense in DENSE_LAYERS:
        kernel, bias = params[dense.name]
        with tf.name_scope(dense.name):
            x = tf.nn.bias_add(tf.matmul(x, kernel), bias)
            if dense.relu:
                x = tf.nn.relu(x)
    return tf.identity(x, name="logits")


class _Layer(tf.Module):
    def __init__(self, name: str, kernel: np.ndarray, bias: np.ndarray) -> None:
        super().__init__(name=name)
        with tf.name_scope(name):
            self.kernel = tf.Variable(kernel, trainable=False, name="kernel")
            self.bias = tf.Variable(bias, trainable=False, name="bias")


class AlexNet(tf.Module):
    """BVLC AlexNet as a ``tf.Module`` with a ``serve`` function per the exported-model contract.

    Args:
        weights: the canonical weight set.
        groups: how grouped layers are computed: ``native``, ``split`` or ``dense``.
        profile: ``caffe`` (faithful; default) or ``guerzhoy`` (conv1 SAME, as myalexnet_forward).
        embed_preprocessing: the serving function takes uint8 RGB ``[batch, H, W, 3]`` and
            preprocesses in-graph (:func:`embedded_preprocessing`); see :meth:`signature`.

    """

    def __init__(
        self, weights: AlexNetWeights, *, groups: str = "native", profile: str = "caffe",
        embed_preprocessing: bool = False,
    ) -> None:
        check_options(groups=groups, profile=profile)
        super().__init__(name="alexnet")
        self.embed_preprocessing = embed_preprocessing
        self.group_mode = cast(GroupMode, groups)
        self.profile = PROFILES[profile]
        self.num_classes = weights.num_classes
        for name, layer in weights.layers.items():
            setattr(self, name, _Layer(name, stored_kernel(name, layer.kernel, groups), layer.bias))

    def layer(self, name: str) -> _Layer:
        """The child module of layer ``name``."""
        return cast(_Layer, getattr(self, name))

    def params(self) -> dict[str, tuple[tf.Variable, tf.Variable]]:
        """Every layer's (kernel, bias) variables, keyed by layer name."""
        return {name: (self.layer(name).kernel, self.layer(name).bias) for name in LAYER_NAMES}

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """Logits of a preprocessed NHWC batch (float32, BGR, mean-subtracted)."""
        return forward(images, self.params(), groups=self.group_mode, conv1_same=self.profile.conv1_same)

    @tf.function(input_signature=[INPUT_SIGNATURE])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The serving signature: ``images`` -> ``logits`` and ``probabilities``."""
        logits = self.logits(images)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}

    @tf.function(input_signature=[RGB_SIGNATURE])
    def serve_rgb(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The serving signature with preprocessing: uint8 RGB ``images`` -> ``logits`` and ``probabilities``."""
        logits = self.logits(embedded_preprocessing(images))
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}

    def signature(self) -> Any:
        """The concrete function to export: :meth:`serve_rgb` with embedded preprocessing, else :meth:`serve`."""
        return (self.serve_rgb if self.embed_preprocessing else self.serve).get_concrete_function()
