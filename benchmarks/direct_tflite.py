"""The by-hand anchor for npy2tflite: the fewest lines that build the graph and run TFLiteConverter.

Usage: python benchmarks/direct_tflite.py WEIGHTS.npy OUT.tflite PRECISION
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

from alexnet_export.graph import AlexNet
from alexnet_export.preprocess import synthetic_images
from converters import read_weights

weights, out, precision = sys.argv[1], sys.argv[2], sys.argv[3]
module = AlexNet(read_weights(weights))
converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
if precision != "fp32":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
if precision == "fp16":
    converter.target_spec.supported_types = [tf.float16]
if precision == "int8":
    images = synthetic_images(16, seed=1234)
    converter.representative_dataset = lambda: ([images[i : i + 1]] for i in range(len(images)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
with open(out, "wb") as file:
    file.write(converter.convert())
