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

from typing import Literal, cast

import numpy as np
import tensorflow as tf

from converters import groups as groups_mod
from converters.spec import (
    CONV_LAYERS,
    DENSE_LAYERS,
    GROUP_MODES,
    INPUT_CHANNELS,
    INPUT_SIZE,
    LRN,
    POOL_SIZE,
    POOL_STRIDE,
    PROFILES,
    check_choice,
)
from converters.weights import AlexNetWeights, groups_of

GroupMode = Literal["native", "split", "dense"]

INPUT_SIGNATURE = tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS], tf.float32, name="images")


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

    """

    def __init__(self, weights: AlexNetWeights, *, groups: str = "native", profile: str = "caffe") -> None:
        check_options(groups=groups, profile=profile)
        super().__init__(name="alexnet")
        self.group_mode = cast(GroupMode, groups)
        self.profile = PROFILES[profile]
        self.num_classes = weights.num_classes
        for name, layer in weights.layers.items():
            setattr(self, name, _Layer(name, stored_kernel(name, layer.kernel, groups), layer.bias))

    def layer(self, name: str) -> _Layer:
        """The child module of layer ``name``."""
        return cast(_Layer, getattr(self, name))

    def _conv(self, x: tf.Tensor, name: str, stride: int, padding: str, groups: int) -> tf.Tensor:
        layer = self.layer(name)
        strides = [1, stride, stride, 1]
        if groups > 1 and self.group_mode == "split":
            xs = tf.split(x, groups, axis=3)
            ks = tf.split(layer.kernel, groups, axis=3)
            y = tf.concat([tf.nn.conv2d(a, k, strides, padding) for a, k in zip(xs, ks, strict=False)], axis=3)
        else:
            y = tf.nn.conv2d(x, layer.kernel, strides, padding)
        return tf.nn.bias_add(y, layer.bias)

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """Logits of a preprocessed NHWC batch (float32, BGR, mean-subtracted)."""
        x = images
        for spec in CONV_LAYERS:
            with tf.name_scope(spec.name):
                if spec.name == "conv1":
                    padding = "SAME" if self.profile.conv1_same else "VALID"
                else:
                    padding = "SAME"  # Caffe's symmetric pad k//2 at stride 1 is exactly SAME
                x = tf.nn.relu(self._conv(x, spec.name, spec.stride, padding, spec.groups))
                if spec.lrn:
                    x = tf.nn.local_response_normalization(
                        x, depth_radius=LRN.tf_depth_radius, bias=LRN.k, alpha=LRN.tf_alpha, beta=LRN.beta
                    )
                if spec.pool:
                    # VALID equals Caffe's ceil rounding at 227 (55->27->13->6); see reference.py
                    x = tf.nn.max_pool2d(x, POOL_SIZE, POOL_STRIDE, "VALID")
        x = tf.reshape(x, [-1, int(self.layer("fc6").kernel.shape[0])])  # NHWC flatten: fc6 rows (h, w, c)
        for dense in DENSE_LAYERS:
            with tf.name_scope(dense.name):
                layer = self.layer(dense.name)
                x = tf.nn.bias_add(tf.matmul(x, layer.kernel), layer.bias)
                if dense.relu:
                    x = tf.nn.relu(x)
        return tf.identity(x, name="logits")

    @tf.function(input_signature=[INPUT_SIGNATURE])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The serving signature: ``images`` -> ``logits`` and ``probabilities``."""
        logits = self.logits(images)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}
