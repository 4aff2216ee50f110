"""One `verify()` call of every artifact in an export folder, in one process: this checkout next to a baseline.

Issue 17's "verify of the three artifacts" as it was first measured: in a process that has imported TensorFlow
and read the weights (neither timed), one call of `alexnet_export.verify.verify` on the folder's SavedModel,
ONNX and TFLite files, with its own oracle, structure checks, weight checks, runtimes and file digests. Each
run is a fresh process (its first call, as `alexnet-export verify` makes it); each checkout has its own
structure cache, warmed by one untimed run. Besides the wall time, the call's CPU seconds (user + system, all
threads) and its minor page faults: the CPU seconds over the machine's cores are what the call would take if
no step ever waited for another. And the process's peak resident memory during the call: Linux's high-water
mark, reset just before it (``/proc/self/clear_refs``; "n/a" where that cannot be done). Runs are interleaved,
each round starting with the next checkout; medians.
Usage: python benchmarks/verify_call.py EXPORT_DIR WEIGHTS.npy [--runs N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from _measure import checkout_rounds, child_result

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from alexnet_export.quiet import import_tensorflow
import_tensorflow()
from alexnet_export.sources import read_weights
from alexnet_export.verify import make_inputs, verify

weights = read_weights(sys.argv[2])
folder = Path(sys.argv[3])
paths = [folder / "savedmodel", folder / "alexnet.onnx", *sorted(folder.glob("alexnet_*.tflite"))]
inputs = make_inputs(count=8, spec=weights.arch.input)
def high_water_mib():
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return -1.0
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024

try:
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from the resident size
    resettable = True
except OSError:
    resettable = False
before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
report = verify(paths, weights, inputs=inputs, device="cpu")
seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
peak = high_water_mib() if resettable else -1.0
assert report.exit_code == 0, report.problems
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
faults = after.ru_minflt - before.ru_minflt
print("CALL " + json.dumps(
    {"seconds": seconds, "cpu": cpu, "faults_mib": faults * resource.getpagesize() / 2**20, "peak_mib": peak}
))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("weights", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to run side by side")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this checkout": here}
    if args.baseline:
        checkouts[f"baseline {args.baseline}"] = args.baseline.resolve()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        results = checkout_rounds(
            checkouts,
            lambda checkout, env, _: child_result(CHILD, [checkout, args.weights, args.export_dir], "CALL", env),
            runs=args.runs,
            folder=Path(tmp),
        )
    print(f"one verify() of {args.export_dir}, {args.runs} interleaved runs, medians; {cores} cores")
    print(f"{'':48} {'wall s':>7} {'CPU s':>7} {'CPU s / cores':>14} {'page faults MiB':>16} {'peak MiB':>9}")
    medians = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}
    for name, row in medians.items():
        peak = f"{row['peak_mib']:9.0f}" if row["peak_mib"] >= 0 else f"{'n/a':>9}"
        print(
            f"{name:48} {row['seconds']:7.3f} {row['cpu']:7.2f} {row['cpu'] / cores:14.2f} "
            f"{row['faults_mib']:16.0f} {peak}"
        )
    if len(medians) > 1:
        mine, base = medians["this checkout"], list(medians.values())[1]
        print(f"\nwall x{mine['seconds'] / base['seconds']:.3f} of the baseline's (issue 17: <= 2.5 s)")
        if mine["peak_mib"] >= 0 and base["peak_mib"] >= 0:
            print(f"peak x{mine['peak_mib'] / base['peak_mib']:.3f} of the baseline's")


if __name__ == "__main__":
    main()
