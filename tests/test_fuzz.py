"""Fuzz tier (issue: trust): mutated npy, HDF5, ONNX and TFLite files through the CLI, each in its own process.

Every outcome must be success or exit 2 with one line on the terminal: never a traceback, never a signal
(a segfault is exit -11 here), never more than :data:`MAX_RSS` of memory, never longer than :data:`TIMEOUT`.
The mutations (hypothesis, derandomised so CI sees the same cases on every run) flip, overwrite, insert
or truncate bytes, mostly where the files keep their structure (the first and last 4 KiB: npy header
and pickle opcodes, HDF5 superblock and object headers, protobuf graph, flatbuffer tables).

The default run is a fast slice (``ALEXNET_FUZZ_EXAMPLES`` examples per file kind, 6 by default);
``ALEXNET_FUZZ_EXAMPLES=200 pytest tests/test_fuzz.py`` is the long run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converters.weights import AlexNetWeights

EXAMPLES = int(os.environ.get("ALEXNET_FUZZ_EXAMPLES", "6"))
MAX_RSS = 1 << 30  # bytes; a clean run of these commands on these files peaks at ~150-300 MiB
TIMEOUT = 120
CLI = str(Path(sys.executable).with_name("alexnet-export"))
HEAD = 4096


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, small_weights: AlexNetWeights) -> dict[str, bytes]:
    from alexnet_export.exporters.onnx import export_onnx
    from alexnet_export.exporters.tflite import export_tflite
    from converters import write_npy
    from converters.hdf5 import write_h5

    folder = tmp_path_factory.mktemp("fuzz-seeds")
    write_npy(small_weights, folder / "w.npy")
    write_h5(small_weights, folder / "w.h5")
    export_onnx(small_weights, folder / "m.onnx")
    export_tflite(small_weights, folder / "m.tflite")
    return {name: (folder / name).read_bytes() for name in ("w.npy", "w.h5", "m.onnx", "m.tflite")}


@st.composite
def mutations(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    """1-4 edits: (kind, offset, bytes), offsets mostly in the first or last 4 KiB."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        region = draw(st.sampled_from(["head", "head", "tail", "anywhere"]))
        if region == "head":
            offset = draw(st.integers(0, min(HEAD, size) - 1))
        elif region == "tail":
            offset = draw(st.integers(max(0, size - HEAD), size - 1))
        else:
            offset = draw(st.integers(0, size - 1))
        kind = draw(st.sampled_from(["overwrite", "overwrite", "insert", "truncate", "flip"]))
        payload = draw(st.binary(min_size=1, max_size=8)) if kind != "truncate" else b""
        if kind == "flip":
            payload = bytes([1 << draw(st.integers(0, 7))])
        edits.append((kind, offset, payload))
    return edits


def apply(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, offset, payload in edits:
        offset = min(offset, max(len(out) - 1, 0))
        if kind == "overwrite":
            out[offset : offset + len(payload)] = payload
        elif kind == "insert":
            out[offset:offset] = payload
        elif kind == "flip" and out:
            out[offset] ^= payload[0]
        elif kind == "truncate":
            del out[offset:]
    return bytes(out)


# The CLI runs under this small launcher: a child forked from pytest itself would report pytest's own RSS
# as its peak (Linux carries the high-water mark across fork and exec), so the launcher forks it instead
# and reports that child's exit status and ru_maxrss on a marker line.
LAUNCHER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(f'@@outcome {done.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}', flush=True)"
)


def run_isolated(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """Exit status (negative: killed by that signal), output, and peak RSS in bytes of one CLI process."""
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, CLI, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        start_new_session=True,
    )
    timer = threading.Timer(TIMEOUT, lambda: os.killpg(process.pid, signal.SIGKILL))
    timer.start()
    try:
        output, _ = process.communicate()
    finally:
        timer.cancel()
    text = output.decode(errors="replace")
    lines = text.splitlines()
    marker = next((line for line in reversed(lines) if line.startswith("@@outcome ")), None)
    if marker is None:
        return 124, text, 0  # the launcher was killed: the command ran past TIMEOUT
    _, code, rss = marker.split()
    return int(code), "\n".join(line for line in lines if line is not marker) + "\n", int(rss) * 1024


def check_outcome(args: list[str], data: bytes, folder: Path, ok: Callable[[int], bool]) -> None:
    code, output, rss = run_isolated(args, folder)
    lines = [line for line in output.splitlines() if line.strip()]
    assert code >= 0, f"killed by signal {-code}: {args}; {output[-400:]}"
    assert code != 124, "timed out"
    assert "Traceback" not in output, output[-2000:]
    assert ok(code), (code, output[-600:])
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), output[-600:]
    assert rss < MAX_RSS, f"{rss / 2**20:.0f} MiB for {len(data)} bytes"


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    ("name", "command"),
    [("w.npy", "inspect"), ("w.h5", "inspect"), ("m.onnx", "extract"), ("m.tflite", "extract")],
)
def test_mutated_files_are_read_or_refused_in_one_line(
    name: str, command: str, seeds: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    seed = seeds[name]

    @FUZZ
    @given(edits=mutations(len(seed)))
    def case(edits: list[tuple[str, int, bytes]]) -> None:
        folder = tmp_path_factory.mktemp("fuzz")
        data = apply(seed, edits)
        (folder / name).write_bytes(data)
        args = [command, name] if command == "inspect" else [command, name, "out.npy"]
        check_outcome(args, data, folder, lambda code: code in (0, 2))
        if command == "extract" and not (folder / "out.npy").exists():
            assert sorted(p.name for p in folder.iterdir()) == [name]  # nothing half-written

    case()


def test_the_unmutated_seeds_pass(seeds: dict[str, bytes], tmp_path: Path) -> None:
    """The harness can fail: the seeds themselves must succeed, and a known-bad file must be exit 2."""
    for name, command in (("w.npy", "inspect"), ("m.onnx", "extract")):
        (tmp_path / name).write_bytes(seeds[name])
        args = [command, name] if command == "inspect" else [command, name, "out.npy"]
        code, output, rss = run_isolated(args, tmp_path)
        assert code == 0, output
        assert 0 < rss < 512 * 2**20, rss  # the command's own peak, not the (larger) pytest process's
    (tmp_path / "bad.npy").write_bytes(seeds["w.npy"][:100])
    code, output, _ = run_isolated(["inspect", "bad.npy"], tmp_path)
    assert code == 2 and output.startswith("error: ") and output.count("\n") == 1, output


@pytest.mark.parametrize("name", ["m.onnx", "m.tflite"])
def test_mutated_artifacts_through_verify_fail_or_are_refused_in_one_line(
    name: str, seeds: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """verify imports TensorFlow (seconds per process), so this slice is a third of the size."""
    seed = seeds[name]

    @settings(FUZZ, max_examples=max(2, EXAMPLES // 3))
    @given(edits=mutations(len(seed)))
    def case(edits: list[tuple[str, int, bytes]]) -> None:
        folder = tmp_path_factory.mktemp("fuzz-verify")
        data = apply(seed, edits)
        (folder / name).write_bytes(data)
        (folder / "w.npy").write_bytes(seeds["w.npy"])
        args = ["verify", name, "--weights", "w.npy", "--device", "cpu", "--batch", "2"]
        check_outcome(args, data, folder, lambda code: code in (0, 1, 2))

    case()
