from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.weights import AlexNetWeights
from tests.conftest import layer_dict, npy_with

BIN = Path(sys.executable).parent


def assert_one_line_error(result, pattern: str) -> None:
    import re

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys\nfrom alexnet_export.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'onnx', 'tf2onnx', 'numpy', 'h5py') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_converters_import_without_tensorflow() -> None:
    code = "import sys, converters, converters.synthetic, converters.summary; print(sorted(m for m in ('tensorflow', 'onnx', 'tf2onnx') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_installed_console_script_runs(tmp_path: Path) -> None:
    version = subprocess.run([BIN / "alexnet-export", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "alexnet-export 0.1.0"
    out = tmp_path / "s.npy"
    made = subprocess.run(
        [BIN / "alexnet-export", "synthesize", out, "--width-divisor", "16", "--num-classes", "5"],
        capture_output=True, text=True, check=True,
    )
    assert "5 classes" in made.stdout
    bad = subprocess.run([BIN / "alexnet-export", "inspect", tmp_path / "nope.npy"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'nope.npy'}: no such file"


def test_inspect_table_and_json(cli, small_npy: Path, small_weights: AlexNetWeights) -> None:
    table = cli("inspect", small_npy)
    assert table.exit_code == 0, table.output
    assert "conv2/kernel" in table.stdout and "5x5x6x32" in table.stdout
    assert "902,145" in table.stdout and "does NOT match the published checksum" in table.stdout
    result = cli("inspect", small_npy, "--json")
    data = json.loads(result.stdout)
    assert data["parameters"] == small_weights.parameter_count == 902_145
    assert data["num_classes"] == 17 and data["matches_published"] is False
    conv2 = data["layers"][1]
    assert conv2["name"] == "conv2" and conv2["groups"] == 2 and conv2["kernel"]["shape"] == [5, 5, 6, 32]
    assert conv2["kernel"]["min"] == pytest.approx(float(small_weights["conv2"].kernel.min()))
    assert conv2["bias"]["std"] == pytest.approx(float(small_weights["conv2"].bias.astype(np.float64).std()))


def test_inspect_counts_nan_and_inf_and_exits_1(cli, tmp_path: Path, small_weights: AlexNetWeights) -> None:
    entries = layer_dict(small_weights)
    entries["fc7"][0][0, :4] = np.nan
    entries["fc7"][1][0] = -np.inf
    result = cli("inspect", npy_with(tmp_path / "nan.npy", entries), "--json")
    assert result.exit_code == 1
    fc7 = json.loads(result.stdout)["layers"][6]
    assert (fc7["kernel"]["nan"], fc7["kernel"]["inf"], fc7["bias"]["inf"]) == (4, 0, 1)


def test_synthesize_refuses_to_overwrite(cli, tmp_path: Path) -> None:
    target = tmp_path / "w.npy"
    target.write_bytes(b"precious")
    assert_one_line_error(cli("synthesize", target, "--width-divisor", "16"), r"w.npy: output already exists; pass --force")
    assert target.read_bytes() == b"precious"
    assert cli("synthesize", target, "--width-divisor", "16", "--force").exit_code == 0
    assert target.stat().st_size > 100


@pytest.mark.parametrize(
    "args,pattern",
    [
        pytest.param(["synthesize", "{tmp}/x.npy", "--width-divisor", "5"], r"--width-divisor: expected a divisor", id="divisor"),
        pytest.param(["synthesize", "{tmp}/x.npy", "--num-classes", "0"], r"--num-classes: expected a positive integer, received 0", id="classes"),
        pytest.param(["synthesize", "{tmp}/x.npy", "--seed", "-1"], r"--seed: expected a non-negative integer, received -1", id="seed"),
        pytest.param(["inspect", "{tmp}"], r"expected a weights file, received a directory", id="directory"),
        pytest.param(["inspect", "{tmp}/empty.npy"], r"empty.npy: expected an .npy weights file, received an empty file", id="empty"),
        pytest.param(["synthesize", "{tmp}/empty.npy/x.npy"], r"expected a directory at .*empty.npy, received a file", id="parent-is-file"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(cli, tmp_path: Path, args: list[str], pattern: str) -> None:
    (tmp_path / "empty.npy").write_bytes(b"")
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "x.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npy"]


def test_os_errors_are_one_line_and_exit_2(cli) -> None:
    # /proc refuses new files even for root: the write fails with an OSError, reported as one line
    result = cli("synthesize", "/proc/alexnet.npy", "--width-divisor", "16")
    assert_one_line_error(result, r"^error: /proc/alexnet\.npy: cannot write: ")
    assert not Path("/proc/alexnet.npy").exists()


def test_hostile_file_via_cli_does_not_run(cli, tmp_path: Path, small_weights: AlexNetWeights) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    entries = layer_dict(small_weights)
    entries["fc8"] = [Payload(), entries["fc8"][1]]
    result = cli("inspect", npy_with(tmp_path / "evil.npy", entries, protocol=2))
    assert_one_line_error(result, r"evil.npy: refused global (posix|os)\.system: only numpy array reconstruction")
    assert not marker.exists()


class _Terminal:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_not_when_quiet(monkeypatch) -> None:
    from alexnet_export.progress import Progress

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with Progress().step("reading weights"):
        pass
    import re

    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.text)
    assert "reading weights" in plain.splitlines()[0]  # the spinner line
    assert re.search(r"done reading weights \(\d+\.\d s\)", plain)
    terminal.text = ""
    with Progress(quiet=True).step("reading weights"):
        pass
    assert terminal.text == ""


def test_progress_is_silent_when_stderr_is_not_a_terminal(cli, tmp_path: Path, small_npy: Path) -> None:
    result = cli("npy2savedmodel", small_npy, tmp_path / "sm")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


TF_ALLOCATOR = """
import sys, types

def main():  # stands in for the CLI: does TensorFlow give a large freed tensor's memory back?
    from alexnet_export.quiet import import_tensorflow
    import_tensorflow()
    import tensorflow as tf
    def rss():
        return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) // 1024
    tf.zeros([1]).numpy()
    before = rss()
    tensor = tf.fill([64 * 2**20], 1.0)  # 256 MiB
    tensor.numpy()
    del tensor
    print(rss() - before)

stub = types.ModuleType("alexnet_export.cli")
stub.main = main
sys.modules["alexnet_export.cli"] = stub
from alexnet_export._entry import main as console_script
console_script()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize(("given", "kept"), [(None, False), ("0", True)])
def test_the_console_script_has_tensorflow_give_freed_memory_back_unless_the_user_chose(
    given: str | None, kept: bool
) -> None:
    pytest.importorskip("tensorflow")
    env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
    if given is not None:
        env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = given
    done = subprocess.run([sys.executable, "-c", TF_ALLOCATOR], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    resident = int(done.stdout.strip().splitlines()[-1])  # MiB still resident after the 256 MiB tensor went
    assert (resident > 200) is kept, resident


OPENBLAS_TIMEOUT = """
import sys, types

def main():  # stands in for the CLI: what numpy's OpenBLAS read when it loaded
    import ctypes
    import numpy  # noqa: F401
    paths = [line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.rsplit("/", 1)[-1]]
    print(ctypes.CDLL(paths[0]).openblas_thread_timeout() if paths else "no-openblas")

stub = types.ModuleType("alexnet_export.cli")
stub.main = main
sys.modules["alexnet_export.cli"] = stub
from alexnet_export._entry import main as console_script
console_script()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
@pytest.mark.parametrize(("given", "read"), [(None, "4"), ("20", "20")])
def test_the_console_script_lets_openblas_threads_sleep_unless_the_user_chose(given: str | None, read: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    done = subprocess.run([sys.executable, "-c", OPENBLAS_TIMEOUT], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.strip() == "no-openblas":
        pytest.skip("this numpy does not use OpenBLAS")
    assert done.stdout.strip() == read  # set before numpy loads OpenBLAS, never over the user's value
