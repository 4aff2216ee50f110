"""The measurements behind the per-precision TFLite tolerances in alexnet_export/parity.py.

Full-size weights, each precision converted with the toolkit, run with LiteRT XNNPACK on N images
(seeded synthetic images plus alexnet_export/sample_images when present), compared with the float64 oracle.
Anchors in the same run: the canonical TF graph (fp32, oneDNN) on the same images, and the declared
tolerance beside every figure, with the headroom (how far the measurement is from failing).
Per-image spread: the median and worst per-image max_rel.
Usage: python benchmarks/tflite_accuracy.py [WEIGHTS.npy] [--runs N (images, default 32)]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from _measure import parse_args, weights_file

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")


def main() -> None:
    args = parse_args(runs=32)
    from alexnet_export.exporters.tflite import TFLiteOptions, export_tflite
    from alexnet_export.parity import TOLERANCES, compare
    from alexnet_export.reference import forward
    from alexnet_export.runtimes import graph_rows, tflite_rows
    from alexnet_export.verify import make_inputs
    from converters import read_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights = read_weights(weights_file(args.weights, tmp))
        inputs = make_inputs(count=args.runs)
        images = inputs.images
        oracle = forward(weights, images)
        print(f"{len(images)} images: {args.runs} synthetic + {len(images) - args.runs} from sample_images")
        scale = np.abs(oracle).max(axis=1)
        print(f"oracle logits: largest |logit| per image median {np.median(scale):.3g}; "
              f"top-1 margin (1st - 2nd logit) median {np.median(np.diff(np.sort(oracle, axis=1)[:, -2:])):.3g}")
        rows = {}
        runner = graph_rows(weights)[0]
        rows["TF graph fp32 [anchor]"] = (runner.run(images), "fp32", 0)
        del runner
        for precision in PRECISIONS:
            out = Path(tmp) / f"{precision}.tflite"
            export_tflite(weights, out, options=TFLiteOptions(precision=precision))
            (litert,) = tflite_rows(out)
            rows[f"TFLite {precision}"] = (
                np.concatenate([litert.run(images[i : i + 8]) for i in range(0, len(images), 8)]), precision,
                out.stat().st_size,
            )
            del litert
        print(f"\n{'':24} {'MiB':>6} {'max_rel':>9} {'tol':>7} {'cosine':>9} {'floor':>7} "
              f"{'top-1':>6} {'floor':>6} {'top-5':>6} {'floor':>6} {'img max_rel med/worst':>22}")
        for name, (logits, precision, size) in rows.items():
            m, tol = compare(logits, oracle), TOLERANCES[precision]
            per_image = np.abs(logits - oracle).max(axis=1) / scale
            print(
                f"{name:24} {size / 2**20:6.1f} {m.max_rel:9.2e} {tol.max_rel:7.2g} "
                f"{m.cosine:9.6f} {tol.min_cosine:7.5f} "
                f"{m.top1:6.2f} {tol.min_top1:6.2f} {m.top5:6.2f} {tol.min_top5:6.2f} "
                f"{np.median(per_image):10.2e} / {per_image.max():.2e}"
            )


if __name__ == "__main__":
    main()
