"""Full-size `alexnet-export npy2onnx` next to the tf2onnx CLI on a SavedModel of the same weights.

The anchor is the obvious route: `python -m tf2onnx.convert --saved-model SM --output OUT.onnx`
(the SavedModel is written first by npy2savedmodel and not timed, which favours the anchor).
Both are whole processes, interleaved, same weights, same opset. Targets (issue 4): at least 6x
faster wall time and at least 5x lower peak RSS than the anchor.
With the structure cached (a later run), npy2onnx does not import TensorFlow or run tf2onnx.
Usage: python benchmarks/npy2onnx.py [WEIGHTS.npy] [--runs N]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import cache_variants, interleaved, parse_args, report, weights_file


def main() -> None:
    args = parse_args(runs=2)
    cli = Path(sys.executable).parent / "alexnet-export"
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        saved_model = Path(tmp) / "sm"
        subprocess.run([cli, "npy2savedmodel", weights, saved_model, "--quiet"], check=True)
        out = Path(tmp) / "out.onnx"
        commands = {
            "tf2onnx CLI --saved-model [anchor]": [
                sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model, "--output", out, "--opset", "17"
            ],
            **cache_variants(
                "alexnet-export npy2onnx", [cli, "npy2onnx", weights, out, "--opset", "17", "--force", "--quiet"],
                Path(tmp) / "cache",
            ),
            "alexnet-export npy2onnx --layout nchw (no cache)": [
                "env", "ALEXNET_EXPORT_CACHE=off",
                cli, "npy2onnx", weights, out, "--opset", "17", "--layout", "nchw", "--force", "--quiet",
            ],
        }
        final = interleaved(commands, runs=args.runs, before=lambda: out.unlink(missing_ok=True))
        print(f"full-size weights, {args.runs} interleaved runs each, medians")
        report("npy -> ONNX (whole process)", final, "tf2onnx CLI --saved-model [anchor]")
        anchor = final["tf2onnx CLI --saved-model [anchor]"]
        for name, row in final.items():
            if name.startswith("alexnet-export"):
                print(
                    f"{name}: {anchor['seconds'] / row['seconds']:.1f}x faster (target >= 6x), "
                    f"{anchor['peak_rss_mb'] / row['peak_rss_mb']:.1f}x less peak RSS (target >= 5x)"
                )


if __name__ == "__main__":
    main()
