"""Full-size `alexnet-export diagnose` on each artifact `export` writes, next to `verify` of the same artifact.

The anchor is `verify ARTIFACT --device cpu --batch 2` (the command that sends a user to diagnose), run on
the same artifact and weights in the same session, interleaved; whole processes; medians.
Target (issue 16): diagnose runs on full-size artifacts in seconds, not minutes.
`--baseline DIR` adds `diagnose` from another checkout (e.g. `git worktree add DIR <commit>`) side by side.
Usage: python benchmarks/diagnose.py [WEIGHTS.npy] [--runs N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from _measure import FROM_CHECKOUT, interleaved, report, weights_file, weights_parser


def _args() -> argparse.Namespace:
    parser = weights_parser(runs=3, baseline=True)
    return parser.parse_args()


def main() -> None:
    args = _args()
    cli = Path(sys.executable).parent / "alexnet-export"
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        out = Path(tmp) / "out"
        subprocess.run([cli, "export", weights, out, "--quiet", "--batch", "2"], check=True, stdout=subprocess.DEVNULL)
        print(f"full-size weights, {args.runs} interleaved runs each, medians")
        for artifact in ("savedmodel", "alexnet.onnx", "alexnet_fp32.tflite"):
            path = out / artifact
            anchor = f"verify {artifact} [anchor]"
            commands: dict[str, list[object]] = {
                anchor: [cli, "verify", path, "--weights", weights, "--device", "cpu", "--batch", "2"],
                f"diagnose {artifact}": [cli, "diagnose", path, "--weights", weights],
            }
            if args.baseline is not None:
                commands[f"baseline diagnose {artifact}"] = [
                    sys.executable,
                    "-c",
                    FROM_CHECKOUT,
                    args.baseline.resolve(),
                    "diagnose",
                    path,
                    "--weights",
                    weights,
                ]
            report(f"{artifact} (whole process)", interleaved(commands, runs=args.runs), anchor)


if __name__ == "__main__":
    main()
