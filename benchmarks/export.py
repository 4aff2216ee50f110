"""Full-size `alexnet-export export` (SavedModel + ONNX + fp32 TFLite + verify, 8 images) against doing it by hand.

The anchor is the sum of the by-hand steps, each a whole process run in the same session:
  1. direct_savedmodel.py: np.load + a tf.Module + tf.saved_model.save;
  2. python -m tf2onnx.convert --saved-model (opset 17), the documented route;
  3. direct_tflite.py: TFLiteConverter.from_concrete_functions (fp32);
  4. direct_check.py: the three artifacts on TF, ONNX Runtime and LiteRT, np.allclose against the SavedModel.
The steps run one after another, so the by-hand wall time is their sum and its peak RSS is their maximum.
`export` is one process; its peak RSS is that process's ru_maxrss. Runs are interleaved, each round starting one
command further along (the by-hand steps stay one block, in order); medians.
Targets (issue 6): export under 60 s and under 2.5 GB peak RSS on 2 cores; (issue 17) <= 8 s, <= 1.6 GB.
This checkout runs twice: with the small-conversion cache off, and with a warm one.
`--baseline DIR` adds the same `export` run from another checkout (e.g. `git worktree add DIR <commit>`),
imported ahead of the installed package, so this commit is measured side by side with that one;
`--no-by-hand` leaves out steps 1-4 (the baseline is then the anchor). The baseline runs with its cache off and warm
too, and each of this checkout's variants is compared with the baseline's same variant.
Usage: python benchmarks/export.py [WEIGHTS.npy] [--runs N] [--baseline DIR] [--no-by-hand]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from _measure import (
    FROM_CHECKOUT,
    cache_variants,
    measure_command,
    report,
    rotated,
    weights_file,
    weights_parser,
)

HERE = Path(__file__).parent
ANCHOR = "by hand: sum of 1-4 [anchor]"
BASELINE = "baseline checkout: export"


def _args() -> argparse.Namespace:
    parser = weights_parser(runs=2, baseline=True)
    parser.add_argument("--no-by-hand", action="store_true", help="skip the by-hand steps 1-4")
    return parser.parse_args()


def main() -> None:
    args = _args()
    cli = Path(sys.executable).parent / "alexnet-export"
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        by_hand = Path(tmp) / "by_hand"
        out = Path(tmp) / "export"
        sm, onnx, tflite = by_hand / "sm", by_hand / "alexnet.onnx", by_hand / "alexnet.tflite"
        commands = {
            "1 direct SavedModel": [sys.executable, HERE / "direct_savedmodel.py", weights, sm],
            "2 tf2onnx CLI --saved-model": [
                sys.executable, "-m", "tf2onnx.convert", "--saved-model", sm, "--output", onnx, "--opset", "17"
            ],
            "3 direct TFLiteConverter fp32": [sys.executable, HERE / "direct_tflite.py", weights, tflite, "fp32"],
            "4 direct check (TF, ORT, LiteRT)": [sys.executable, HERE / "direct_check.py", sm, onnx, tflite],
        }
        mine = [cli, "export", weights, out, "--batch", "8", "--force", "--quiet"]
        commands |= cache_variants("alexnet-export export", mine, Path(tmp) / "cache")
        if args.baseline is not None:
            base = [
                sys.executable, "-c", FROM_CHECKOUT, args.baseline.resolve(), "export", weights, Path(tmp) / "base",
                "--batch", "8", "--force", "--quiet",
            ]
            commands |= cache_variants(BASELINE, base, Path(tmp) / "cache-baseline")
        if args.no_by_hand:
            commands = {name: argv for name, argv in commands.items() if not name[0].isdigit()}

        steps = [name for name in commands if name[0].isdigit()]
        anchor = ANCHOR if steps else f"{BASELINE} (cache warm)"
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in [*commands, *([ANCHOR] if steps else [])]}
        blocks = ([steps] if steps else []) + [[name] for name in commands if name not in steps]
        for round_ in range(args.runs):  # the by-hand steps run in their order, as one block; blocks rotate
            shutil.rmtree(by_hand, ignore_errors=True)
            by_hand.mkdir()
            for name in [name for block in rotated(blocks, round_) for name in block]:
                runs[name].append(measure_command(commands[name], runs=1))
            if not steps:
                continue
            runs[ANCHOR].append(
                {
                    "seconds": sum(runs[name][-1]["seconds"] for name in steps),
                    "peak_rss_mb": max(runs[name][-1]["peak_rss_mb"] for name in steps),
                }
            )
        rows = {
            name: {key: statistics.median(r[key] for r in results) for key in ("seconds", "peak_rss_mb")}
            for name, results in runs.items()
        }
        print(f"full-size weights, {args.runs} interleaved runs, medians")
        report("npy -> SavedModel + ONNX + TFLite fp32 + check (whole processes)", rows, anchor)
        for variant in ("no cache", "cache warm"):
            row = rows[f"alexnet-export export ({variant})"]
            if args.baseline is not None:
                old = rows[f"{BASELINE} ({variant})"]  # a first run against a first run, warm against warm
                print(
                    f"\nthis checkout ({variant}) vs {args.baseline}: time x{row['seconds'] / old['seconds']:.3f}, "
                    f"peak RSS x{row['peak_rss_mb'] / old['peak_rss_mb']:.3f}"
                )
            print(
                f"export ({variant}): {row['seconds']:.1f} s (issue 17 target <= 8 s), peak RSS "
                f"{row['peak_rss_mb']:.0f} MiB = {row['peak_rss_mb'] * 2**20 / 1e9:.2f} GB (target <= 1.6 GB)"
            )


if __name__ == "__main__":
    main()
