"""The by-hand anchor for export's verify step: run each artifact on its runtime and compare with the SavedModel.

What a careful user writes after converting: 8 random inputs, the SavedModel's logits as the reference,
ONNX Runtime (CPU) and the LiteRT interpreter on the same inputs, ``np.allclose`` on each.
Usage: python benchmarks/direct_check.py SAVEDMODEL_DIR MODEL.onnx MODEL.tflite
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import onnxruntime as ort
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

saved_model, onnx_path, tflite_path = sys.argv[1:4]
images = np.random.default_rng(0).uniform(-120, 130, (8, 227, 227, 3)).astype(np.float32)
expected = tf.saved_model.load(saved_model).signatures["serving_default"](images=tf.constant(images))["logits"].numpy()
onnx = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(["logits"], {"images": images})[0]
tflite = Interpreter(model_path=tflite_path).get_signature_runner("serving_default")(images=images)["logits"]
for name, got in (("onnx", onnx), ("tflite", tflite)):
    if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        sys.exit(f"{name} differs from the SavedModel")
