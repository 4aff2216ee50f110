"""Full-size `alexnet-export npy2tflite` per precision next to a direct TFLiteConverter run, and LiteRT speed.

Anchor: `direct_tflite.py`, the minimal by-hand script (build the module, TFLiteConverter with the same
optimisation settings, write the bytes) on the same weights, interleaved whole processes. npy2tflite
runs with --check-images 0 so only the export is compared. Target (issue 5): within 1.1x of the anchor;
(issue 17) fp32 <= 3 s. `--baseline DIR` adds the same npy2tflite run from another checkout
(`git worktree add DIR <commit>`), side by side, with its cache off and warm as this checkout's.
Then LiteRT XNNPACK latency (batch 1) and throughput (batch 16) of each precision's file.
Usage: python benchmarks/npy2tflite.py [WEIGHTS.npy] [--runs N] [--baseline DIR] [--precisions fp32,fp16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import FROM_CHECKOUT, cache_variants, interleaved, report, weights_file, weights_parser

HERE = Path(__file__).parent
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")


def litert_speed(path: Path, runs: int) -> tuple[float, float]:
    """Median batch-1 latency (s) and batch-16 throughput (images/s) with LiteRT's default kernels."""
    from alexnet_export.runtimes import tflite_rows

    (runner,) = tflite_rows(path)
    images = np.random.default_rng(0).uniform(-120, 130, (16, 227, 227, 3)).astype(np.float32)
    speeds = []
    for batch, count in ((1, runs), (16, max(3, runs // 4))):
        runner.run(images[:batch])
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            runner.run(images[:batch])
            samples.append(time.perf_counter() - start)
        speeds.append(statistics.median(samples))
    return speeds[0], 16 / speeds[1]


def _args() -> argparse.Namespace:
    parser = weights_parser(runs=2, baseline=True)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    return parser.parse_args()


def main() -> None:
    args = _args()
    cli = Path(sys.executable).parent / "alexnet-export"
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        outs = {p: Path(tmp) / f"{p}.tflite" for p in args.precisions.split(",")}
        print(f"full-size weights, {args.runs} interleaved runs each, medians")
        for precision, out in outs.items():
            mine = [
                *(cli, "npy2tflite", weights, out, "--precision", precision),
                *("--check-images", "0", "--force", "--quiet"),
            ]
            commands = {
                "direct TFLiteConverter [anchor]": [sys.executable, HERE / "direct_tflite.py", weights, out, precision],
                **cache_variants(f"npy2tflite {precision}", mine, Path(tmp) / "cache"),
            }
            if args.baseline is not None:
                base = [
                    *(sys.executable, "-c", FROM_CHECKOUT, args.baseline.resolve(), "npy2tflite", weights, out),
                    *("--precision", precision, "--check-images", "0", "--force", "--quiet"),
                ]
                baseline = f"baseline checkout: npy2tflite {precision}"
                commands |= cache_variants(baseline, base, Path(tmp) / "cache-baseline")
            final = interleaved(commands, runs=args.runs, before=lambda out=out: out.unlink(missing_ok=True))
            report(f"npy -> TFLite {precision} (whole process)", final, "direct TFLiteConverter [anchor]")
        print(f"\n{'LiteRT XNNPACK':24} {'size MiB':>9} {'batch-1 ms':>11} {'batch-16 img/s':>15}")
        for precision, out in outs.items():
            latency, throughput = litert_speed(out, runs=20)
            print(f"{precision:24} {out.stat().st_size / 2**20:9.1f} {latency * 1000:11.1f} {throughput:15.1f}")


if __name__ == "__main__":
    main()
