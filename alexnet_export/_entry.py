"""The console script: checks that ``converters`` is this project's before the CLI imports it."""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run the CLI, or say in one line (exit 2) that another distribution's ``converters`` shadows ours."""
    # numpy's OpenBLAS threads spin for 2^28 cycles after each product before they sleep; the float64
    # oracle's many products then keep them spinning on the cores that TensorFlow's import and the
    # runtimes need. 2^4 lets them sleep at once. Same threads, same partition: the oracle's bits are
    # unchanged (sha256 of its logits compared). Read when OpenBLAS loads, so before numpy is imported.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    # TensorFlow's oneDNN CPU allocator keeps what it frees in a BFC pool for the life of the process: the
    # fake feed tensors of tf2onnx's grappler pass (one per weight placeholder) and the SavedModel's
    # variables stayed resident under everything after them. With the system allocator they go back to the
    # OS (benchmarks/export.py, first run: 1,509 MiB peak against 1,759 MiB before); the kernels and their
    # results are the same (report rows and artifact bytes compared). Read when TensorFlow makes its
    # allocator, so before it is imported.
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    from alexnet_export import converters_problem

    problem = converters_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from alexnet_export.cli import main as run

    run()
