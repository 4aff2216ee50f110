"""The console script: checks that ``converters`` is this project's before the CLI imports it."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI, or say in one line (exit 2) that another distribution's ``converters`` shadows ours."""
    from alexnet_export import converters_problem

    problem = converters_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    from alexnet_export.cli import main as run

    run()
