from __future__ import annotations

import hashlib
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from converters import read_weights
from converters.arch import PRESETS
from converters.bvlc_npy import read_npy, write_npy
from converters.errors import OutputExistsError, UnsafePickleError, WeightsError
from converters.groups import split, to_dense
from converters.weights import AlexNetWeights
from tests.conftest import layer_dict, npy_with, raw_pickle_npy

LAYER_NAMES = PRESETS["bvlc-alexnet"].layer_names

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "synthetic_seed3_w8_c17.npy.sha256"


def assert_same(a: AlexNetWeights, b: AlexNetWeights) -> None:
    for name in LAYER_NAMES:
        assert a[name].kernel.tobytes() == b[name].kernel.tobytes(), name
        assert a[name].bias.tobytes() == b[name].bias.tobytes(), name


def test_write_read_round_trip_is_bit_exact(small_weights: AlexNetWeights, small_npy: Path) -> None:
    loaded = read_npy(small_npy)
    assert_same(loaded, small_weights)
    assert loaded.source is not None
    assert loaded.source.sha256 == hashlib.sha256(small_npy.read_bytes()).hexdigest()
    for layer in loaded.layers.values():
        assert layer.kernel.dtype == np.float32 and layer.kernel.flags.c_contiguous
        assert not layer.kernel.flags.writeable and not layer.bias.flags.writeable


def test_written_file_has_golden_bytes(small_npy: Path) -> None:
    """Same seed, same bytes on any machine: the digest is committed under fixtures/."""
    assert hashlib.sha256(small_npy.read_bytes()).hexdigest() == GOLDEN.read_text().split()[0]


def test_written_file_loads_in_the_legacy_scripts(small_weights: AlexNetWeights, small_npy: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        legacy = np.load(small_npy, allow_pickle=True, encoding="latin1").item()
    assert list(legacy) == list(LAYER_NAMES)
    for name in LAYER_NAMES:
        assert isinstance(legacy[name], list)
        np.testing.assert_array_equal(legacy[name][0], small_weights[name].kernel)
        np.testing.assert_array_equal(legacy[name][1], small_weights[name].bias)


def test_legacy_file_opcodes_are_python2_strings(small_npy: Path) -> None:
    import pickletools

    data = small_npy.read_bytes()
    start = data.index(b"\x80\x02")
    ops = {op.name for op, _, _ in pickletools.genops(data[start:])}
    assert "BINSTRING" in ops and "SHORT_BINSTRING" in ops
    assert not ops & {"BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda d: d, id="str-keys-lists"),
        pytest.param(lambda d: {k.encode(): v for k, v in d.items()}, id="bytes-keys"),
        pytest.param(lambda d: {k: tuple(v) for k, v in d.items()}, id="tuples"),
        pytest.param(lambda d: {k: {"weights": v[0], "biases": v[1]} for k, v in d.items()}, id="weights-biases-dict"),
        pytest.param(lambda d: {k: {b"weights": v[0], b"biases": v[1]} for k, v in d.items()}, id="bytes-dict-keys"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_reader_accepts_every_known_layout(tmp_path: Path, small_weights: AlexNetWeights, transform, protocol: int) -> None:
    path = npy_with(tmp_path / "w.npy", transform(layer_dict(small_weights)), protocol=protocol)
    assert_same(read_npy(path), small_weights)


def test_reader_merges_per_group_entries(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    entries = layer_dict(small_weights)
    for name in ("conv2", "conv4", "conv5"):
        kernel, bias = entries.pop(name)
        for i, (part, b) in enumerate(zip(split(kernel, 2), np.split(bias, 2), strict=False), start=1):
            entries[f"{name}_{i}"] = [part, b]
    assert_same(read_npy(npy_with(tmp_path / "w.npy", entries)), small_weights)


def test_reader_accepts_dense_block_diagonal_kernels(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    entries = layer_dict(small_weights)
    entries["conv2"][0] = to_dense(entries["conv2"][0], 2)
    assert_same(read_npy(npy_with(tmp_path / "w.npy", entries)), small_weights)


def test_reader_does_not_copy_more_than_the_file(small_npy: Path) -> None:
    loaded = read_npy(small_npy)
    for layer in loaded.layers.values():
        base = layer.kernel
        while isinstance(base, np.ndarray):
            base = base.base
        # the array is a view of the bytes object the unpickler read: no second copy was made
        assert isinstance(base, bytes) and len(base) == layer.kernel.nbytes


def test_writer_refuses_existing_file_without_force(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    target = tmp_path / "w.npy"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match=r"w.npy: output already exists; pass --force"):
        write_npy(small_weights, target)
    assert target.read_bytes() == b"keep me"
    write_npy(small_weights, target, force=True)
    assert_same(read_npy(target), small_weights)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npy"]


# --- bad input: each a clear message naming the file and what was expected / received ----------

def _mutated(tmp_path: Path, small_weights: AlexNetWeights, change) -> Path:
    entries = layer_dict(small_weights)
    change(entries)
    return npy_with(tmp_path / "bad.npy", entries)


BAD_LAYOUTS = [
    ("missing-layer", lambda d: d.pop("conv3"), r"missing layer conv3; expected all of conv1"),
    ("unknown-layer", lambda d: d.__setitem__("fc9", d["fc8"]), r"unknown layer 'fc9'; expected only conv1"),
    ("wrong-rank", lambda d: d["conv1"].__setitem__(0, d["conv1"][0][0]), r"layer conv1 kernel: expected a 4-d array, received 3-d"),
    ("wrong-shape", lambda d: d["conv3"].__setitem__(0, d["conv3"][0][:, :, :-1]),
     r"layer conv3 kernel: expected shape \(3, 3, 32, 48\), received \(3, 3, 31, 48\)"),
    ("wrong-fc6-rows", lambda d: d["fc6"].__setitem__(0, d["fc6"][0][:-1]),
     r"layer fc6 kernel: expected shape \(1152, 512\), received \(1151, 512\)"),
    ("wrong-bias", lambda d: d["fc7"].__setitem__(1, d["fc7"][1][:-2]), r"layer fc7 bias: expected shape \(512,\), received \(510,\)"),
    ("float64", lambda d: d["conv2"].__setitem__(0, d["conv2"][0].astype(np.float64)),
     r"layer conv2 kernel: expected float32, received float64 \(pass --allow-cast"),
    ("float16", lambda d: d["fc8"].__setitem__(1, d["fc8"][1].astype(np.float16)), r"layer fc8 bias: expected float32, received float16"),
    ("int", lambda d: d["fc8"].__setitem__(1, d["fc8"][1].astype(np.int32)), r"layer fc8 bias: expected float32, received int32$"),
    ("not-array", lambda d: d["fc8"].__setitem__(1, [1.0, 2.0]), r"layer fc8 bias: expected a numpy array, received list"),
    ("triple", lambda d: d["fc8"].append(d["fc8"][1]), r"layer fc8: expected \[W, b\], \{'weights', 'biases'\} or a BatchNormalization .*, received list of length 3"),
    ("nan", lambda d: d["conv4"][0].__setitem__((0, 0, 0, slice(0, 3)), np.nan),
     r"layer conv4 kernel: expected finite values, received 3 NaN and 0 Inf"),
    ("inf", lambda d: d["fc6"][1].__setitem__(slice(0, 2), np.inf), r"layer fc6 bias: expected finite values, received 0 NaN and 2 Inf"),
    ("odd-groups", lambda d: d["conv2"].__setitem__(0, d["conv2"][0][..., :-1]) or d["conv2"].__setitem__(1, d["conv2"][1][:-1]),
     r"layer conv2: expected input and output channels divisible by 2 groups, received 12 input and 31 output"),
]


@pytest.mark.parametrize("change,message", [pytest.param(c, m, id=i) for i, c, m in BAD_LAYOUTS])
def test_bad_layouts_are_refused_with_a_clear_message(tmp_path: Path, small_weights: AlexNetWeights, change, message: str) -> None:
    path = _mutated(tmp_path, small_weights, change)
    with pytest.raises(WeightsError, match=rf"^{path}: .*{message}"):
        read_npy(path)


def test_allow_cast_converts_float64(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    path = _mutated(tmp_path, small_weights, lambda d: d["conv2"].__setitem__(0, d["conv2"][0].astype(np.float64)))
    assert_same(read_npy(path, allow_cast=True), small_weights)


def test_inspect_mode_counts_instead_of_refusing(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    path = _mutated(tmp_path, small_weights, lambda d: d["fc6"][1].__setitem__(0, np.nan))
    assert np.isnan(read_weights(path, check_finite=False)["fc6"].bias).sum() == 1


def test_bad_files(tmp_path: Path, small_npy: Path) -> None:
    cases: list[tuple[Path, str]] = []
    cases.append((tmp_path / "absent.npy", r"absent.npy: no such file"))
    cases.append((tmp_path, r": expected a weights file, received a directory"))
    (tmp_path / "empty.npy").write_bytes(b"")
    cases.append((tmp_path / "empty.npy", r"empty.npy: expected an .npy weights file, received an empty file"))
    (tmp_path / "cut.npy").write_bytes(small_npy.read_bytes()[: small_npy.stat().st_size // 2])
    cases.append((tmp_path / "cut.npy", r"cut.npy: truncated file: the pickle ends early"))
    (tmp_path / "text.npy").write_text("conv1,conv2\n")
    cases.append((tmp_path / "text.npy", r"text.npy: expected an .npy file \(starting with \\x93NUMPY\), received b'conv1,'"))
    np.save(tmp_path / "numeric.npy", np.zeros((3, 4), np.float32))
    cases.append((tmp_path / "numeric.npy", r"expected a pickled dict of layers \(object dtype, shape \(\)\), received a float32 array of shape \(3, 4\)"))
    npy_with(tmp_path / "list.npy", [1, 2])
    cases.append((tmp_path / "list.npy", r"list.npy: expected a dict of layers, received list"))
    for path, message in cases:
        with pytest.raises(WeightsError, match=message):
            read_npy(path)


# --- hostile pickles: refused, naming the global, and the payload never runs ------------------

class _Payload:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_cases(marker: Path) -> list[tuple[str, object, str]]:
    return [
        ("os-system", _Payload(os.system, (f"touch {marker}",)), r"refused global (posix|os)\.system"),
        ("subprocess", _Payload(subprocess.call, (["touch", str(marker)],)), r"refused global (subprocess|commands)\.call"),
        ("builtins-exec", _Payload(exec, (f"open({str(marker)!r}, 'w')",)), r"refused global (builtins|__builtin__)\.exec"),
        ("numpy-save", _Payload(np.save, (str(marker), np.zeros(1))), r"refused global numpy\.save"),
        ("numpy-fromfile", _Payload(np.fromfile, ("/etc/hostname",)), r"refused global numpy\.fromfile"),
        ("numpy-testing-runstring", None, r"refused global numpy\.testing\._private\.utils\.runstring"),
    ]


@pytest.mark.parametrize("case", range(6), ids=[c[0] for c in _hostile_cases(Path("x"))])
def test_hostile_pickles_never_run(tmp_path: Path, small_weights: AlexNetWeights, case: int) -> None:
    marker = tmp_path / "pwned"
    _name, payload, message = _hostile_cases(marker)[case]
    path = tmp_path / "hostile.npy"
    if payload is None:  # a harmless-looking numpy function that runs code: exec(source, dict)
        code = f"open({str(marker)!r}, 'w')".encode()
        body = b"\x80\x02cnumpy.testing._private.utils\nrunstring\nU" + bytes([len(code)]) + code + b"}\x86R."
        raw_pickle_npy(path, body)
    else:
        entries = layer_dict(small_weights)
        entries["conv1"] = [payload, entries["conv1"][1]]
        npy_with(path, entries, protocol=2)
    with pytest.raises(UnsafePickleError, match=rf"hostile.npy: {message}: only numpy array reconstruction"):
        read_npy(path)
    assert not marker.exists()


def test_codecs_encode_is_limited_to_latin1(tmp_path: Path) -> None:
    body = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafePickleError, match=r"refused _codecs.encode with encoding 'rot13'"):
        read_npy(raw_pickle_npy(tmp_path / "codec.npy", body))


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePickleError, match=r"refused a persistent id"):
        read_npy(raw_pickle_npy(tmp_path / "pid.npy", b"\x80\x02U\x01xQ."))


def test_pickle_from_numpy_save_of_protocol_3_is_not_hostile(tmp_path: Path, small_weights: AlexNetWeights) -> None:
    path = tmp_path / "np_save.npy"
    np.save(path, layer_dict(small_weights), allow_pickle=True)
    assert_same(read_npy(path), small_weights)


@pytest.mark.parametrize("change,message", [pytest.param(c, m, id=i) for i, c, m in BAD_LAYOUTS])
def test_bad_layouts_via_cli_exit_2_and_write_nothing(cli, tmp_path: Path, small_weights: AlexNetWeights, change, message: str) -> None:
    path = _mutated(tmp_path, small_weights, change)
    result = cli("npy2savedmodel", path, tmp_path / "out", "--quiet")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    import re

    assert re.search(message, result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy"]


def test_the_reader_keeps_each_arrays_bytes_where_the_file_was_read_into_without_a_second_copy(
    tmp_path: Path, small_weights: AlexNetWeights, monkeypatch: pytest.MonkeyPatch
) -> None:
    from converters import bvlc_npy

    path = tmp_path / "w.npy"
    write_npy(small_weights, path)  # as Python 2 pickled it: every array's bytes a counted string
    filled: list[tuple[int, int]] = []  # (address, length) of every buffer the file was read into
    readinto = bvlc_npy._HashingReader.readinto

    def recorded(self: bvlc_npy._HashingReader, buffer: object) -> int:
        count = readinto(self, buffer)
        filled.append((np.frombuffer(buffer, np.uint8).ctypes.data, count))  # type: ignore[call-overload]
        return count

    monkeypatch.setattr(bvlc_npy._HashingReader, "readinto", recorded)
    read = read_npy(path)

    def in_a_filled_buffer(array: np.ndarray) -> bool:  # all but what the reader had buffered (64 KiB) before
        start = array.__array_interface__["data"][0]
        end = start + array.nbytes
        return any(min(end, at + length) - max(start, at) >= array.nbytes - (1 << 16) for at, length in filled)

    large = [name for name, layer in small_weights.layers.items() if layer.kernel.nbytes > 1 << 16]
    assert large and all(np.array_equal(read[name].kernel, small_weights[name].kernel) for name in large)
    assert [name for name in large if not in_a_filled_buffer(read[name].kernel)] == []
