"""alexnet-export: BVLC AlexNet weights to SavedModel, TFLite and ONNX, with proof of parity."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

__version__ = "0.1.0"

OWNER_LINE = '__distribution__ = "alexnet-export"'


def converters_problem() -> str | None:
    """Why the importable top-level ``converters`` is not this project's weights package, or None.

    The repository keeps its weight readers in a top-level ``converters/`` folder, and the wheel installs
    it under that name. Another distribution that installs a package of the same name (there is one on
    the public index) writes into the same folder of site-packages; whichever was installed last wins,
    and uninstalling either removes files of the other. This finds the package without importing it
    and checks that its ``__init__.py`` carries this project's owner line, naming the other
    distribution when the installed metadata knows it.
    """
    spec = importlib.util.find_spec("converters")
    if spec is None or spec.origin is None:
        return "the package 'converters' that alexnet-export installs is missing; reinstall alexnet-export"
    init = Path(spec.origin)
    try:
        ours = OWNER_LINE in init.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"{init}: cannot read alexnet-export's 'converters' package: {exc.strerror or exc}"
    if ours:
        return None
    owners = [d for d in importlib.metadata.packages_distributions().get("converters", []) if d != "alexnet-export"]
    who = f"the distribution {', '.join(sorted(set(owners)))}" if owners else "another distribution or folder"
    return (
        f"{init.parent}: expected alexnet-export's package 'converters', received one from {who} "
        "(both use that top-level name, and the later install overwrote it); install alexnet-export in a "
        "virtual environment of its own, or reinstall it there with --force-reinstall"
    )
