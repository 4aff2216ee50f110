"""TensorFlow's import through `alexnet_export.quiet.import_tensorflow` next to a bare `import tensorflow` [anchor].

The toolkit's import runs with the garbage collector off and freezes what the import made, so the
collections that free each export step's buffers no longer walk those objects. Each run is a fresh
process that times the import, then one `gc.collect()` after it (the price of every collection that
follows). Runs are interleaved; medians.
Usage: python benchmarks/tf_import.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics

from _measure import child_result

CHILD = r"""
import gc, json, sys, time
start = time.perf_counter()
if sys.argv[1] == "bare":
    import tensorflow
else:
    from alexnet_export.quiet import import_tensorflow
    import_tensorflow()
imported = time.perf_counter() - start
start = time.perf_counter()
gc.collect()
collected = time.perf_counter() - start
print("TIMES " + json.dumps({"import": imported, "collect": collected, "tracked": len(gc.get_objects())}))
"""

ROWS = {"bare": "import tensorflow [anchor]", "toolkit": "quiet.import_tensorflow()"}


def run(kind: str) -> dict[str, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return child_result(CHILD, [kind], "TIMES", env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in ROWS}
    for _ in range(args.runs):
        for kind in ROWS:
            results[kind].append(run(kind))
    print(f"{args.runs} interleaved runs, medians (one process each)")
    print(f"{'':28} {'import s':>9} {'next gc.collect s':>18} {'objects in its view':>20}")
    medians = {
        kind: {key: statistics.median(r[key] for r in runs) for key in ("import", "collect", "tracked")}
        for kind, runs in results.items()
    }
    for kind, row in medians.items():
        print(f"{ROWS[kind]:28} {row['import']:9.3f} {row['collect']:18.4f} {row['tracked']:20.0f}")
    bare, mine = medians["bare"], medians["toolkit"]
    print(f"\nimport: x{mine['import'] / bare['import']:.3f} of the bare import; "
          f"next collection {mine['collect'] * 1000:.1f} ms against {bare['collect'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
