"""The weightless structures (TFLite small conversions, tf2onnx's graph) are cached on disk, trusted only when private and valid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorflow")

from alexnet_export.cache import CACHE_ENV, cache_dir
from alexnet_export.exporters import tflite
from alexnet_export.exporters.tflite import TFLiteOptions, convert
from converters.synthetic import synthesize
from converters.weights import AlexNetWeights
from tests.conftest import SMALL


@pytest.fixture(scope="module")
def quarter() -> AlexNetWeights:
    """Wide enough for placement's smaller widths (the width/8 set is not)."""
    return synthesize(seed=5, width_divisor=4, num_classes=10)


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """A fresh cache folder and process memory; the converter runs counted."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(tflite, "_SMALL", {})
    calls: list[Any] = []
    real = tflite._convert_with_converter

    def counting(*args: Any, **kwargs: Any) -> bytes:
        if kwargs.get("savedmodel") is None:  # not its own second step
            calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(tflite, "_convert_with_converter", counting)
    return calls


def test_a_second_process_places_from_the_cache_with_the_same_bytes(
    counted: list[Any], quarter: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = bytes(convert(quarter, TFLiteOptions()))
    assert [w.widths["conv1"] for w in counted] == [6, 12]  # the two small widths, not the full one (24)
    entries = sorted((tmp_path / "cache" / "tflite-structure").iterdir())
    assert len(entries) == 2 and all(e.stat().st_mode & 0o077 == 0 for e in entries)
    monkeypatch.setattr(tflite, "_SMALL", {})  # as a new process would start
    assert bytes(convert(quarter, TFLiteOptions())) == first
    assert len(counted) == 2  # nothing converted again
    bytes(convert(quarter, TFLiteOptions(precision="fp16")))
    assert len(counted) == 4  # other options are other entries


def test_a_corrupt_or_foreign_entry_is_converted_again(
    counted: list[Any], quarter: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = bytes(convert(quarter, TFLiteOptions()))
    garbage, foreign = sorted((tmp_path / "cache" / "tflite-structure").iterdir())
    garbage.write_bytes(b"TFL3 but not a flatbuffer")
    os.chmod(foreign, 0o666)  # writable by anyone: not trusted
    monkeypatch.setattr(tflite, "_SMALL", {})
    assert bytes(convert(quarter, TFLiteOptions())) == first
    assert len(counted) == 4  # both converted again
    assert garbage.read_bytes()[4:8] == b"TFL3" and len(garbage.read_bytes()) > 1000  # and rewritten


def test_the_cache_is_off_or_refused_unless_it_is_a_private_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir("tflite-structure") is None
    shared = tmp_path / "shared"
    (shared / "tflite-structure").mkdir(parents=True)
    os.chmod(shared / "tflite-structure", 0o777)
    monkeypatch.setenv(CACHE_ENV, str(shared))
    assert cache_dir("tflite-structure") is None
    real = tmp_path / "real"
    (real / "tflite-structure").mkdir(parents=True)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "tflite-structure").symlink_to(real / "tflite-structure")
    monkeypatch.setenv(CACHE_ENV, str(linked))
    assert cache_dir("tflite-structure") is None
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fresh"))
    made = cache_dir("tflite-structure")
    assert made == tmp_path / "fresh" / "tflite-structure" and made.stat().st_mode & 0o077 == 0
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("tflite-structure") == tmp_path / "xdg" / "alexnet-export" / "tflite-structure"


def test_model_hash_is_tensorflows(quarter: AlexNetWeights, small_weights: AlexNetWeights) -> None:
    from tensorflow.lite.python import schema_py_generated as objects
    from tensorflow.lite.python.util import get_model_hash

    from alexnet_export.exporters.tflite_schema import model_hash

    for weights, options in ((quarter, TFLiteOptions()), (small_weights, TFLiteOptions(precision="int8-dynamic"))):
        model = objects.ModelT.InitFromPackedBuf(bytearray(convert(weights, options, placement=False)), 0)
        assert model_hash(model) == int(get_model_hash(model))
    model.subgraphs[0].tensors[0].shape[0] += 1  # the shape of one tensor is part of the hash
    assert model_hash(model) == int(get_model_hash(model))


TF_FREE = """
import sys
sys.argv = ["alexnet-export", *sys.argv[1:]]
from alexnet_export.cli import main
try:
    main()
finally:
    print("TENSORFLOW", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize(("command", "suffix"), [("npy2tflite", ".tflite"), ("npy2onnx", ".onnx")])
def test_an_export_from_the_cache_never_imports_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, suffix: str
) -> None:
    import subprocess
    import sys

    from converters.bvlc_npy import write_npy
    from converters.synthetic import synthesize

    source = tmp_path / "quarter.npy"  # wide enough for placement
    write_npy(synthesize(seed=5, width_divisor=4, num_classes=10), source)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    outputs = []
    for run in ("cold", "warm"):
        out = tmp_path / f"{run}{suffix}"
        extra = ["--check-images", "2"] if command == "npy2tflite" else []
        done = subprocess.run(
            [sys.executable, "-c", TF_FREE, command, source, out, *extra, "--quiet"],
            capture_output=True, text=True, check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append((done.stdout.splitlines()[-1], out.read_bytes()))
    assert outputs[0][0] == "TENSORFLOW True" and outputs[1][0] == "TENSORFLOW False"
    assert outputs[0][1] == outputs[1][1]  # and the same file


def test_a_cached_onnx_structure_that_is_not_one_is_converted_again(
    small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from alexnet_export.exporters import onnx as onnx_exporter

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_exporter, "_STRUCTURES", {})
    first, _ = onnx_exporter.build(small_weights)
    (entry,) = (tmp_path / "cache" / "onnx-structure").iterdir()
    for bad in (b"not a protobuf \xff\xff", b""):  # unreadable; and an empty model (no nodes)
        entry.write_bytes(bad)
        monkeypatch.setattr(onnx_exporter, "_STRUCTURES", {})
        again, _ = onnx_exporter.build(small_weights)
        assert again.SerializeToString() == first.SerializeToString()
        assert entry.read_bytes() == onnx_exporter._STRUCTURES[next(iter(onnx_exporter._STRUCTURES))]


def test_the_savedmodel_structure_is_cached_and_a_hostile_entry_is_made_again(
    small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from alexnet_export import structure
    from alexnet_export.exporters.savedmodel import export_savedmodel
    from alexnet_export.structure import Content, check_structure
    from alexnet_export.trust import parse_savedmodel

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(structure, "_SAVEDMODELS", {})
    made: list[Content] = []
    real = structure._saved_structure
    monkeypatch.setattr(structure, "_saved_structure", lambda w, c: made.append(c) or real(w, c))
    model = export_savedmodel(small_weights, tmp_path / "sm")
    assert check_structure(model, "savedmodel", small_weights).status == "matches"
    (entry,) = (tmp_path / "cache" / "savedmodel-structure").iterdir()
    assert len(made) == 1 and entry.stat().st_mode & 0o077 == 0
    monkeypatch.setattr(structure, "_SAVEDMODELS", {})  # as a new process would start
    assert check_structure(model, "savedmodel", small_weights).status == "matches"
    assert len(made) == 1  # from the entry, not saved again
    proto = parse_savedmodel(entry.read_bytes(), entry)
    function = proto.meta_graphs[0].graph_def.library.function[0]
    function.node_def[0].op = "WriteFile"  # an expectation with an op the trust check refuses
    for bad in (proto.SerializeToString(), b"\xff not a protobuf"):
        entry.write_bytes(bad)
        monkeypatch.setattr(structure, "_SAVEDMODELS", {})
        assert check_structure(model, "savedmodel", small_weights).status == "matches"
        assert entry.read_bytes() != bad  # made again and rewritten
    assert len(made) == 3


def test_the_onnx_checker_verdict_is_kept_for_a_byte_identical_file_only(
    small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import onnx

    from alexnet_export.exporters.onnx import OnnxOptions, export_onnx

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    checked: list[str] = []
    real = onnx.checker.check_model
    monkeypatch.setattr(onnx.checker, "check_model", lambda model, **kw: checked.append(model) or real(model, **kw))
    export_onnx(small_weights, tmp_path / "a.onnx")
    export_onnx(small_weights, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert len(checked) == 1  # the same bytes again: the same verdict
    other = synthesize(**{**SMALL, "seed": SMALL["seed"] + 1})  # the same shapes, other values
    export_onnx(other, tmp_path / "c.onnx")
    export_onnx(small_weights, tmp_path / "d.onnx", options=OnnxOptions(layout="nchw"))
    assert len(checked) == 3  # other bytes are checked, whatever changed
    for marker in (tmp_path / "cache" / "onnx-checked").iterdir():
        marker.write_bytes(b"anything else")
    export_onnx(small_weights, tmp_path / "e.onnx")
    assert len(checked) == 4  # a marker that is not the verdict is not trusted
    monkeypatch.setenv(CACHE_ENV, "off")
    export_onnx(small_weights, tmp_path / "f.onnx")
    assert len(checked) == 5


def test_an_entry_larger_than_the_cache_reads_back_is_returned_and_not_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from alexnet_export import cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "MAX_CACHED_BYTES", 8)
    made: list[int] = []

    def make(size: int) -> bytes:
        made.append(size)
        return b"x" * size

    for size in (9, 9, 8, 8):
        found = cache.cached_bytes("sized", f"n{size}", lambda size=size: make(size), lambda data, path: None)
        assert found == b"x" * size
    assert made == [9, 9, 8] and sorted(p.name for p in (tmp_path / "cache" / "sized").iterdir()) == ["n8"]
