"""Full-size npy -> h5 conversion and h5 load, next to np.load(allow_pickle) of the npy (the anchor).

Also the Keras 3 ``.weights.h5``: writing it (TensorFlow imported outside the timed part: building
the Keras model + ``model.save_weights``) and reading it back with the toolkit's reader (h5py, no Keras).

Usage: python benchmarks/hdf5.py [WEIGHTS.npy] [--runs N]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _measure import measure, np_load_anchor, parse_args, report, weights_file


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        npy = weights_file(args.weights, tmp)
        h5 = Path(tmp) / "w.h5"
        keras_h5 = Path(tmp) / "w.weights.h5"
        rows = {
            "np.load(allow_pickle) [anchor]": np_load_anchor(npy, runs=args.runs),
            "npy -> h5 (read_npy + write_h5)": measure(
                "from converters.bvlc_npy import read_npy; from converters.hdf5 import write_h5",
                f"write_h5(read_npy({str(npy)!r}), {str(h5)!r}, force=True)",
                runs=args.runs,
            ),
            "h5 load (read_h5, checksums)": measure(
                "from converters.hdf5 import read_h5", f"w = read_h5({str(h5)!r})", runs=args.runs
            ),
            "npy -> Keras .weights.h5 (TF imported)": measure(
                "from converters.bvlc_npy import read_npy; from alexnet_export.keras_model import write_keras_weights",
                f"write_keras_weights(read_npy({str(npy)!r}), {str(keras_h5)!r}, force=True)",
                runs=args.runs,
            ),
            "Keras .weights.h5 load (read_h5)": measure(
                "from converters.hdf5 import read_h5", f"w = read_h5({str(keras_h5)!r})", runs=args.runs
            ),
        }
        report("full-size weights: HDF5", rows, "np.load(allow_pickle) [anchor]")


if __name__ == "__main__":
    main()
