"""Hostile and malformed HDF5 files and images (issue: trust): refused in one line before anything large is
allocated or anything outside the file is read."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from alexnet_export.preprocess import MAX_ASPECT, load_rgb
from converters import read_weights
from converters.errors import InputError, WeightsError
from converters.hdf5 import write_h5
from converters.weights import AlexNetWeights


@pytest.fixture
def h5_file(tmp_path: Path, small_weights: AlexNetWeights) -> Path:
    path = tmp_path / "w.h5"
    write_h5(small_weights, path)
    return path


def _replace(path: Path, key: str, **create: object) -> None:
    with h5py.File(path, "r+") as file:
        attrs = dict(file[key].attrs)
        del file[key]
        dataset = file.create_dataset(key, **create)  # type: ignore[arg-type]
        dataset.attrs.update(attrs)


def test_external_storage_pointing_at_another_file_is_refused(cli, tmp_path: Path, h5_file: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(np.arange(17, dtype=np.float32).tobytes())  # fc8's bias would be read from here
    _replace(h5_file, "fc8/bias", shape=(17,), dtype="f4", external=[(str(secret), 0, 68)])
    result = cli("npy2h5", h5_file, tmp_path / "again.h5")
    assert result.exit_code == 2, result.output
    assert f"dataset /fc8/bias: stored in an external file ('{secret}'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "again.h5").exists()


def test_keras_weights_with_external_storage_are_refused(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    keras_model = pytest.importorskip("alexnet_export.keras_model")
    path = keras_model.write_keras_weights(small_weights, tmp_path / "w.weights.h5")
    with h5py.File(path, "r") as file:
        key = next(
            f"layers/{k}/vars/1"
            for k in file["layers"]
            if "vars" in file["layers"][k] and "1" in file["layers"][k]["vars"]
        )
    (tmp_path / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 4)
    _replace(path, key, shape=(8,), dtype="f4", external=[(str(tmp_path / "passwd"), 0, 32)])
    with pytest.raises(WeightsError, match="stored in an external file"):
        read_weights(path)


def test_a_fill_value_dataset_declaring_gigabytes_is_refused_without_allocating(h5_file: Path) -> None:
    _replace(h5_file, "fc7/kernel", shape=(50000, 50000), dtype="f4", fillvalue=1.0)  # 9.3 GiB, never written
    with pytest.raises(WeightsError, match=r"declares 10,000,000,000 bytes; expected at most"):
        read_weights(h5_file)
    _replace(h5_file, "fc7/kernel", shape=(20000, 20000), dtype="f4", fillvalue=1.0, chunks=(1000, 1000))
    with pytest.raises(WeightsError, match="no data stored"):
        read_weights(h5_file)


def test_a_gzip_bomb_dataset_is_refused_before_it_is_inflated(h5_file: Path) -> None:
    _replace(h5_file, "fc7/kernel", data=np.zeros((4096, 4096), np.float32), compression="gzip", chunks=(1024, 1024))
    with pytest.raises(WeightsError, match=r"stored bytes expand to 67,108,864 \(more than 64x\)"):
        read_weights(h5_file)


def test_an_external_link_in_place_of_a_dataset_is_refused(tmp_path: Path, h5_file: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["bias"] = np.zeros(17, np.float32)
    with h5py.File(h5_file, "r+") as file:
        del file["fc8/bias"]
        file["fc8/bias"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "bias")
    with pytest.raises(WeightsError, match="/fc8/bias is a link"):
        read_weights(h5_file)


def test_a_thin_strip_image_is_refused_from_its_header(cli, tmp_path: Path, small_npy: Path) -> None:
    Image.new("RGB", (30000, 1)).save(tmp_path / "strip.png")
    assert (tmp_path / "strip.png").stat().st_size < 1000
    with pytest.raises(InputError, match=f"expected an aspect ratio of at most {MAX_ASPECT}:1, received 30000x1"):
        load_rgb(tmp_path / "strip.png")
    result = cli("predict", small_npy, tmp_path / "strip.png")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output


def test_a_decompression_bomb_is_one_line(tmp_path: Path) -> None:
    Image.new("L", (10000, 9000)).save(tmp_path / "bomb.png")  # 90 M pixels in a few kB
    with pytest.raises(InputError, match="expected at most 40,000,000 pixels, received 10000x9000"):
        load_rgb(tmp_path / "bomb.png")


def test_16_bit_and_float_images_keep_their_levels(tmp_path: Path) -> None:
    levels = np.array([[0, 16384, 32768, 65535]], np.uint16).repeat(3, axis=0)
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    rgb = load_rgb(tmp_path / "grey16.png")
    assert rgb[0, :, 0].tolist() == [0, 64, 128, 255] and (rgb[..., 0] == rgb[..., 2]).all()
    Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)).save(tmp_path / "float.tiff")
    assert load_rgb(tmp_path / "float.tiff")[0, :, 1].tolist() == [0, 64, 128, 255]
    Image.fromarray(np.array([[0.0, 3.5]], np.float32)).save(tmp_path / "hdr.tiff")
    with pytest.raises(
        InputError, match=r"expected a float image with values in \[0, 1\], received values in \[0, 3.5\]"
    ):
        load_rgb(tmp_path / "hdr.tiff")


class _Reduce:
    """Pickles as ``callable(*args)`` then ``BUILD state``: the shapes a hostile npy can take with allowed globals."""

    def __init__(self, *reduced: object) -> None:
        self.reduced = reduced

    def __reduce__(self) -> tuple[object, ...]:
        return self.reduced


_RECON = np.ndarray((0,)).__reduce__()[0]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (
            _Reduce(np.ndarray, ((50000, 50000), np.dtype("f4"), b"\0\0\0\0", 0, (0, 0))),
            "refused a numpy.ndarray(...) call",
        ),
        (
            _Reduce(_RECON, (np.ndarray, (0,), b"b"), (1, (50000, 50000), np.dtype("f4"), False, b"\0" * 8)),
            "refused an array of shape (50000, 50000): more than 268,435,456 elements declared",
        ),
        (
            _Reduce(_RECON, (np.ndarray, (0,), b"b"), (1, (4096, 4096), np.dtype("f4"), False, b"\0" * 8)),
            "expected 67108864 data bytes, received 8",
        ),
        (
            _Reduce(_RECON, (np.ndarray, (0,), b"b"), (1, (3,), np.dtype("O"), False, [1])),
            "refused an object array of shape (3,)",
        ),
    ],
    ids=["zero-stride-view", "declared-gigabytes", "short-buffer", "object-array-short-list"],
)
def test_hostile_array_states_in_an_npy_are_refused_before_allocation(
    cli, tmp_path: Path, array: _Reduce, message: str
) -> None:
    import resource

    from tests.conftest import npy_with

    path = npy_with(tmp_path / "hostile.npy", {"fc7": [array, np.zeros(3, np.float32)]}, protocol=2)
    assert path.stat().st_size < 2000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WeightsError, match=re.escape(message)):
        read_weights(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing large allocated
    result = cli("inspect", path)
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"K\x01" + b"\x85" * 1_000_000,  # TUPLE1 around TUPLE1 ...: a million levels, no MARK
        b"(" * 200_000 + b"K\x01" + b"t" * 200_000,  # MARK ... TUPLE nested
        b"}K\x01" + b"K\x01\x85" + b"\x85" * 300_000 + b"s",  # a dict whose key nests 300,000 deep
    ],
    ids=["tuple1-chain", "mark-tuples", "nested-dict-key"],
)
def test_deeply_nested_pickles_are_refused_before_the_unpickler_recurses(tmp_path: Path, body: bytes) -> None:
    """Unpickling these and hashing or freeing the result overflows the C stack: exit 139 before the scan."""
    import subprocess
    import sys

    from tests.conftest import raw_pickle_npy

    path = raw_pickle_npy(tmp_path / "deep.npy", b"\x80\x02" + body + b".")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("alexnet-export")), "inspect", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert "refused a pickle nesting more than 32 levels deep" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_the_pickle_scan_accepts_every_layout_np_save_writes(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    from converters.bvlc_npy import read_npy
    from tests.conftest import layer_dict, npy_with

    for protocol in (2, 3, 4, 5):
        path = npy_with(tmp_path / f"p{protocol}.npy", layer_dict(small_weights), protocol=protocol)
        assert read_npy(path).layers["fc8"].bias.tolist() == small_weights.layers["fc8"].bias.tolist()
