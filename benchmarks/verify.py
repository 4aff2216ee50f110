"""Full-size `alexnet-export verify` of an export folder (SavedModel + ONNX + fp32 TFLite), next to other checkouts.

The anchor is the first `--baseline` checkout (`git worktree add DIR <commit>`), run from its own tree
ahead of the installed package, interleaved with this checkout; whole processes, medians. With no
baseline, this checkout is the anchor. Target (issue 17): verify of the three artifacts <= 2.5 s.
Usage: python benchmarks/verify.py EXPORT_DIR WEIGHTS.npy [--runs N] [--baseline DIR ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _measure import FROM_CHECKOUT, cache_variants, interleaved, report, warmed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, action="append", default=[])
    args = parser.parse_args()
    verify = ["verify", args.export_dir, "--weights", args.weights, "--device", "cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            f"checkout {d}: verify (cache warm)": warmed(
                [sys.executable, "-c", FROM_CHECKOUT, d.resolve(), *verify], Path(tmp) / f"cache-baseline-{i}"
            )
            for i, d in enumerate(args.baseline)
        }
        commands |= cache_variants(
            "this checkout: verify", [Path(sys.executable).parent / "alexnet-export", *verify], Path(tmp) / "cache"
        )
        rows = interleaved(commands, runs=args.runs)
    print(f"full-size artifacts, {args.runs} interleaved runs, medians")
    report("verify of every artifact in the folder (whole processes)", rows, next(iter(commands)))


if __name__ == "__main__":
    main()
