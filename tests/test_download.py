"""``download`` against an HTTP server on 127.0.0.1 only: success, resume, 404, timeout, checksum, unwritable path."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from alexnet_export.download import DownloadError, download, part_path
from converters.errors import InputError, OutputExistsError

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, not a multiple of the chunk size
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class Server(ThreadingHTTPServer):
    """Serves PAYLOAD at /w.npy; ``mode`` changes how: ok, cut, no-range, slow."""

    mode = "ok"
    ranges: list[str | None]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        if self.path != "/w.npy":
            self.send_error(404, "Not Found")
            return
        start = 0
        header = self.headers.get("Range")
        if header and server.mode != "no-range":
            start = int(header.removeprefix("bytes=").rstrip("-"))
            if server.mode == "wrong-range":  # claims to resume somewhere else
                self.send_response(206)
                self.send_header("Content-Range", f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
                return
            if start >= len(PAYLOAD):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        if server.mode != "endless":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.mode == "endless":  # no Content-Length: a close-delimited stream that never ends
            self.close_connection = True
            chunk = b"\0" * 65536
            for _ in range(10_000):
                self.wfile.write(chunk)
            return
        if server.mode == "trickle":  # a byte every 0.1 s: no read ever times out
            for byte in body[:200]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
            return
        if server.mode == "slow":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            time.sleep(3)
            return
        if server.mode == "cut":
            server.mode = "ok"  # the next request succeeds
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[Server]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.ranges = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: Server, path: str = "/w.npy") -> str:
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    return f"http://127.0.0.1:{port}{path}"


def test_success_verifies_and_renames_into_place(server: Server, tmp_path: Path) -> None:
    result = download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    assert (tmp_path / "w.npy").read_bytes() == PAYLOAD
    assert (result.size, result.sha256, result.resumed_from) == (len(PAYLOAD), DIGEST, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]
    assert server.ranges == [None]


def test_resume_after_a_cut_connection(server: Server, tmp_path: Path) -> None:
    server.mode = "cut"
    with pytest.raises(DownloadError, match=r"connection (closed|lost) after \d+ .*run again to resume"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=5)
    kept = part_path(tmp_path / "w.npy").stat().st_size
    assert 0 < kept < len(PAYLOAD) and not (tmp_path / "w.npy").exists()
    result = download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    assert server.ranges == [None, f"bytes={kept}-"]
    assert result.resumed_from == kept and (tmp_path / "w.npy").read_bytes() == PAYLOAD
    assert not part_path(tmp_path / "w.npy").exists()


def test_a_server_without_range_support_starts_over(server: Server, tmp_path: Path) -> None:
    part_path(tmp_path / "w.npy").write_bytes(b"garbage that is not the start of the file")
    server.mode = "no-range"
    result = download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    assert result.resumed_from == 0 and (tmp_path / "w.npy").read_bytes() == PAYLOAD


def test_a_complete_part_file_is_verified_without_refetching(server: Server, tmp_path: Path) -> None:
    part_path(tmp_path / "w.npy").write_bytes(PAYLOAD)
    download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    assert (tmp_path / "w.npy").read_bytes() == PAYLOAD and server.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_404_leaves_nothing(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"/missing.npy: expected the weights file, received HTTP 404 Not Found"):
        download(tmp_path / "w.npy", url=url(server, "/missing.npy"), sha256=DIGEST)
    assert list(tmp_path.iterdir()) == []


def test_a_slow_server_times_out_cleanly(server: Server, tmp_path: Path) -> None:
    server.mode = "slow"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"no data for 0.5 s after 1000 bytes; kept .*w.npy.part, run again"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=0.5)
    assert time.monotonic() - start < 2.5
    assert not (tmp_path / "w.npy").exists()


def test_wrong_checksum_leaves_nothing_and_says_both_digests(server: Server, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(InputError) as caught:
        download(tmp_path / "w.npy", url=url(server), sha256=wrong)
    assert f"checksum mismatch: expected sha256 {wrong}, received {DIGEST} ({len(PAYLOAD)} bytes)" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_destination_is_refused(server: Server, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"cannot write"):
        download(tmp_path / "file" / "w.npy", url=url(server), sha256=DIGEST)
    with pytest.raises(InputError, match=r"/proc/w.npy: cannot write"):
        download(Path("/proc/w.npy"), url=url(server), sha256=DIGEST)


def test_an_existing_file_needs_force_and_survives_a_failed_replacement(server: Server, tmp_path: Path) -> None:
    (tmp_path / "w.npy").write_bytes(b"mine")
    with pytest.raises(OutputExistsError):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    with pytest.raises(InputError, match="checksum mismatch"):
        download(tmp_path / "w.npy", url=url(server), sha256="1" * 64, force=True)
    assert (tmp_path / "w.npy").read_bytes() == b"mine"
    download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, force=True)
    assert (tmp_path / "w.npy").read_bytes() == PAYLOAD


def test_cli_exit_codes_and_lines(cli, server: Server, tmp_path: Path) -> None:
    ok = cli("download", tmp_path / "w.npy", "--url", url(server), "--sha256", DIGEST.upper())
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == f"wrote {tmp_path / 'w.npy'} ({len(PAYLOAD):,} bytes; sha256 {DIGEST} matches --sha256)\n"
    cases = [
        (["--url", url(server), "--sha256", "abc"], 2, "error: --sha256: expected 64 hexadecimal digits, received 'abc'"),
        (["--url", "ftp://127.0.0.1/w.npy"], 2, "error: --url: expected an http:// or https:// URL, received 'ftp://127.0.0.1/w.npy'"),
        (["--url", url(server, "/nope"), "--sha256", DIGEST], 2, f"error: {url(server, '/nope')}: expected the weights file, received HTTP 404"),
        (["--url", url(server), "--timeout", "0"], 2, "error: --timeout: expected a positive number of seconds, received 0.0"),
    ]
    for args, code, message in cases:
        result = cli("download", tmp_path / "other.npy", *args)
        assert result.exit_code == code and result.stderr.startswith(message), result.output
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npy"]  # nothing half-written
    server.mode = "slow"
    slow = cli("download", tmp_path / "other.npy", "--url", url(server), "--sha256", DIGEST, "--timeout", "0.5")
    assert slow.exit_code == 1 and "run again to resume" in slow.stderr
    assert not (tmp_path / "other.npy").exists()


def test_the_default_pin_is_the_published_one() -> None:
    import inspect

    from converters.arch import PUBLISHED_SHA256

    assert inspect.signature(download).parameters["sha256"].default == PUBLISHED_SHA256


def test_progress_is_reported_up_to_the_total(server: Server, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_folder_as_destination_is_refused(server: Server, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(InputError, match=r"/dir: expected a file path to write, received a folder"):
        download(tmp_path / "dir", url=url(server), sha256=DIGEST, force=True)
    assert list((tmp_path / "dir").iterdir()) == [] and server.ranges == []


def test_a_resume_answered_with_another_range_keeps_the_part_file(server: Server, tmp_path: Path) -> None:
    part_path(tmp_path / "w.npy").write_bytes(PAYLOAD[:1000])
    server.mode = "wrong-range"
    with pytest.raises(DownloadError, match=r"answered a resume with a different range; run again"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST)
    assert part_path(tmp_path / "w.npy").read_bytes() == PAYLOAD[:1000] and not (tmp_path / "w.npy").exists()


def test_a_file_already_there_with_the_pinned_digest_is_kept_without_a_request(cli, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "w.npy"  # the cache folder does not exist on a cache miss
    first = cli("download", dest, "--url", url(server), "--sha256", DIGEST)
    assert first.exit_code == 0 and dest.read_bytes() == PAYLOAD, first.output
    requests = len(server.ranges)
    again = cli("download", dest, "--url", url(server), "--sha256", DIGEST)
    assert again.exit_code == 0, again.output
    assert again.stdout == f"kept {dest}: already there ({len(PAYLOAD):,} bytes; sha256 {DIGEST} matches --sha256)\n"
    assert len(server.ranges) == requests  # a cache hit costs no request
    dest.write_bytes(PAYLOAD[:-1] + b"X")
    stale = cli("download", dest, "--url", url(server), "--sha256", DIGEST)
    assert stale.exit_code == 2 and len(server.ranges) == requests
    assert stale.stderr.startswith(f"error: {dest}: already exists with sha256 ") and f"expected {DIGEST}; pass --force" in stale.stderr
    assert cli("download", dest, "--url", url(server), "--sha256", DIGEST, "--force").exit_code == 0
    assert dest.read_bytes() == PAYLOAD


def test_an_endless_stream_stops_at_the_size_cap_and_leaves_nothing(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alexnet_export.download as module

    monkeypatch.setattr(module, "MAX_BYTES", 4 * 2**20)  # the real cap is 512 MiB; the stream would send 640
    server.mode = "endless"
    with pytest.raises(InputError, match=r"expected 4194304 bytes \(the size cap\), the server sent more; deleted"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_trickle_that_never_times_a_read_out_is_a_stall(server: Server, tmp_path: Path) -> None:
    server.mode = "trickle"
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"stalled: under 64 KiB in 0.5 s after \d+ bytes; kept .*w.npy.part"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=0.5)
    assert time.monotonic() - start < 3


def test_a_part_file_that_is_a_symlink_is_never_followed(server: Server, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    part_path(tmp_path / "w.npy").symlink_to(victim)
    with pytest.raises(InputError, match=r"w.npy.part: expected the partial download \(a plain file\), received a link"):
        download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=5)
    assert victim.read_bytes() == b"precious" and server.ranges == []


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_a_timeout_that_is_not_a_positive_number_is_one_line(cli, tmp_path: Path, value: str) -> None:
    result = cli("download", tmp_path / "w.npy", "--url", "http://127.0.0.1:9/w.npy", "--timeout", value)
    assert result.exit_code == 2
    assert result.output.strip().endswith(f"--timeout: expected a positive number of seconds, received {float(value)}")
    assert result.output.count("\n") == 1


def test_a_declared_size_over_the_cap_fetches_nothing(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alexnet_export.download as module

    monkeypatch.setattr(module, "MAX_BYTES", 1024)  # the real cap is 512 MiB; the server declares 1 MiB
    with pytest.raises(InputError, match=r"expected at most 1024 bytes, the server declares 1048580; nothing fetched"):
        module.download(tmp_path / "w.npy", url=url(server), sha256=DIGEST, timeout=5)
    assert list(tmp_path.iterdir()) == []
