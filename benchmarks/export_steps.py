"""Where `export` spends its time, step by step, in one process: this checkout next to a baseline checkout.

Each run is a fresh process that imports TensorFlow and reads the weights (not timed), then calls
`export_all` with a progress reporter that records every step's seconds. The verify steps' sum is what export
waits for verify, the figure of issue 17 ("verify of the three artifacts <= 2.5 s"). Each `verify()` call is also
timed from its start to its end, on whatever thread it runs: export verifies its ONNX file on a thread of its
own, beside the TFLite export, so that call shares the cores with it and its time overlaps the TFLite steps.
Each checkout's own structure cache is warmed by one untimed run. Runs are interleaved, each round starting with
the next checkout; medians.
Usage: python benchmarks/export_steps.py [WEIGHTS.npy] [--runs N] [--baseline DIR]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _measure import checkout_rounds, child_result, weights_file, weights_parser

CALLS = "verify() calls, each start to end, summed (they may overlap)"
CHILD = r"""
CALLS = "verify() calls, each start to end, summed (they may overlap)"
import json, re, sys, time
from contextlib import contextmanager
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from alexnet_export.cli import import_tensorflow
import_tensorflow()
from alexnet_export.export import export_all
from alexnet_export.sources import read_weights

steps = {}

class Recording:
    enabled = True

    @contextmanager
    def step(self, message):
        start = time.perf_counter()
        yield
        name = re.sub(r"\S*/", "", message)  # folders (temporary ones included) left out
        steps[name] = steps.get(name, 0.0) + time.perf_counter() - start

import alexnet_export.verify
calls = []
plain_verify = alexnet_export.verify.verify

def timed_verify(*args, **kwargs):  # export imports verify when it runs: this is the one it calls
    begun = time.perf_counter()
    try:
        return plain_verify(*args, **kwargs)
    finally:
        calls.append(time.perf_counter() - begun)

alexnet_export.verify.verify = timed_verify
weights = read_weights(sys.argv[2])
start = time.perf_counter()
report = export_all(weights, Path(sys.argv[3]), device="cpu", force=True, progress=Recording())
steps["export_all (total)"] = time.perf_counter() - start
steps[CALLS] = sum(calls)
assert report.exit_code == 0, report.problems
print("STEPS " + json.dumps(steps))
"""


def main() -> None:
    args = weights_parser(runs=3, baseline=True).parse_args()
    here = Path(__file__).resolve().parent.parent
    checkouts = {"this checkout": here} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, tmp)
        results = checkout_rounds(
            checkouts,
            lambda checkout, env, label: child_result(
                CHILD, [checkout, weights, Path(tmp) / label.replace(" ", "-")], "STEPS", env
            ),
            runs=args.runs,
            folder=Path(tmp),
        )
    print(f"full-size weights, {args.runs} interleaved runs, medians (seconds, one process)")
    for name, runs in results.items():
        print(f"\n{name}")
        for step in runs[0]:
            print(f"  {step:64} {statistics.median(r.get(step, 0.0) for r in runs):7.2f}")
        verifying = [sum(t for s, t in r.items() if s.startswith("verifying")) for r in runs]
        waited = statistics.median(verifying)
        print(f"  {'verify steps together: what export waits (issue 17: <= 2.5 s)':64} {waited:7.2f}")


if __name__ == "__main__":
    main()
