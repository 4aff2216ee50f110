"""Safe reader vs np.load(allow_pickle=True) on a full-size bvlc_alexnet.npy-layout file.

Usage: python benchmarks/read_npy.py [WEIGHTS.npy] [--runs N]
Without WEIGHTS a full-size synthetic file is written to a temporary folder first.
Target (issue 2): the safe reader within 1.5x of np.load's time and peak memory.
"""

from __future__ import annotations

import tempfile

from _measure import measure, np_load_anchor, parse_args, report, weights_file


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = weights_file(args.weights, tmp)
        rows = {
            "np.load(allow_pickle) [anchor]": np_load_anchor(path, runs=args.runs),
            "read_npy (safe, with sha256)": measure(
                "from converters.bvlc_npy import read_npy", f"w = read_npy({str(path)!r})", runs=args.runs
            ),
        }
        report("reading full-size weights", rows, "np.load(allow_pickle) [anchor]")


if __name__ == "__main__":
    main()
