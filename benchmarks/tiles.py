"""fc6's transpose read in blocks (TFLite placement, verify's compare), alone and beside a GIL-bound thread.

A TFLite dense kernel is the transpose of the source's, so placement copies fc6's 151 MB across its strides and
verify compares it back, block by block (`alexnet_export.stored.tiles`). Each block is one numpy call, which
releases the GIL and must take it back; beside a thread that holds the GIL (in `export`, TensorFlow's import),
taking it back waits up to the interpreter's switch interval (5 ms), once per block. This prints both figures for
several block sizes, next to the anchor: one numpy call over the whole view. One process; minimum of 3 runs alone,
one run beside the GIL-bound thread (its figure is the point).
Usage: python benchmarks/tiles.py
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from alexnet_export import stored
from alexnet_export.verify import bit_equal
from converters.arch import DEFAULT_ARCH, PRESETS, expected_kernel_shape, first_dense


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _beside_a_gil_bound_thread(run: Callable[[], object]) -> float:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        return _seconds(run)
    finally:
        stop.set()
        thread.join()


def main() -> None:
    arch = PRESETS[DEFAULT_ARCH]
    dense = first_dense(arch)  # bvlc-alexnet's fc6, the largest kernel
    shape = expected_kernel_shape(arch, dense, arch.widths())
    source = np.random.default_rng(0).standard_normal(shape).astype(np.float32)  # (in, out)
    stored_layout = np.ascontiguousarray(source.T)  # (out, in), as a TFLite file holds it
    out = np.empty_like(stored_layout)

    def copy_in_tiles() -> None:
        view = source.T
        for block in stored.tiles(view):
            np.copyto(out[block], view[block])

    def compare_in_tiles() -> bool:
        return bit_equal(stored_layout.T, source)

    print(f"{dense} of {arch.name} ({shape[0]} x {shape[1]} float32) across its strides; seconds")
    print(f"{'':44} {'alone':>8} {'beside a GIL-bound thread':>26}")
    anchors = {
        "copy, one np.copyto [anchor]": lambda: np.copyto(out, source.T),
        "compare, one np.array_equal [anchor]": lambda: np.array_equal(stored_layout.T.view(np.uint32),
                                                                       source.view(np.uint32)),
    }
    for name, run in anchors.items():
        run()
        print(f"{name:44} {min(_seconds(run) for _ in range(3)):8.3f} {_beside_a_gil_bound_thread(run):26.3f}")
    chosen = stored.TILE
    try:
        for tile in (256, 512, 1024, 2048):
            stored.TILE = tile
            mark = " (stored.TILE)" if tile == chosen else ""
            for label, run in (("copy", copy_in_tiles), ("compare", compare_in_tiles)):
                run()
                name = f"{label}, {tile} x {tile} blocks{mark}"
                print(f"{name:44} {min(_seconds(run) for _ in range(3)):8.3f} {_beside_a_gil_bound_thread(run):26.3f}")
    finally:
        stored.TILE = chosen


if __name__ == "__main__":
    main()
