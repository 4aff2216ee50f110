"""``download``: fetch bvlc_alexnet.npy, resumably, and put it in place only once its sha256 matches.

The transfer goes to ``DEST.part`` beside the destination. If that file exists (an earlier run was
cut off), the request asks for the rest with ``Range: bytes=N-``; a server answering ``206`` with the
matching ``Content-Range`` is appended to, one answering ``200`` (no range support) starts over.
Every socket operation has a timeout. When the bytes are complete, their sha256 is compared with the
pin (by default the published one); only a match is renamed to DEST. A mismatch deletes the partial
file, so nothing is left at DEST, and the error says what was expected and what was received.

Failures raise :class:`DownloadError` (transient: timeout, connection cut; the partial file is kept
for a resume; the CLI exits 1) or :class:`converters.errors.InputError` (definitive: HTTP error,
checksum mismatch, bad option, unwritable destination; exit 2). Standard library only.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.arch import PUBLISHED_SHA256
from converters.errors import InputError, OutputExistsError

DEFAULT_URL = "https://www.cs.toronto.edu/~guerzhoy/tf_alexnet/bvlc_alexnet.npy"
DEFAULT_TIMEOUT = 30.0
CHUNK = 1 << 20
MAX_BYTES = 512 * 2**20  # bvlc_alexnet.npy is ~233 MiB; a transfer never writes more than this
STALL_BYTES = 64 * 2**10  # at least this much must arrive in every --timeout window, or the transfer has stalled
USER_AGENT = "alexnet-export"


class DownloadError(Exception):
    """A transfer that failed part-way for a reason that may go away (timeout, cut connection)."""


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did: the file, its size and sha256, and how many bytes came from a resume."""

    path: Path
    size: int
    sha256: str
    resumed_from: int
    already_present: bool = False


def part_path(dest: Path) -> Path:
    """Where the incomplete transfer lives: ``DEST.part`` beside ``dest``."""
    return dest.with_name(dest.name + ".part")


def check_sha256(value: str) -> str:
    """``value`` lower-cased, when it is 64 hex digits.

    Raises:
        InputError: anything else.

    """
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise InputError(f"--sha256: expected 64 hexadecimal digits, received {value!r}")
    return value.lower()


def _check_url(url: str) -> None:
    if not re.match(r"https?://[^/]+", url):
        raise InputError(f"--url: expected an http:// or https:// URL, received {url!r}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, start: int, timeout: float) -> tuple[object, int, int | None]:
    """The response, the offset its body starts at (``start`` or 0) and the total size if known."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the partial file is already whole (or longer than the file)
            return None, start, None
        raise InputError(f"{url}: expected the weights file, received HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect: {reason}") from None
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != start:
            response.close()
            raise DownloadError(f"{url}: the server answered a resume with a different range; run again")
        total = None if match.group(2) == "*" else int(match.group(2))
        return response, start, total
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def download(
    dest: str | os.PathLike[str],
    *,
    url: str = DEFAULT_URL,
    sha256: str = PUBLISHED_SHA256,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming ``dest.part``, and keep it only if its sha256 is ``sha256``.

    Args:
        dest: the file to create.
        url: where the weights are (http or https).
        sha256: the expected digest (64 hex digits).
        timeout: seconds any connect or read may wait.
        force: replace an existing ``dest`` (only after the new file is verified). Without it, an existing
            ``dest`` whose sha256 is already ``sha256`` is kept and nothing is fetched (so a cached file
            makes the command a no-op), and one with another digest is refused.
        progress: called with (bytes so far, total or None) as the transfer goes.

    Raises:
        InputError: a bad option, an existing ``dest`` without ``force``, an HTTP error, an unwritable
            destination, or a checksum mismatch (the partial file is deleted).
        DownloadError: a timeout or cut connection (the partial file is kept for a resume).

    """
    dest = Path(dest)
    expected = check_sha256(sha256)
    _check_url(url)
    if not math.isfinite(timeout) or timeout <= 0:
        raise InputError(f"--timeout: expected a positive number of seconds, received {timeout}")
    if dest.is_dir():
        raise InputError(f"{dest}: expected a file path to write, received a folder")
    if (dest.exists() or dest.is_symlink()) and not force:
        if dest.is_file():
            actual = _file_sha256(dest)
            if actual == expected:
                return DownloadResult(dest, dest.stat().st_size, actual, 0, already_present=True)
            raise OutputExistsError(
                f"{dest}: already exists with sha256 {actual}, expected {expected}; pass --force to replace it"
            )
        raise OutputExistsError(f"{dest}: output already exists; pass --force to overwrite it")
    part = part_path(dest)
    if part.is_symlink() or (part.exists() and not part.is_file()):
        raise InputError(f"{part}: expected the partial download (a plain file), received a link or folder; remove it")
    start = part.stat().st_size if part.is_file() else 0
    response, offset, total = _open(url, start, timeout)
    if total is not None and total > MAX_BYTES:
        if response is not None:
            response.close()  # type: ignore[attr-defined]
        raise InputError(f"{url}: expected at most {MAX_BYTES} bytes, the server declares {total}; nothing fetched")
    try:
        if response is not None:
            _receive(response, part, offset, total, url, timeout, progress)
    finally:
        if response is not None:
            response.close()  # type: ignore[attr-defined]
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: received {size} of {total} bytes; run again to resume")
    actual = _file_sha256(part)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise InputError(
            f"{url}: checksum mismatch: expected sha256 {expected}, received {actual} ({size} bytes); "
            f"nothing was written to {dest}"
        )
    os.replace(part, dest)
    return DownloadResult(dest, size, actual, offset)


def _receive(
    response: object,
    part: Path,
    offset: int,
    total: int | None,
    url: str,
    timeout: float,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Write the body to ``part`` from ``offset`` (appending on a resume, truncating otherwise)."""
    dest = part.with_name(part.name.removesuffix(".part"))
    try:
        part.parent.mkdir(parents=True, exist_ok=True)  # a cache folder that is not there yet
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never write through a link
        stream = os.fdopen(os.open(part, flags, 0o644), "r+b")
    except OSError as exc:
        raise InputError(f"{dest}: cannot write: {exc.strerror or exc}") from None
    done = offset
    limit = total if total is not None else MAX_BYTES
    window_start, window_bytes = time.monotonic(), 0
    with stream:
        stream.seek(offset)
        stream.truncate()
        while True:
            try:
                chunk = response.read1(CHUNK)  # type: ignore[attr-defined]  # what has arrived, up to CHUNK
            except TimeoutError:
                raise DownloadError(
                    f"{url}: no data for {timeout:g} s after {done} bytes; kept {part}, run again to resume"
                ) from None
            except (ConnectionError, http.client.HTTPException, urllib.error.URLError):
                raise DownloadError(
                    f"{url}: connection lost after {done} bytes; kept {part}, run again to resume"
                ) from None
            if not chunk:
                break
            if done + len(chunk) > limit:
                stream.close()
                part.unlink(missing_ok=True)
                raise InputError(
                    f"{url}: expected {limit} bytes ({'Content-Length' if total is not None else 'the size cap'}), "
                    f"the server sent more; deleted {part}"
                )
            window_bytes += len(chunk)
            now = time.monotonic()
            if window_bytes >= STALL_BYTES:
                window_start, window_bytes = now, 0
            elif now - window_start > timeout:
                stream.write(chunk)
                raise DownloadError(
                    f"{url}: stalled: under {STALL_BYTES // 1024} KiB in {timeout:g} s after {done + len(chunk)} "
                    f"bytes; kept {part}, run again to resume"
                )
            try:
                stream.write(chunk)
            except OSError as exc:
                raise InputError(f"{dest}: cannot write: {exc.strerror or exc}") from None
            done += len(chunk)
            if progress:
                progress(done, total)
    if total is not None and done < total:
        raise DownloadError(f"{url}: connection closed after {done} of {total} bytes; kept {part}, run again to resume")
