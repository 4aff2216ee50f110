"""What verify and export no longer repeat (issue 17): each shortcut gives the same answer as the long way."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from alexnet_export import trust
from alexnet_export.stored import TILE
from alexnet_export.verify import bit_equal, make_inputs, verify, weight_check
from converters.weights import HASH_CHUNK, AlexNetWeights, carry_sha256, file_sha256


def test_bit_equal_compares_strided_views_block_by_block_and_bit_by_bit() -> None:
    rng = np.random.default_rng(0)
    mine = rng.standard_normal((TILE * 2 + 37, TILE + 5)).astype(np.float32)
    stored = np.ascontiguousarray(mine.T)  # what a TFLite file holds: (out, in)
    assert bit_equal(stored.T, mine)
    for row, col in ((0, 0), (TILE * 2 + 36, TILE + 4), (TILE + 1, 3)):  # first, last and an inner block
        changed = stored.copy()
        changed[col, row] = np.nextafter(changed[col, row], np.float32(np.inf))
        assert not bit_equal(changed.T, mine), (row, col)
    zeros, negative = np.zeros((TILE + 1, TILE + 1), np.float32), np.zeros((TILE + 1, TILE + 1), np.float32)
    negative[TILE, TILE] = -0.0
    assert not bit_equal(negative.T, zeros)  # equal as numbers, not as bits


def test_a_full_size_dense_kernel_is_read_across_its_strides_in_few_blocks() -> None:
    from alexnet_export.stored import strided, tiles
    from converters.arch import DEFAULT_ARCH, PRESETS, expected_kernel_shape, first_dense

    # Each block takes the GIL back once; beside TensorFlow's import that waits up to 5 ms a block, so the
    # largest dense kernel's transpose (fc6: 9216 x 4096) must not be cut into hundreds of them (256 x 256
    # gave 576).
    arch = PRESETS[DEFAULT_ARCH]
    shape = expected_kernel_shape(arch, first_dense(arch), arch.widths())
    view = np.empty(shape, np.float32).T
    assert strided(view) and 0 < len(list(tiles(view))) <= 64
    assert not strided(np.empty(shape[::-1], np.float32))  # a contiguous array is read in one call


def test_weight_check_finds_one_changed_value_in_a_tflite_dense_kernel(
    tmp_path: Path, small_weights: AlexNetWeights, small_artifacts: Path
) -> None:
    path = tmp_path / "m.tflite"
    shutil.copy(small_artifacts / "m.tflite", path)
    assert weight_check(path, "tflite", "fp32", small_weights).status == "bit-exact"
    kernel = small_weights["fc7"].kernel
    data = bytearray(path.read_bytes())
    at = data.find(np.ascontiguousarray(kernel.T).tobytes()[:64])  # fc7's (out, in) bytes begin here
    assert at > 0
    data[at + 4 * 7 : at + 4 * 8] = np.float32(kernel.T.reshape(-1)[7] + 1).tobytes()
    path.write_bytes(bytes(data))
    check = weight_check(path, "tflite", "fp32", small_weights)
    assert check.status == "mismatch" and check.mismatches == ("fc7/kernel (1 values differ, max 1)",)


def _resident_kib(path: Path) -> int:
    """KiB of this process's memory in its mappings of ``path`` (Linux: /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_the_tflite_weight_check_lets_go_of_the_file_pages_it_has_compared(
    tmp_path: Path, small_weights: AlexNetWeights, small_artifacts: Path
) -> None:
    path = tmp_path / "m.tflite"
    shutil.copy(small_artifacts / "m.tflite", path)
    size_kib = path.stat().st_size // 1024
    with trust.parsed_once():  # the weight check reads the mapping kept here
        whole = np.frombuffer(trust.read_tflite(path)._tab.Bytes, np.uint8)
        digest = hashlib.sha256(whole).hexdigest()  # every page read
        assert _resident_kib(path) >= size_kib - 8
        assert weight_check(path, "tflite", "fp32", small_weights).status == "bit-exact"
        assert _resident_kib(path) < size_kib // 4  # the tables and the pages at the arrays' ends stay
        assert hashlib.sha256(whole).hexdigest() == digest  # read again, from the file: the same bytes
        del whole
    anonymous = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)
    copy = anonymous.copy()
    trust.release_pages(anonymous)  # not a file's mapping: left alone (dropped, its pages would read as zeros)
    assert np.array_equal(anonymous, copy)


def test_verify_parses_an_onnx_file_once_and_lets_it_go(
    small_weights: AlexNetWeights, small_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[Path] = []
    real = trust._load_onnx

    def counting(path: Path) -> object:
        parsed.append(path)
        return real(path)

    monkeypatch.setattr(trust, "_load_onnx", counting)
    monkeypatch.setattr(trust, "_PASSED", set())  # as in a fresh process
    inputs = make_inputs(count=2, spec=small_weights.arch.input, fixtures=False)
    report = verify([small_artifacts / "m.onnx"], small_weights, inputs=inputs, device="cpu", include_graph=False)
    assert report.exit_code == 0, report.problems
    assert [c.status for c in report.weights] == ["bit-exact"]
    assert parsed == [small_artifacts / "m.onnx"]  # metadata, structure and weights from one parse
    assert trust._kept() is None  # and nothing is kept once verify is done


def test_a_renamed_file_keeps_its_digest_and_a_rewritten_one_is_hashed_again(tmp_path: Path) -> None:
    first = tmp_path / "a.bin"
    first.write_bytes(b"x" * 100)
    digest = file_sha256(first)
    before = os.stat(first)
    moved = tmp_path / "b.bin"
    os.rename(first, moved)
    carry_sha256(moved, digest, before)
    assert file_sha256(moved) == digest
    moved.write_bytes(b"y" * 100)  # same size, new content: the modification time moves on
    os.utime(moved, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert file_sha256(moved) != digest
    carry_sha256(moved, digest, before)  # a stale stat does not carry the old digest over
    assert file_sha256(moved) != digest


def test_extract_reads_onnx_external_data_beside_the_model_from_any_working_folder(
    tmp_path: Path, small_weights: AlexNetWeights, small_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnx

    from alexnet_export.extract import extract

    model = onnx.load(str(small_artifacts / "m.onnx"))
    onnx.external_data_helper.convert_model_to_external_data(model, location="m.data", size_threshold=0)
    (tmp_path / "model").mkdir()
    onnx.save(model, str(tmp_path / "model" / "m.onnx"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert extract(tmp_path / "model" / "m.onnx").bit_equal(small_weights)


def test_write_hashed_writes_the_pieces_and_knows_their_digest(tmp_path: Path) -> None:
    import hashlib

    from converters import weights as weights_mod
    from converters.weights import write_hashed

    pieces = [b"head", np.arange(1000, dtype=np.float32).data, memoryview(b"tail" * 7)]
    content = b"".join(bytes(memoryview(p).cast("B")) for p in pieces)
    path = tmp_path / "f.bin"
    digest = write_hashed(path, pieces, chunk=64)  # parts smaller than a piece
    assert path.read_bytes() == content and digest == hashlib.sha256(content).hexdigest()
    assert weights_mod._DIGESTS[weights_mod._digest_key(os.stat(path))] == digest == file_sha256(path)  # remembered


def test_export_in_two_verify_passes_reports_what_one_verify_of_everything_reports(
    tmp_path: Path, small_weights: AlexNetWeights
) -> None:
    from alexnet_export import runtimes
    from alexnet_export.export import export_all
    from alexnet_export.exporters import savedmodel

    saved: list[object] = []
    ran: list[object] = []
    save_module, graph_rows = savedmodel.save_module, runtimes.graph_rows
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(  # the export's SavedModel, not the one the converter's fallback at this width writes
            savedmodel, "save_module",
            lambda module, path: (str(tmp_path) in str(path) and saved.append(module)) or save_module(module, path),
        )
        patch.setattr(runtimes, "graph_rows", lambda w, **kw: ran.append(kw["module"]) or graph_rows(w, **kw))
        report = export_all(small_weights, out)  # ONNX and TFLite verified before the SavedModel is written
    assert len(saved) == 1 and ran == saved  # the graph rows ran the module that was saved, not a second one
    names = ["savedmodel", "alexnet.onnx", "alexnet_fp32.tflite"]
    inputs = make_inputs(count=8, spec=small_weights.arch.input)
    single = verify([out / name for name in names], small_weights, inputs=inputs)

    def rows(r: object) -> list[tuple[object, ...]]:
        return [(x.artifact, x.runtime, x.device, x.status, x.metrics) for x in r.rows]  # type: ignore[attr-defined]

    assert report.exit_code == 0 and rows(report) == rows(single)
    assert [row.format for row in report.rows[:2]] == ["graph", "graph"]  # the canonical graph first
    assert [(c.artifact, c.status) for c in report.weights] == [(c.artifact, c.status) for c in single.weights]
    assert [(c.artifact, c.status) for c in report.structures] == [(c.artifact, c.status) for c in single.structures]
    assert list(report.artifacts) == [str(out / name) for name in names] == list(single.artifacts)
    assert report.environment == single.environment


def test_fds_silenced_from_two_threads_ending_out_of_order_gives_stderr_back() -> None:
    import threading

    from alexnet_export.quiet import fds_silenced

    real = os.fstat(2)
    entered, first_left = threading.Event(), threading.Event()
    silenced_after_first_left: list[bool] = []

    def second() -> None:
        with fds_silenced(2):
            entered.set()
            first_left.wait(5)
            silenced_after_first_left.append(os.path.samestat(os.fstat(2), os.stat(os.devnull)))

    with fds_silenced(2):
        thread = threading.Thread(target=second)
        thread.start()
        entered.wait(5)
    first_left.set()  # the first block ended before the second
    thread.join(5)
    assert silenced_after_first_left == [True]  # still silenced while the second block runs
    assert os.path.samestat(os.fstat(2), real)


FAILING_VERIFY = """
import sys
import alexnet_export.verify as verify_module
from converters.errors import InputError

def refuse(*args, **kwargs):  # (export's first) verify, once TensorFlow's import is under way on its thread
    import time

    assert "tensorflow" not in sys.modules or not hasattr(sys.modules["tensorflow"], "Module")  # not imported yet
    while "tensorflow" not in sys.modules:
        time.sleep(0.001)
    raise InputError("the verify step failed on purpose")

verify_module.verify = refuse
sys.argv = ["alexnet-export", *sys.argv[1:]]
from alexnet_export.cli import main
main()
"""


@pytest.mark.parametrize("command", ["export", "verify"])
def test_an_error_while_tensorflow_imports_in_the_background_still_reaches_stderr(
    tmp_path: Path, small_npy: Path, command: str
) -> None:
    import subprocess
    import sys

    env = {**os.environ, "ALEXNET_EXPORT_CACHE": str(tmp_path / "cache")}
    exporting = ["export", small_npy, "--formats", "savedmodel,onnx"]  # ONNX from the cache: no TensorFlow before
    warm = subprocess.run([sys.executable, "-m", "alexnet_export", *exporting, tmp_path / "warm"], env=env, check=False)
    assert warm.returncode == 0
    argv = [*exporting, tmp_path / "out"] if command == "export" else ["verify", tmp_path / "warm", "--weights", small_npy]
    done = subprocess.run(
        [sys.executable, "-c", FAILING_VERIFY, *argv], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["error: the verify step failed on purpose"]
    assert not (tmp_path / "out").exists()


def test_export_of_bad_weights_gives_one_line_on_stderr(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "w.npy"
    bad.write_bytes(b"\x93NUMPY not really")
    done = subprocess.run(
        [sys.executable, "-m", "alexnet_export", "export", bad, tmp_path / "out"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), done.stderr
    assert not (tmp_path / "out").exists()


TWO_IMPORTS = """
import gc, sys
from alexnet_export.quiet import import_tensorflow, import_tensorflow_in_background

background = import_tensorflow_in_background()
while "tensorflow" not in sys.modules:  # the other thread has begun: the module is there, half made
    pass
import_tensorflow()  # must wait for that import, not take the half-made module
print(background.done(), gc.get_freeze_count() > 0)
background.result()
"""


def test_a_second_tensorflow_import_waits_for_the_one_in_the_background() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TWO_IMPORTS], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize(("groups", "embed"), [("native", False), ("split", False), ("dense", True)])
def test_the_savedmodel_structure_rebuilt_from_shapes_alone_is_the_exporters(
    tmp_path: Path, small_weights: AlexNetWeights, groups: str, embed: bool
) -> None:
    from alexnet_export.exporters.savedmodel import SavedModelOptions, export_savedmodel
    from alexnet_export.structure import check_structure

    export_savedmodel(small_weights, tmp_path / "sm", options=SavedModelOptions(groups, embed))
    check = check_structure(tmp_path / "sm", "savedmodel", small_weights)
    assert check.status == "matches", check.differences
    assert (check.content.groups, check.content.embed_preprocessing) == (groups, embed)


COLLECTIONS_DURING_THE_IMPORT = """
import gc, sys
if sys.argv[1] == "off":
    gc.disable()
from alexnet_export.quiet import import_tensorflow
starts = []
gc.callbacks.append(lambda phase, info: starts.append(info["generation"]) if phase == "start" else None)
import_tensorflow()
print(len(starts), gc.isenabled(), gc.get_freeze_count() > 100_000)
"""


@pytest.mark.parametrize("collector", ["on", "off"])
def test_tensorflow_imports_with_the_collector_off_and_leaves_it_as_it_was(collector: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", COLLECTIONS_DURING_THE_IMPORT, collector], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", str(collector == "on"), "True"]  # no collection walked the import's objects


def test_onnx_and_tflite_runtimes_go_with_their_runners_without_a_collection(
    tmp_path: Path, small_weights: AlexNetWeights
) -> None:
    """verify collects garbage only after TensorFlow's rows: it relies on these runtimes going on ``del``."""
    import gc
    from functools import partial

    from ai_edge_litert.interpreter import Interpreter
    from onnxruntime import InferenceSession

    from alexnet_export.exporters.onnx import export_onnx
    from alexnet_export.exporters.tflite import export_tflite
    from alexnet_export.parity import TOLERANCES
    from alexnet_export.reference import forward
    from alexnet_export.runtimes import artifact_rows
    from alexnet_export.verify import _run_rows

    export_onnx(small_weights, tmp_path / "m.onnx")
    export_tflite(small_weights, tmp_path / "m.tflite")
    images = make_inputs(count=2, spec=small_weights.arch.input).images
    expected = forward(small_weights, images)
    gc.collect()
    gc.disable()
    try:
        for name in ("m.onnx", "m.tflite"):
            rows = _run_rows(
                partial(artifact_rows, tmp_path / name), "cpu", name, "fp32", images, expected, TOLERANCES["fp32"]
            )
            assert [row.status for row in rows] == ["passed"]
            alive = [o for o in gc.get_objects() if isinstance(o, (InferenceSession, Interpreter))]
            assert alive == [], name
    finally:
        gc.enable()


RUNTIME_ORDER = """
import json, sys
from pathlib import Path
import alexnet_export.runtimes as runtimes
from alexnet_export.sources import read_weights
from alexnet_export.verify import make_inputs, verify

seen = []
for name in ("onnx_rows", "tflite_rows", "graph_rows", "savedmodel_rows"):
    def wrapped(*args, _real=getattr(runtimes, name), _name=name, **kwargs):
        seen.append([_name, "tensorflow" in sys.modules])
        return _real(*args, **kwargs)
    setattr(runtimes, name, wrapped)
folder = Path(sys.argv[1])
weights = read_weights(sys.argv[2])
paths = [folder / "savedmodel", folder / "alexnet.onnx", folder / "alexnet_fp32.tflite"]
report = verify(paths, weights, inputs=make_inputs(count=2, spec=weights.arch.input), device="cpu")
print(json.dumps({"seen": seen, "rows": [row.format for row in report.rows], "exit": report.exit_code}))
"""


def test_verify_runs_the_runtimes_that_need_no_tensorflow_before_importing_it(tmp_path: Path) -> None:
    """So they run while the CLI imports TensorFlow, and never on top of its memory; the report keeps its order.

    Width divisor 4: the narrowest at which TFLite placement (and so verify's structure check from the
    cached small conversions) applies; narrower weights need the converter, hence TensorFlow, to check.
    """
    import json
    import subprocess
    import sys

    env = {**os.environ, "ALEXNET_EXPORT_CACHE": str(tmp_path / "cache")}
    weights = tmp_path / "w.npy"
    for command in (["synthesize", weights, "--width-divisor", "4", "--num-classes", "17"],
                    ["export", weights, tmp_path / "out", "--device", "cpu", "-q"]):
        made = subprocess.run(
            [sys.executable, "-m", "alexnet_export", *command], env=env, check=False, capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr[-2000:]
    done = subprocess.run(
        [sys.executable, "-c", RUNTIME_ORDER, tmp_path / "out", weights], env=env, capture_output=True, text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["seen"] == [
        ["onnx_rows", False], ["tflite_rows", False], ["graph_rows", True], ["savedmodel_rows", True]
    ]
    assert found["rows"] == ["graph", "savedmodel", "onnx", "tflite"] and found["exit"] == 0


def test_an_artifact_runs_before_the_oracle_is_ready_and_waits_for_it_only_to_compare(
    small_artifacts: Path, small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from concurrent.futures import Future
    from dataclasses import replace
    from typing import Any

    import alexnet_export.runtimes as runtimes
    from alexnet_export.reference import forward

    inputs = make_inputs(count=2, spec=small_weights.arch.input)
    oracle: Future[np.ndarray] = Future()
    ready_when_run: list[bool] = []
    real = runtimes.onnx_rows

    def rows(path: Path) -> list[runtimes.Row]:
        found = real(path)

        def run(images: np.ndarray, inner: Any = found[0].run) -> np.ndarray:
            ready_when_run.append(oracle.done())
            oracle.set_result(forward(small_weights, inputs.images))
            return inner(images)

        return [replace(found[0], run=run), *found[1:]]

    monkeypatch.setattr(runtimes, "onnx_rows", rows)
    fallback = threading.Timer(20, lambda: oracle.done() or oracle.set_result(forward(small_weights, inputs.images)))
    fallback.start()  # a verify that waits for the oracle before running fails here instead of hanging
    try:
        report = verify([small_artifacts / "m.onnx"], small_weights, inputs=inputs, device="cpu",
                        include_graph=False, oracle=oracle)
    finally:
        fallback.cancel()
    assert ready_when_run == [False]
    assert [row.status for row in report.rows] == ["passed"] and report.exit_code == 0


def test_the_oracle_is_kept_per_weight_set_and_images_and_computed_again_for_anything_else(
    small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    import alexnet_export.verify as verify_module
    from alexnet_export import reference
    from alexnet_export.cache import CACHE_ENV
    from alexnet_export.reference import forward
    from converters.arch import PRESETS
    from converters.weights import Layer, with_arch

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    computed: list[int] = []

    def counted(weights: AlexNetWeights, images: np.ndarray) -> np.ndarray:
        computed.append(len(images))
        return forward(weights, images)

    monkeypatch.setattr(verify_module, "forward", counted)
    oracle = verify_module.oracle_logits
    images = make_inputs(count=2, spec=small_weights.arch.input).images
    first = oracle(small_weights, images)
    np.testing.assert_array_equal(first, forward(small_weights, images))
    again = oracle(small_weights, images)
    n = len(images)
    assert computed == [n] and again.dtype == np.float64 and again.tobytes() == first.tobytes()

    oracle(small_weights, images[:1])  # other images
    last = list(small_weights.layers)[-1]
    bias = small_weights[last].bias.copy()
    bias[0] = np.nextafter(bias[0], np.float32(np.inf))  # one bit of one weight
    changed = AlexNetWeights({**small_weights.layers, last: Layer(small_weights[last].kernel, bias)},
                             small_weights.arch)
    assert not np.array_equal(oracle(changed, images), first)
    guerzhoy = oracle(with_arch(small_weights, PRESETS["guerzhoy"]), images)  # another LRN, same arrays
    np.testing.assert_array_equal(guerzhoy, forward(small_weights, images, arch=PRESETS["guerzhoy"]))
    assert computed == [n, 1, n, n]

    edited = tmp_path / "reference.py"  # the oracle's code changed: its logits are computed again
    edited.write_text(Path(reference.__file__).read_text() + "# edited\n")
    real_file = reference.__file__
    monkeypatch.setattr(reference, "__file__", str(edited))
    oracle(small_weights, images)
    monkeypatch.setattr(reference, "__file__", real_file)
    assert computed == [n, 1, n, n, n]

    entries = sorted((tmp_path / "cache" / "oracle").iterdir())
    assert len(entries) == 5
    wrong = io.BytesIO()
    np.save(wrong, first.astype(np.float32))
    for index, entry in enumerate(entries):  # an entry that is not float64 logits of the batch's shape is not used
        entry.write_bytes(wrong.getvalue() if index % 2 else b"not an npy")
    np.testing.assert_array_equal(oracle(small_weights, images), first)
    assert computed == [n, 1, n, n, n, n]
    monkeypatch.setenv(CACHE_ENV, "off")
    oracle(small_weights, images)
    oracle(small_weights, images)
    assert computed == [n, 1, n, n, n, n, n, n]


@pytest.mark.parametrize("size", [0, 1, HASH_CHUNK, HASH_CHUNK + 5])
def test_file_sha256_reads_in_chunks_and_hashes_every_byte(tmp_path: Path, size: int) -> None:
    import hashlib

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    target = tmp_path / "f.bin"
    target.write_bytes(data)
    assert file_sha256(target) == hashlib.sha256(data).hexdigest()


ONNX_ONLY = """
import gc, sys
from pathlib import Path
from alexnet_export.sources import read_weights
from alexnet_export.verify import make_inputs, verify

weights = read_weights(sys.argv[2])
report = verify([Path(sys.argv[1])], weights, inputs=make_inputs(count=2, spec=weights.arch.input), device="cpu",
                include_graph=False)
print(report.exit_code, "tensorflow" in sys.modules, gc.get_freeze_count() > 100_000)
"""


def test_verify_without_tensorflow_rows_imports_it_for_the_report_through_the_shared_import(
    small_artifacts: Path, small_npy: Path
) -> None:
    """The report's environment names TensorFlow's GPUs: imported silenced and frozen, as everywhere else."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", ONNX_ONLY, small_artifacts / "m.onnx", small_npy], capture_output=True, text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "True", "True"]
    assert "oneDNN" not in done.stderr and "cpu_feature_guard" not in done.stderr, done.stderr[-2000:]


def test_export_verifies_its_onnx_file_while_the_tflite_file_is_being_written(
    tmp_path: Path, small_weights: AlexNetWeights
) -> None:
    import threading

    from alexnet_export import runtimes
    from alexnet_export.export import export_all
    from alexnet_export.exporters import tflite

    loading = threading.Event()
    waited: list[bool] = []
    onnx_rows, export_tflite = runtimes.onnx_rows, tflite.export_tflite

    def marked_onnx_rows(path: Path) -> list[runtimes.Row]:
        loading.set()
        return onnx_rows(path)

    def waiting_export_tflite(*args: object, **kwargs: object) -> object:
        waited.append(loading.wait(30))  # ONNX Runtime loads the ONNX file before this export has begun
        return export_tflite(*args, **kwargs)  # type: ignore[arg-type]

    from alexnet_export import export

    released: list[tuple[str, bool]] = []
    release_memory = export.release_memory

    def recorded_release(*, collect: bool = True) -> None:
        released.append((threading.current_thread().name, collect))
        release_memory(collect=collect)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtimes, "onnx_rows", marked_onnx_rows)
        patch.setattr(tflite, "export_tflite", waiting_export_tflite)
        patch.setattr(export, "release_memory", recorded_release)
        report = export_all(small_weights, tmp_path / "out", device="cpu")
    assert waited == [True]
    beside = [collect for name, collect in released if name.startswith("alexnet-export-verify-onnx")]
    assert beside == [False]  # its memory trimmed when it ends, without a collection beside TensorFlow's import
    assert report.exit_code == 0, report.problems
    assert [row.format for row in report.rows] == ["graph", "savedmodel", "onnx", "tflite"]
    assert {"packages", "onnxruntime_providers", "tf_gpus"} <= set(report.environment)  # completed when merged


def test_parsed_once_on_two_threads_keeps_each_threads_models_for_its_whole_block(
    small_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    path = small_artifacts / "m.onnx"
    parsed: list[str] = []
    real = trust._load_onnx
    monkeypatch.setattr(trust, "_load_onnx", lambda p: parsed.append(threading.current_thread().name) or real(p))
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with trust.parsed_once():
            trust.load_onnx(path)
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with trust.parsed_once():
            second_in.set()
            first_out.wait(10)  # the other thread has left its block: this one's must still keep what it reads
            trust.load_onnx(path)
            trust.load_onnx(path)

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert parsed == ["first", "second"]


def test_release_memory_can_trim_the_heap_without_a_collection() -> None:
    import gc

    from alexnet_export.quiet import release_memory

    phases: list[str] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        phases.append(phase)

    enabled = gc.isenabled()
    gc.disable()  # no automatic collection in between: only what release_memory asks for is seen
    gc.callbacks.append(callback)
    try:
        release_memory(collect=False)
        assert phases == []
        release_memory()
        assert phases == ["start", "stop"]
    finally:
        gc.callbacks.remove(callback)
        if enabled:
            gc.enable()
