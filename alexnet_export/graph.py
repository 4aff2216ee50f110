"""The canonical TensorFlow graph of an architecture, built from its canonical weight set.

A plain ``tf.Module`` (no Keras on this path) with one child module per layer holding non-trainable
``kernel`` and ``bias`` variables, so variable names and checkpoint keys are ``conv1/kernel`` ...
``fc8/bias`` in every artifact. Every layer fact comes from the weights' :class:`~converters.arch.Architecture`:
explicit Caffe pads become TF's ``SAME``/``VALID`` when they are equal to them at that size (so BVLC
AlexNet's graph is exactly the one it always was), LRN takes ``alpha / size`` (TF's convention),
Caffe's ceil-rounded pooling is a VALID pool (with -inf padding only where the sizes do not divide).

BatchNormalization is folded into the neighbouring linear layer where that is exact
(:mod:`converters.fold`); a BN that cannot fold is one per-channel multiply and add whose ``scale``
and ``offset`` variables are computed in float64 from the four statistics.

Grouped convolutions can be expressed three ways, all computing the same function:

- ``native``: one ``tf.nn.conv2d`` with the grouped kernel (TF infers the groups); the default.
- ``split``: per-group convolutions and a concat, for runtimes without grouped convolution.
- ``dense``: the block-diagonal dense kernel in one plain convolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Literal, cast

import numpy as np
import tensorflow as tf

from alexnet_export.stored import graph_params
from converters.arch import (
    GROUP_MODES,
    LRN,
    Architecture,
    BatchNorm,
    Conv,
    Dense,
    Flatten,
    InputSpec,
    Layer,
    MaxPool,
    ReLU,
    ZeroPad,
    check_choice,
    conv_pads,
    pool_pads,
    same_pads,
)
from converters.weights import AlexNetWeights

GroupMode = Literal["native", "split", "dense"]
Tensorish = Any  # tf.Tensor or tf.Variable; TF has no type stubs


def input_signature(spec: InputSpec, *, embedded: bool = False) -> tf.TensorSpec:
    """``images``: float32 ``[batch, H, W, C]``, or uint8 ``[batch, any, any, C]`` with embedded preprocessing."""
    if embedded:
        return tf.TensorSpec([None, None, None, spec.channels], tf.uint8, name="images")
    return tf.TensorSpec([None, spec.height, spec.width, spec.channels], tf.float32, name="images")


def embedded_preprocessing(pixels: tf.Tensor, spec: InputSpec) -> tf.Tensor:
    """uint8 pictures ``[batch, H, W, C]`` (RGB, or grey) to the model input, in-graph (``--embed-preprocessing``).

    float32, bilinear resize to the input size (half-pixel centres, no antialiasing: the op every
    runtime has), RGB -> BGR where the network wants BGR, times the scale, minus the mean. At the
    input size the resize is the identity, so the result equals
    :func:`alexnet_export.preprocess.rgb_to_input` exactly; other sizes differ from
    ``preprocess(mode="resize")``, which antialiases with Pillow and rounds to uint8 first.
    """
    with tf.name_scope("preprocess"):
        x = tf.image.resize(tf.cast(pixels, tf.float32), [spec.height, spec.width], method="bilinear")
        if spec.channel_order == "BGR":
            x = tf.gather(x, [2, 1, 0], axis=3)  # RGB -> BGR
        if spec.scale != 1.0:
            x = x * tf.constant(spec.scale, tf.float32)
        if spec.mean:
            x = x - tf.constant(spec.mean, tf.float32)
        return x


def check_options(*, groups: str) -> None:
    """Refuse unknown group modes with a message naming the option.

    Raises:
        InputError: an unknown value.

    """
    check_choice("--groups", groups, GROUP_MODES)


def _tf_padding(pads: tuple[tuple[int, int], tuple[int, int]], size: tuple[int, int], layer: Conv) -> Any:
    """TF's name for these pads at this size: ``VALID``, ``SAME`` or the explicit list."""
    if pads == ((0, 0), (0, 0)):
        return "VALID"
    same = (same_pads(size[0], layer.kernel[0], layer.stride[0]), same_pads(size[1], layer.kernel[1], layer.stride[1]))
    if pads == same:
        return "SAME"
    return [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]


def _conv(x: tf.Tensor, kernel: Tensorish, bias: Tensorish, layer: Conv, split: int) -> tf.Tensor:
    strides = [1, *layer.stride, 1]
    padding = _tf_padding(conv_pads(layer, int(x.shape[1]), int(x.shape[2])), (int(x.shape[1]), int(x.shape[2])), layer)
    if split > 1:
        xs = tf.split(x, split, axis=3)
        ks = tf.split(kernel, split, axis=3)
        y = tf.concat([tf.nn.conv2d(a, k, strides, padding) for a, k in zip(xs, ks, strict=True)], axis=3)
    else:
        y = tf.nn.conv2d(x, kernel, strides, padding)
    return tf.nn.bias_add(y, bias)


def _pool(x: tf.Tensor, layer: MaxPool) -> tf.Tensor:
    if layer.padding == "SAME":
        return tf.nn.max_pool2d(x, list(layer.size), list(layer.stride), "SAME")
    (top, bottom), (left, right) = pool_pads(layer, int(x.shape[1]), int(x.shape[2]))
    if bottom or right or top or left:  # Caffe's ceil rounding where VALID would drop the last window
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=float("-inf"))
    # VALID equals Caffe's ceil rounding where the sizes divide (227: 55->27->13->6); see reference.py
    return tf.nn.max_pool2d(x, list(layer.size), list(layer.stride), "VALID")


def _lrn(x: tf.Tensor, layer: LRN) -> tf.Tensor:
    return tf.nn.local_response_normalization(
        x, depth_radius=layer.tf_depth_radius, bias=layer.k, alpha=layer.tf_alpha, beta=layer.beta
    )


def forward(
    images: tf.Tensor, params: Mapping[str, tuple[Tensorish, Tensorish]], *, arch: Architecture, groups: str
) -> tf.Tensor:
    """Logits from a preprocessed NHWC batch and per-layer tensors, for ``arch`` (BN already folded).

    The weights may be variables (the canonical module) or placeholders (the ONNX exporter traces
    the structure without the weights in it); kernels are stored as :func:`stored_kernel` says.
    Weightless layers go in the name scope of the layer with weights before them; the flatten in none.

    Args:
        images: float32 [batch, H, W, C], preprocessed.
        params: (kernel, bias) per layer name; (scale, offset) per remaining BatchNormalization.
        arch: the architecture the graph computes (see :func:`graph_params`).
        groups: grouped-layer mode; only ``split`` changes the ops (``dense`` changes the kernel).

    """
    x = images
    for scope, block in _scopes(arch):
        if scope is None:
            x = _apply(block[0], x, params, groups)
            continue
        with tf.name_scope(scope):  # entered once per block: TF renames a scope entered twice (conv1_1)
            for layer in block:
                x = _apply(layer, x, params, groups)
    return tf.identity(x, name="logits")


def _scopes(arch: Architecture) -> list[tuple[str | None, list[Layer]]]:
    """Consecutive layers grouped by name scope.

    A layer with weights and the weightless ones after it share one; BatchNormalization has its own; the
    flatten has none (``None``).
    """
    blocks: list[tuple[str | None, list[Layer]]] = []
    scope = "images"
    for layer in arch.layers:
        if isinstance(layer, (Conv, Dense, BatchNorm)):
            scope = layer.name
            blocks.append((scope, [layer]))
        elif isinstance(layer, Flatten):
            blocks.append((None, [layer]))
        elif blocks and blocks[-1][0] == scope:
            blocks[-1][1].append(layer)
        else:
            blocks.append((scope, [layer]))
    return blocks


def _apply(layer: Layer, x: tf.Tensor, params: Mapping[str, tuple[Tensorish, Tensorish]], groups: str) -> tf.Tensor:
    """One layer's ops (dropout and the softmax head are the identity here)."""
    if isinstance(layer, Conv):
        kernel, bias = params[layer.name]
        return _conv(x, kernel, bias, layer, layer.groups if groups == "split" else 1)
    if isinstance(layer, Dense):
        kernel, bias = params[layer.name]
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)
    if isinstance(layer, ReLU):
        return tf.nn.relu(x)
    if isinstance(layer, LRN):
        return _lrn(x, layer)
    if isinstance(layer, MaxPool):
        return _pool(x, layer)
    if isinstance(layer, ZeroPad):
        return tf.pad(x, [[0, 0], list(layer.pads[0]), list(layer.pads[1]), [0, 0]])
    if isinstance(layer, BatchNorm):
        scale, offset = params[layer.name]
        return x * scale + offset
    if isinstance(layer, Flatten):
        if layer.order == "chw":
            x = tf.transpose(x, [0, 3, 1, 2])
        return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
    return x


class _Layer(tf.Module):
    def __init__(
        self, name: str, kernel: np.ndarray, bias: np.ndarray, parts: tuple[str, str], shapes_only: bool = False
    ) -> None:
        super().__init__(name=name)
        with tf.name_scope(name):
            if shapes_only:  # the graph without the values: no 244 MB copied into TensorFlow
                from tensorflow.python.ops.resource_variable_ops import UninitializedVariable

                blank = partial(UninitializedVariable, dtype=tf.float32, trainable=False)
                self.kernel = blank(shape=kernel.shape, name=parts[0])
                self.bias = blank(shape=bias.shape, name=parts[1])
            else:
                self.kernel = tf.Variable(kernel, trainable=False, name=parts[0])
                self.bias = tf.Variable(bias, trainable=False, name=parts[1])


class AlexNet(tf.Module):
    """An AlexNet-family network as a ``tf.Module`` with a ``serve`` function per the exported-model contract.

    Args:
        weights: the canonical weight set; its architecture says what to build.
        groups: how grouped layers are computed: ``native``, ``split`` or ``dense``.
        embed_preprocessing: the serving function takes uint8 pictures ``[batch, H, W, C]`` and
            preprocesses in-graph (:func:`embedded_preprocessing`); see :meth:`signature`.
        shapes_only: variables of the weights' shapes without their values (uninitialised): a module to
            save a graph from (``experimental_skip_checkpoint``), not to run.

    """

    def __init__(
        self,
        weights: AlexNetWeights,
        *,
        groups: str = "native",
        embed_preprocessing: bool = False,
        shapes_only: bool = False,
    ) -> None:
        check_options(groups=groups)
        super().__init__(name="alexnet")
        self.embed_preprocessing = embed_preprocessing
        self.group_mode = cast(GroupMode, groups)
        self.source_arch = weights.arch
        self.arch, params = graph_params(weights, groups)
        self.num_classes = weights.num_classes
        self.names = tuple(params)
        for name, (kernel, bias) in params.items():
            parts = ("kernel", "bias") if name in self.arch.layer_names else ("scale", "offset")
            setattr(self, name, _Layer(name, kernel, bias, parts, shapes_only))
        spec = self.arch.input
        # autograph off: the graph is plain Python over a static architecture (no tensor-dependent control
        # flow), and converting its source costs more than the rest of tracing
        self.serve = tf.function(self._serve, input_signature=[input_signature(spec)], autograph=False)
        self.serve_rgb = tf.function(
            self._serve_rgb, input_signature=[input_signature(spec, embedded=True)], autograph=False
        )

    def layer(self, name: str) -> _Layer:
        """The child module of layer ``name``."""
        return cast(_Layer, getattr(self, name))

    def params(self) -> dict[str, tuple[tf.Variable, tf.Variable]]:
        """Every layer's variables, keyed by layer name."""
        return {name: (self.layer(name).kernel, self.layer(name).bias) for name in self.names}

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """Logits of a preprocessed NHWC batch."""
        return forward(images, self.params(), arch=self.arch, groups=self.group_mode)

    def _serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The serving signature: ``images`` -> ``logits`` and ``probabilities``."""
        logits = self.logits(images)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}

    def _serve_rgb(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The serving signature with preprocessing: uint8 pictures -> ``logits`` and ``probabilities``."""
        logits = self.logits(embedded_preprocessing(images, self.arch.input))
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, name="probabilities")}

    def signature(self) -> Any:
        """The concrete function to export: :meth:`serve_rgb` with embedded preprocessing, else :meth:`serve`."""
        return (self.serve_rgb if self.embed_preprocessing else self.serve).get_concrete_function()
