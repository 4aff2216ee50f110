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


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux ``renameat2``; ``False`` where the call is not available (other systems, old kernels or libc)."""
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):  # the filesystem or kernel cannot: fall back
        return False
    raise OSError(code, os.strerror(code), str(dst))


def _move_into_place(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest`` only if nothing is there at that moment (no check-then-rename race)."""
    try:
        if _renameat2(tmp, dest, _RENAME_NOREPLACE):
            return
    except FileExistsError:
        raise OutputExistsError(
            f"{dest}: output appeared while this run was writing; pass --force to overwrite it"
        ) from None
    if tmp.is_dir():  # fallback: a directory rename replaces only an empty directory
        if dest.exists() or dest.is_symlink():
            raise OutputExistsError(f"{dest}: output appeared while this run was writing; pass --force to overwrite it")
        os.rename(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest exists: the no-clobber rename for files
    except FileExistsError:
        raise OutputExistsError(
            f"{dest}: output appeared while this run was writing; pass --force to overwrite it"
        ) from None
    tmp.unlink()


def _replace(tmp: Path, dest: Path) -> None:
    """Put ``tmp`` at ``dest`` in one step, the old ``dest`` left at ``tmp`` to delete (or ``tmp`` gone)."""
    new_dir, old_dir = tmp.is_dir(), dest.is_dir() and not dest.is_symlink()
    if new_dir != old_dir:
        kinds = {True: "a folder", False: "a file"}
        raise InputError(
            f"{dest}: --force replaces like with like; this output is {kinds[new_dir]} and {kinds[old_dir]} is "
            "there: remove it yourself"
        )
    if not tmp.is_dir():
        os.replace(tmp, dest)  # atomic for files
        return
    if _renameat2(tmp, dest, _RENAME_EXCHANGE):
        return  # the old folder is now at tmp
    old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))  # fallback: two renames, the old one kept until both
    os.replace(dest, old)
    os.replace(tmp, dest)
    os.replace(old, tmp)


def _stale(dest: Path) -> list[Path]:
    """Temporaries of ``dest`` left by runs that no longer exist (their pid is in the name)."""
    found = []
    for path in dest.parent.glob(f".{dest.name}.*-*"):
        rest = path.name[len(dest.name) + 2 :]
        kind, _, tail = rest.partition("-")
        pid = tail.split("-", 1)[0]
        if kind not in ("tmp", "old") or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            found.append(path)
        except PermissionError:
            continue
    return found


@contextmanager
def atomic_output(dest: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success move it to ``dest``.

    The caller creates a file or a directory at the yielded path. On any exception, including
    ``KeyboardInterrupt``, the temporary is removed and ``dest`` is left as it was.

    - Without ``force`` the final rename does not replace: an output that appeared while this run was
      writing (another run, another user) is kept and this run fails (``renameat2(RENAME_NOREPLACE)``,
      or ``link`` for files where that is missing).
    - With ``force`` a file is replaced by one ``rename``, a folder by one ``renameat2(RENAME_EXCHANGE)``;
      the old one is then deleted, so no hidden copy is left. A file never replaces a folder or the
      reverse.
    - Temporaries of runs that were killed (their pid in the name is gone) are deleted first.

    Raises:
        OutputExistsError: ``dest`` exists (or appears) and ``force`` is false.
        InputError: the output cannot be written (an OSError), naming ``dest`` rather than the temporary;
            or ``force`` would turn a folder into a file or the reverse.

    """
    dest = Path(dest)
    check_output(dest, force=force)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    placed = replaced = False
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in _stale(dest):
            _remove(stale)
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {dest}")
        with _signals_deferred():  # the rename and the flag that says it happened, with no signal between
            if force and (dest.exists() or dest.is_symlink()):
                _replace(tmp, dest)
                replaced = True
            else:
                _move_into_place(tmp, dest)
            placed = True
    except OSError as exc:
        _remove(tmp)
        raise InputError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        if not placed:
            _remove(tmp)
            raise
        raise InterruptedAfterWrite(f"interrupted after {dest} was {'replaced' if replaced else 'written'} "
                                    "in full") from None
    except BaseException:
        if not placed:
            _remove(tmp)
        raise
    finally:
        if replaced:
            _remove(tmp)  # the old output, swapped out: deleted even when interrupted here


class InterruptedAfterWrite(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that arrived once ``dest`` was complete and in place: the message says so."""


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM across the block, then deliver them to the handlers that were there before.

    Python runs signal handlers in the main thread between bytecodes, whichever thread the OS chose to
    deliver to (blocking with ``pthread_sigmask`` would cover the main thread only, and TensorFlow and
    ONNX Runtime start others), so the handlers are swapped for one that records the signal.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in held}
    for sig in held:
        signal.signal(sig, lambda received, frame: caught.append(received))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for received in caught:
            handler = previous[signal.Signals(received)]
            if callable(handler):
                handler(received, None)  # Ctrl-C's KeyboardInterrupt, or the CLI's SIGTERM handler
            elif handler == signal.SIG_DFL:
                signal.raise_signal(received)
