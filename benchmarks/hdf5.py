"""Full-size npy -> h5 conversion and h5 load, next to np.load(allow_pickle) of the npy (the anchor).

Usage: python benchmarks/hdf5.py [WEIGHTS.npy] [--runs N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _measure import measure, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", nargs="?", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        npy = args.weights or Path(tmp) / "synthetic_alexnet.npy"
        if args.weights is None:
            from converters.bvlc_npy import write_npy
            from converters.synthetic import synthesize

            write_npy(synthesize(), npy)
        h5 = Path(tmp) / "w.h5"
        rows = {
            "np.load(allow_pickle) [anchor]": measure(
                "import numpy as np, warnings; warnings.simplefilter('ignore')",
                f"d = np.load({str(npy)!r}, allow_pickle=True, encoding='latin1').item()",
                runs=args.runs,
            ),
            "npy -> h5 (read_npy + write_h5)": measure(
                "from converters.bvlc_npy import read_npy; from converters.hdf5 import write_h5",
                f"write_h5(read_npy({str(npy)!r}), {str(h5)!r}, force=True)",
                runs=args.runs,
            ),
            "h5 load (read_h5, checksums)": measure(
                "from converters.hdf5 import read_h5", f"w = read_h5({str(h5)!r})", runs=args.runs
            ),
        }
        report("full-size weights: HDF5", rows, "np.load(allow_pickle) [anchor]")


if __name__ == "__main__":
    main()
