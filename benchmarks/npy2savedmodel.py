"""Full-size `alexnet-export npy2savedmodel` next to a minimal by-hand build-and-save (direct_savedmodel.py).

Both are whole processes (interpreter start and TF import included), same weights, same run.
Targets (issue 3): within 1.2x of the anchor's wall time; peak RSS under 1.5 GB.
Usage: python benchmarks/npy2savedmodel.py [WEIGHTS.npy] [--runs N]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from _measure import interleaved, parse_args, report, weights_file

HERE = Path(__file__).parent


def main() -> None:
    args = parse_args()
    cli = Path(sys.executable).parent / "alexnet-export"
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        out = Path(tmp) / "out"
        commands = {
            "direct build+save [anchor]": [sys.executable, HERE / "direct_savedmodel.py", weights, out],
            "alexnet-export npy2savedmodel": [cli, "npy2savedmodel", weights, out, "--quiet"],
        }
        final = interleaved(commands, runs=args.runs, before=lambda: shutil.rmtree(out, ignore_errors=True))
        print(f"full-size weights, {args.runs} interleaved runs each, medians")
        report("npy -> SavedModel (whole process)", final, "direct build+save [anchor]")


if __name__ == "__main__":
    main()
