"""Anchor: what a user writes by hand to turn bvlc_alexnet.npy into a SavedModel.

np.load with allow_pickle, one tf.Module with the same ops as alexnet_export.graph (native grouped
convolutions, Caffe LRN, VALID pooling), tf.saved_model.save. No validation, no manifest, no atomic
rename. Usage: python benchmarks/direct_savedmodel.py WEIGHTS.npy OUT_DIR
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

CONVS = [("conv1", 4, "VALID", True, True), ("conv2", 1, "SAME", True, True), ("conv3", 1, "SAME", False, False),
         ("conv4", 1, "SAME", False, False), ("conv5", 1, "SAME", False, True)]


class Net(tf.Module):
    def __init__(self, data: dict) -> None:
        super().__init__()
        self.v = {n: (tf.Variable(w, trainable=False), tf.Variable(b, trainable=False)) for n, (w, b) in data.items()}

    @tf.function(input_signature=[tf.TensorSpec([None, 227, 227, 3], tf.float32, name="images")])
    def serve(self, x):
        for name, stride, padding, lrn, pool in CONVS:
            w, b = self.v[name]
            x = tf.nn.relu(tf.nn.conv2d(x, w, [1, stride, stride, 1], padding) + b)
            if lrn:
                x = tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75)
            if pool:
                x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        x = tf.reshape(x, [-1, self.v["fc6"][0].shape[0]])
        x = tf.nn.relu(tf.matmul(x, self.v["fc6"][0]) + self.v["fc6"][1])
        x = tf.nn.relu(tf.matmul(x, self.v["fc7"][0]) + self.v["fc7"][1])
        logits = tf.matmul(x, self.v["fc8"][0]) + self.v["fc8"][1]
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


if __name__ == "__main__":
    net = Net(np.load(sys.argv[1], allow_pickle=True, encoding="latin1").item())
    tf.saved_model.save(net, sys.argv[2], signatures={"serving_default": net.serve.get_concrete_function()})
