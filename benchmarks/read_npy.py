"""Safe reader vs np.load(allow_pickle=True) on a full-size bvlc_alexnet.npy-layout file.

Usage: python benchmarks/read_npy.py [WEIGHTS.npy] [--runs N] [--baseline DIR]
Without WEIGHTS a full-size synthetic file is written to a temporary folder first. `--baseline DIR` adds the
reader of another checkout (e.g. `git worktree add DIR <commit>`), imported ahead of the installed package.
Target (issue 2): the safe reader within 1.5x of np.load's time and peak memory.
"""

from __future__ import annotations

import tempfile

from _measure import measure, np_load_anchor, report, weights_file, weights_parser


def main() -> None:
    args = weights_parser(baseline=True).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = weights_file(args.weights, tmp)
        timed = f"w = read_npy({str(path)!r})"
        rows = {
            "np.load(allow_pickle) [anchor]": np_load_anchor(path, runs=args.runs),
            "read_npy (safe, with sha256)": measure("from converters.bvlc_npy import read_npy", timed, runs=args.runs),
        }
        if args.baseline is not None:
            ahead = f"import sys; sys.path.insert(0, {str(args.baseline.resolve())!r})"
            setup = f"{ahead}\nfrom converters.bvlc_npy import read_npy"
            rows["baseline checkout: read_npy"] = measure(setup, timed, runs=args.runs)
        report("reading full-size weights", rows, "np.load(allow_pickle) [anchor]")


if __name__ == "__main__":
    main()
