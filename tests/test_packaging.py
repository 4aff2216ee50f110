"""The installed package: the console script's guard against another distribution's ``converters``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alexnet_export import OWNER_LINE, converters_problem


def run_module(tmp_path: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-m", "alexnet_export", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_this_checkouts_converters_is_ours() -> None:
    import converters

    assert converters_problem() is None
    assert OWNER_LINE in Path(converters.__file__).read_text()


def test_a_foreign_converters_package_is_one_line_and_exit_2(tmp_path: Path) -> None:
    foreign = tmp_path / "site" / "converters"
    foreign.mkdir(parents=True)
    (foreign / "__init__.py").write_text('"""Someone else\'s converters (e.g. the distribution of that name)."""\n')
    result = run_module(tmp_path, "--help", pythonpath=tmp_path / "site")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {foreign}: expected alexnet-export's package 'converters', received ")
    assert "virtual environment of its own" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    result = run_module(tmp_path, "arch", "list")
    assert result.returncode == 0, result.stderr
    assert "bvlc-alexnet" in result.stdout
