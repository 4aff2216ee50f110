from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from converters import read_weights
from converters.errors import OutputExistsError, WeightsError
from converters.hdf5 import read_h5, write_h5
from converters.weights import AlexNetWeights


@pytest.fixture()
def small_h5(tmp_path: Path, small_npy: Path) -> Path:
    path = tmp_path / "w.h5"
    write_h5(read_weights(small_npy), path)
    return path


def test_round_trip_is_bit_exact_and_records_the_source(small_h5: Path, small_npy: Path, small_weights: AlexNetWeights) -> None:
    loaded = read_weights(small_h5)  # dispatched by magic bytes
    assert loaded.bit_equal(small_weights)
    assert loaded.source is not None and loaded.source.format == "h5"
    with h5py.File(small_h5) as f:
        assert f.attrs["source_sha256"] == hashlib.sha256(small_npy.read_bytes()).hexdigest()
        assert f["conv2/kernel"].attrs["groups"] == 2 and f["conv2/kernel"].shape == (5, 5, 6, 32)
        assert list(f) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


def test_cli_npy_h5_npy_gives_the_same_bytes(cli, tmp_path: Path, small_npy: Path) -> None:
    assert cli("npy2h5", small_npy, tmp_path / "w.h5").exit_code == 0
    assert cli("h52npy", tmp_path / "w.h5", tmp_path / "back.npy").exit_code == 0
    assert (tmp_path / "back.npy").read_bytes() == small_npy.read_bytes()
    again = cli("npy2h5", small_npy, tmp_path / "w.h5")
    assert again.exit_code == 2 and again.stderr.strip().endswith("w.h5: output already exists; pass --force to overwrite it")


def _edit(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


def _replace(f: h5py.File, key: str, data: np.ndarray, *, fix_checksum: bool, groups: int | None = None) -> None:
    del f[key]
    f[key] = data
    if fix_checksum:
        f[key].attrs["sha256"] = hashlib.sha256(np.ascontiguousarray(data).data).hexdigest()
    if groups is not None:
        f[key].attrs["groups"] = groups


TAMPERED = [
    ("changed-tensor", lambda f: f["fc6/kernel"].__setitem__((0, 0), 123.0), r"checksum mismatch in /fc6/kernel: expected sha256 .* \(stored\), received .* the tensor was modified"),
    ("wrong-groups-attribute", lambda f: f["conv4/kernel"].attrs.__setitem__("groups", 1), r"attribute groups of /conv4/kernel: expected 2, received 1"),
    ("missing-dataset", lambda f: f.__delitem__("conv3/bias"), r"missing dataset /conv3/bias"),
    ("missing-checksum", lambda f: f["fc8/bias"].attrs.__delitem__("sha256"), r"dataset /fc8/bias has no sha256 attribute"),
    ("wrong-shape", lambda f: _replace(f, "fc7/bias", np.zeros(5, np.float32), fix_checksum=True), r"layer fc7 bias: expected shape \(512,\), received \(5,\)"),
    ("wrong-dtype", lambda f: _replace(f, "fc8/bias", np.zeros(17, np.float64), fix_checksum=True), r"layer fc8 bias: expected float32, received float64"),
    ("unknown-layer", lambda f: f.create_group("fc9"), r"unknown layer 'fc9'"),
    ("not-our-format", lambda f: f.attrs.__setitem__("format", "keras"), r"expected HDF5 weights with format='alexnet-export-weights' or a Keras 3 .weights.h5 file, received format='keras' and no /layers group"),
]


@pytest.mark.parametrize("edit,message", [pytest.param(e, m, id=i) for i, e, m in TAMPERED])
def test_tampered_files_are_refused(small_h5: Path, edit, message: str) -> None:
    _edit(small_h5, edit)
    with pytest.raises(WeightsError, match=message):
        read_h5(small_h5)


@pytest.mark.parametrize("edit,message", [pytest.param(e, m, id=i) for i, e, m in TAMPERED[:3]])
def test_tampered_files_via_cli_exit_2(cli, tmp_path: Path, small_h5: Path, edit, message: str) -> None:
    _edit(small_h5, edit)
    result = cli("h52npy", small_h5, tmp_path / "out.npy")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.npy").exists()


def test_writer_refuses_existing_output(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    (tmp_path / "w.h5").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        write_h5(small_weights, tmp_path / "w.h5")
    assert (tmp_path / "w.h5").read_bytes() == b"mine"


def test_a_file_that_only_starts_like_hdf5_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fake.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(WeightsError, match=r"fake.h5: cannot read as HDF5"):
        read_weights(tmp_path / "fake.h5")
