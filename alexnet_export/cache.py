"""A private on-disk cache of the weightless structures the exporters start from (and ``verify`` compares with).

The TFLite converter's output at placement's two small widths, tf2onnx's conversion of the graph with
its weights as inputs, and the SavedModel graph ``verify`` expects depend only on the architecture, the
shapes, the options and the library versions, yet cost 0.2 s to a second or more and, for tf2onnx, leave
~270 MiB in TensorFlow's allocator pool (unless it uses the system allocator, as the console script has it
do). They are
kept in ``$ALEXNET_EXPORT_CACHE`` (``off`` turns it off), else ``$XDG_CACHE_HOME/alexnet-export``
(default ``~/.cache``). The folder and every entry are used only if they are this user's and writable by
no one else, and an entry only if the caller's trust check passes; otherwise the structure is made again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from converters.errors import InputError

CACHE_ENV = "ALEXNET_EXPORT_CACHE"  # a folder, or "off"
MAX_CACHED_BYTES = 16 * 2**20  # the entries are ~1 MB


def cache_dir(kind: str) -> Path | None:
    """The folder of ``kind`` entries, made if missing; ``None`` when off or not safe to use.

    Only a real folder (not a link) owned by this user and writable by no one else: what is in it
    becomes the structure every export and verify of that kind is built from.
    """
    chosen = os.environ.get(CACHE_ENV, "")
    if chosen.lower() in ("off", "0", "no", "false"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = (Path(chosen) if chosen else base / "alexnet-export") / kind
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    private = info.st_uid == os.getuid() and not info.st_mode & 0o022
    return folder if stat.S_ISDIR(info.st_mode) and private else None


def _read(path: Path, check: Callable[[bytes, Path], object]) -> bytes | None:
    """An entry if it is a private regular file of bounded size whose bytes ``check`` accepts."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None
        if info.st_size > MAX_CACHED_BYTES:
            return None
        data = stream.read()
    try:
        check(data, path)
    except InputError:
        return None
    return data


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError:  # a cache that cannot be written is no cache; what was made stands
        temporary.unlink(missing_ok=True)


def cached_bytes(kind: str, name: str, make: Callable[[], bytes], check: Callable[[bytes, Path], object]) -> bytes:
    """The entry ``kind/name`` if it is there, private and passes ``check``, else ``make()``, stored.

    ``check`` refuses an entry by raising ``InputError``. ``name`` must be a digest of everything the
    bytes depend on.
    """
    folder = cache_dir(kind)
    data = _read(folder / name, check) if folder is not None else None
    if data is None:
        data = make()
        if folder is not None and len(data) <= MAX_CACHED_BYTES:  # a larger entry would never be read back
            _write(folder / name, data)
    return data


def entry_name(packages: tuple[str, ...], key: object) -> str:
    """A digest of ``key`` (its ``repr``) and the versions of the toolkit and ``packages``: an entry's name."""
    import importlib.metadata

    from alexnet_export import __version__

    parts = [__version__, *(importlib.metadata.version(p) for p in packages), repr(key)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
