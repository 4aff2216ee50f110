"""`alexnet-export --help` start-up time next to a bare `python -c pass` (the floor) and `import tensorflow`.

Target (issue 2): --help well under 0.5 s on 2 cores, without importing TensorFlow.
Usage: python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _measure import measure_command, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    cli = Path(sys.executable).parent / "alexnet-export"
    rows = {
        "python -c pass [anchor]": measure_command([sys.executable, "-c", "pass"], runs=args.runs),
        "alexnet-export --help": measure_command([cli, "--help"], runs=args.runs),
        "python -c 'import tensorflow'": measure_command([sys.executable, "-c", "import tensorflow"], runs=3),
    }
    report("CLI start-up (whole process)", rows, "python -c pass [anchor]")


if __name__ == "__main__":
    main()
