"""Outputs that are either complete or absent: write to a temporary sibling, then rename into place.

Used by every writer in the toolkit (weight files, SavedModel folders, ONNX and TFLite files), so an
interrupted or failed write never leaves a partial artifact at the path the user asked for, and an
existing artifact is replaced only with ``force``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converters.errors import InputError, OutputExistsError


def check_output(dest: Path, *, force: bool) -> None:
    """Refuse an existing ``dest`` unless ``force``; call before any expensive work.

    Raises:
        OutputExistsError: ``dest`` exists and ``force`` is false.
        InputError: the parent of ``dest`` exists but is not a directory.

    """
    if (dest.exists() or dest.is_symlink()) and not force:
        raise OutputExistsError(f"{dest}: output already exists; pass --force to overwrite it")
    for parent in dest.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{dest}: expected a directory at {parent}, received a file")
            break


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_output(dest: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success move it to ``dest``.

    The caller creates a file or a directory at the yielded path. On any exception, including
    ``KeyboardInterrupt``, the temporary is removed and ``dest`` is left as it was.

    Args:
        dest: the final path.
        force: replace an existing ``dest``.

    Raises:
        OutputExistsError: ``dest`` exists and ``force`` is false.
        InputError: the output cannot be written (an OSError), naming ``dest`` rather than the temporary.

    """
    dest = Path(dest)
    check_output(dest, force=force)
    tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(4)}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {dest}")
        if dest.exists() or dest.is_symlink():
            old = dest.parent / f".{dest.name}.old-{secrets.token_hex(4)}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            _remove(old)
        else:
            os.replace(tmp, dest)
    except OSError as exc:
        _remove(tmp)
        raise InputError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise
