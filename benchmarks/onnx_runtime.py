"""ONNX Runtime CPU latency (batch 1) and throughput (batch 16) of exported full-size models.

Anchor: the canonical TensorFlow graph (``AlexNet.serve``, a tf.function) on the same weights and
images in the same process run. Rows: npy2onnx exports in both layouts and the split group mode.
Each figure is the median of repeated runs after warm-up; threads are each runtime's default.
Usage: python benchmarks/onnx_runtime.py [WEIGHTS.npy] [--runs N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _measure import parse_args, weights_file

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def timed(fn: Callable[[np.ndarray], object], images: np.ndarray, runs: int) -> float:
    """Median seconds of ``fn(images)`` over ``runs`` calls after two warm-up calls."""
    for _ in range(2):
        fn(images)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(images)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    args = parse_args(runs=20)
    cli = Path(sys.executable).parent / "alexnet-export"
    rng = np.random.default_rng(0)
    images = rng.uniform(-120, 130, size=(16, 227, 227, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        runners: dict[str, Callable[[np.ndarray], object]] = {}

        import onnxruntime as ort
        import tensorflow as tf

        from alexnet_export.graph import AlexNet
        from converters import read_weights

        module = AlexNet(read_weights(weights))
        runners["TF canonical graph [anchor]"] = lambda x: module.serve(tf.constant(x))["logits"].numpy()
        for label, extra in {"nhwc": [], "nchw": ["--layout", "nchw"], "nhwc split": ["--groups", "split"]}.items():
            path = Path(tmp) / f"{label.replace(' ', '_')}.onnx"
            subprocess.run([cli, "npy2onnx", weights, path, "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            nchw = "nchw" in label
            runners[f"onnxruntime {ort.__version__} {label}"] = (
                lambda x, s=session, t=nchw: s.run(["logits"], {"images": x.transpose(0, 3, 1, 2).copy() if t else x})
            )
        rows = {
            name: (timed(fn, images[:1], args.runs), timed(fn, images, max(3, args.runs // 4)))
            for name, fn in runners.items()
        }
    anchor_latency, anchor_batch = rows["TF canonical graph [anchor]"]
    print(f"full-size weights, {os.cpu_count()} CPUs, medians after warm-up")
    print(f"{'':36} {'batch-1 ms':>11} {'ms/anchor':>10} {'batch-16 img/s':>15} {'img/s/anchor':>13}")
    for name, (latency, batch) in rows.items():
        print(
            f"{name:36} {latency * 1000:11.1f} {latency / anchor_latency:10.2f} "
            f"{16 / batch:15.1f} {anchor_batch / batch:13.2f}"
        )


if __name__ == "__main__":
    main()
