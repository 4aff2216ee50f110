"""Run a snippet in fresh processes and collect its wall time and the process's peak RSS.

Each run is a new interpreter, so peak RSS belongs to that run alone. ``setup`` is not timed;
``timed`` is. Figures are medians over runs, printed next to the anchor's from the same session.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHILD = """
import json, resource, time, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
{setup}
start = time.perf_counter()
{timed}
seconds = time.perf_counter() - start
print("MEASURE " + json.dumps({{"seconds": seconds,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def measure(setup: str, timed: str, *, runs: int) -> dict[str, float]:
    """Median seconds and median peak RSS (MiB) of ``timed`` over ``runs`` fresh processes."""
    seconds, peaks = [], []
    code = CHILD.format(setup=textwrap.dedent(setup), timed=textwrap.dedent(timed))
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        line = next(row for row in out.stdout.splitlines() if row.startswith("MEASURE "))
        result = json.loads(line[len("MEASURE ") :])
        seconds.append(result["seconds"])
        peaks.append(result["peak_rss_mb"])
    return {"seconds": statistics.median(seconds), "peak_rss_mb": statistics.median(peaks)}


def report(title: str, rows: dict[str, dict[str, float]], anchor: str) -> None:
    """Print each row with its ratio to the anchor row."""
    base = rows[anchor]
    print(f"\n{title}")
    print(f"{'':40} {'median s':>10} {'peak RSS MiB':>13} {'time/anchor':>12} {'RSS/anchor':>11}")
    for name, row in rows.items():
        print(
            f"{name:40} {row['seconds']:10.3f} {row['peak_rss_mb']:13.0f} "
            f"{row['seconds'] / base['seconds']:12.2f} {row['peak_rss_mb'] / base['peak_rss_mb']:11.2f}"
        )


# Runs the CLI of another checkout (argv[1]) as its console script does: its folder first on sys.path, ahead of
# the installed package.
FROM_CHECKOUT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'alexnet-export'; "
    "from alexnet_export._entry import main; main()"
)

WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
if done.returncode:
    sys.stderr.write(done.stderr.decode()[-3000:])
    sys.exit(done.returncode)
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure_command(argv: list[str], *, runs: int) -> dict[str, float]:
    """Median wall seconds and peak RSS (MiB) of a whole command, each run in its own wrapper."""
    seconds, peaks = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", WRAPPER, *map(str, argv)], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"{argv} failed: {out.stderr[-3000:]}")
        result = json.loads(out.stdout)
        seconds.append(result["seconds"])
        peaks.append(result["peak_rss_mb"])
    return {"seconds": statistics.median(seconds), "peak_rss_mb": statistics.median(peaks)}


def interleaved(
    commands: dict[str, list[Any]], *, runs: int, before: Callable[[], None] = lambda: None
) -> dict[str, dict[str, float]]:
    """Median seconds and peak RSS of each command, run in turn ``runs`` times so noise hits all alike.

    Each round starts one command further along, so no command always runs right after the same one: on
    this VM a process that follows one which has just freed a lot of memory was seen to run faster (the host
    takes freed guest pages back after a while, and touching a page it has taken back costs a fault), which
    let the same commit measure x0.93 of itself when it always ran second. ``before`` runs ahead of every
    command (e.g. to remove the previous output).
    """
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for round_ in range(runs):
        for name in rotated(list(commands), round_):
            before()
            rows[name].append(measure_command(commands[name], runs=1))
    return {
        name: {key: statistics.median(r[key] for r in results) for key in ("seconds", "peak_rss_mb")}
        for name, results in rows.items()
    }


def rotated(items: list[Any], round_: int) -> list[Any]:
    """``items`` starting at ``round_`` (modulo their number): round r of an interleaved benchmark (see
    :func:`interleaved`)."""
    start = round_ % len(items) if items else 0
    return items[start:] + items[:start]


def cache_variants(name: str, argv: list[Any], cache: Path) -> dict[str, list[Any]]:
    """``argv`` twice: with the small-conversion cache off (a first run) and with ``cache``, warmed by one untimed run.

    This checkout caches the two small TFLite conversions placement starts from; a first run on a
    machine pays for them, later runs do not. Both are reported.
    """
    cold = ["env", "ALEXNET_EXPORT_CACHE=off", *argv]
    return {f"{name} (no cache)": cold, f"{name} (cache warm)": warmed(argv, cache)}


def warmed(argv: list[Any], cache: Path) -> list[Any]:
    """``argv`` with its own structure cache ``cache``, filled by one untimed run (a baseline checkout gets one too)."""
    warm = ["env", f"ALEXNET_EXPORT_CACHE={cache}", *argv]
    subprocess.run([str(a) for a in warm], check=True, capture_output=True)
    return warm


def child_result(code: str, args: list[Any], tag: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``code`` in a fresh interpreter with ``args``: the JSON it printed on its line starting ``TAG ``."""
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    line = next(row for row in done.stdout.splitlines() if row.startswith(f"{tag} "))
    return dict(json.loads(line[len(tag) + 1 :]))


def checkout_rounds(
    checkouts: dict[str, Path],
    call: Callable[[Path, dict[str, str], str], dict[str, float]],
    *,
    runs: int,
    folder: Path,
) -> dict[str, list[dict[str, float]]]:
    """``call(checkout, env, label)`` for each checkout in ``runs`` rotated rounds, each with its own structure cache.

    Each checkout's cache (under ``folder``) is filled by one untimed call first, labelled ``warm``; the timed
    calls are labelled with the checkout's name. Returns every timed call's result, per checkout.
    """
    envs = {
        name: {**os.environ, "ALEXNET_EXPORT_CACHE": str(folder / f"cache-{i}"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        for i, name in enumerate(checkouts)
    }
    for name, checkout in checkouts.items():
        call(checkout, envs[name], "warm")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for round_ in range(runs):
        for name in rotated(list(checkouts), round_):
            results[name].append(call(checkouts[name], envs[name], name))
    return results


def weights_parser(runs: int = 5, *, baseline: bool = False) -> argparse.ArgumentParser:
    """The arguments every weights benchmark takes: an optional WEIGHTS file, --runs, and --baseline DIR."""
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", nargs="?", type=Path, help="default: a full-size synthetic file")
    parser.add_argument("--runs", type=int, default=runs)
    if baseline:
        parser.add_argument("--baseline", type=Path, help="another checkout to run side by side")
    return parser


def parse_args(runs: int = 5) -> argparse.Namespace:
    """:func:`weights_parser`'s arguments, without --baseline."""
    return weights_parser(runs).parse_args()


def weights_file(given: Path | None, folder: str) -> Path:
    """``given``, or a full-size synthetic file written into ``folder`` when none was given."""
    if given is not None:
        return given
    from converters.bvlc_npy import write_npy
    from converters.synthetic import synthesize

    path = Path(folder) / "synthetic_alexnet.npy"
    write_npy(synthesize(), path)
    return path


def np_load_anchor(path: Path, *, runs: int) -> dict[str, float]:
    """The anchor every weight-reading figure is compared with: np.load(allow_pickle=True)."""
    return measure(
        "import numpy as np, warnings; warnings.simplefilter('ignore')",
        f"d = np.load({str(path)!r}, allow_pickle=True, encoding='latin1').item()",
        runs=runs,
    )
