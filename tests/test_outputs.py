"""Outputs keep their promise (issue: trust): no-overwrite holds at the final rename, --force replaces whole or not
at all and leaves no hidden copy, a file never replaces a folder (or the reverse), reports follow the same rules and
are checked before the run, and temporaries of killed runs are cleaned up."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from converters import atomic
from converters.atomic import InterruptedAfterWrite, atomic_output
from converters.errors import InputError, OutputExistsError


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_an_output_that_appears_during_the_run_is_not_clobbered(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    expected = pytest.raises(OutputExistsError, match="output appeared while this run was writing")
    with expected, atomic_output(dest) as tmp:
        tmp.write_bytes(b"mine")
        dest.write_bytes(b"theirs")  # another run finished first
    assert dest.read_bytes() == b"theirs" and _siblings(tmp_path) == ["out.bin"]


def test_a_folder_that_appears_during_the_run_is_not_clobbered(tmp_path: Path) -> None:
    dest = tmp_path / "sm"
    with pytest.raises(OutputExistsError), atomic_output(dest) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_bytes(b"mine")
        dest.mkdir()  # empty: a plain rename(2) would silently replace it
    assert dest.is_dir() and list(dest.iterdir()) == [] and _siblings(tmp_path) == ["sm"]


def test_force_replaces_a_folder_whole_and_leaves_no_copy(tmp_path: Path) -> None:
    dest = tmp_path / "sm"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_output(dest, force=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert _siblings(dest) == ["new.txt"] and _siblings(tmp_path) == ["sm"]


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_force_never_turns_a_file_into_a_folder_or_back(tmp_path: Path, existing: str) -> None:
    dest = tmp_path / "out"
    if existing == "folder":
        dest.mkdir()
        (dest / "keep.txt").write_text("keep")
    else:
        dest.write_text("keep")
    with pytest.raises(InputError, match="--force replaces like with like"), atomic_output(dest, force=True) as tmp:
        if existing == "folder":
            tmp.write_text("a file")
        else:
            tmp.mkdir()
    assert (dest / "keep.txt" if existing == "folder" else dest).read_text() == "keep"
    assert _siblings(tmp_path) == ["out"]


def test_npy2h5_onto_a_folder_with_force_deletes_nothing(cli, tmp_path: Path, small_npy: Path) -> None:
    folder = tmp_path / "precious"
    (folder / "deep").mkdir(parents=True)
    (folder / "deep" / "file.txt").write_text("data")
    result = cli("npy2h5", small_npy, folder, "--force")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "replaces like with like" in result.output
    assert (folder / "deep" / "file.txt").read_text() == "data"


def test_an_interrupt_after_the_rename_says_the_output_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = atomic._move_into_place

    def then_interrupted(tmp: Path, dest: Path) -> None:
        real(tmp, dest)
        os.kill(os.getpid(), signal.SIGINT)  # held until the rename is recorded, then delivered

    monkeypatch.setattr(atomic, "_move_into_place", then_interrupted)
    dest = tmp_path / "out.bin"
    expected = pytest.raises(InterruptedAfterWrite, match=r"interrupted after .*out.bin was written in full")
    with expected, atomic_output(dest) as tmp:
        tmp.write_bytes(b"whole")
    assert dest.read_bytes() == b"whole" and _siblings(tmp_path) == ["out.bin"]


def test_temporaries_of_killed_runs_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / ".out.bin.tmp-999999999-abcd"
    dead_old = tmp_path / ".out.bin.old-999999999-abcd"
    live = tmp_path / f".out.bin.tmp-{os.getpid()}-beef"
    for path in (dead, live):
        path.write_bytes(b"partial")
    dead_old.mkdir()
    with atomic_output(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"new")
    assert _siblings(tmp_path) == sorted([live.name, "out.bin"])


def test_verify_reports_are_checked_before_the_run_and_never_overwritten_without_force(
    cli, tmp_path: Path, small_npy: Path, small_weights
) -> None:
    from alexnet_export.exporters.onnx import export_onnx

    model = tmp_path / "m.onnx"
    export_onnx(small_weights, model)
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    result = cli("verify", model, "--weights", small_npy, "--json", existing)
    assert result.exit_code == 2 and "already exists; pass --force" in result.output
    assert existing.read_text() == "keep" and "logits vs float64 oracle" not in result.output  # refused before running
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("verify", model, "--weights", small_npy, "--markdown", blocker / "r.md")
    assert result.exit_code == 2 and "expected a directory at" in result.output
    assert "logits vs float64 oracle" not in result.output
    result = cli("verify", model, "--weights", small_npy, "--device", "cpu", "--json", existing, "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(existing.read_text())["passed"] is True
    assert _siblings(tmp_path) == sorted(["a-file", "existing.txt", "m.onnx", "m.onnx.alexnet-export.json"])


def test_diagnose_json_refuses_an_existing_file(cli, tmp_path: Path, small_npy: Path, small_weights) -> None:
    from alexnet_export.exporters.onnx import export_onnx

    model = tmp_path / "m.onnx"
    export_onnx(small_weights, model)
    existing = tmp_path / "d.json"
    existing.write_text("keep")
    result = cli("diagnose", model, "--weights", small_npy, "--json", existing)
    assert result.exit_code == 2 and existing.read_text() == "keep"
