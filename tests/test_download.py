"""``data download gtzan``: download, resume, checksum, safe extraction, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import random
import re
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.data.download import MARKER_NAME, URL_ENVIRONMENT_VARIABLE, download_file, download_gtzan
from benchmark.errors import BenchmarkError
from tests.helpers import free_port

#: Incompressible clips, so the archive spans several download chunks (64 KiB).
CLIPS = {
    f"genres/{genre}/{genre}.{index:05d}.au": random.Random(f"{genre}{index}").randbytes(40_000)
    for genre in ("blues", "jazz", "rock")
    for index in range(3)
}


def make_archive(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A tar.gz of ``members`` (name -> bytes) and symlinks (name -> target), names as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


ARCHIVE = make_archive(CLIPS)
ARCHIVE_MD5 = md5_of(ARCHIVE)


@dataclass
class Behaviour:
    """What the server sends, and what it was asked."""

    payload: bytes = ARCHIVE
    honour_range: bool = True
    cut_after: int | None = None  # send only this many body bytes, then close
    status: int | None = None  # answer every request with this error status
    delay: float = 0.0  # seconds to wait before answering
    ranges: list[str | None] = field(default_factory=list)  # the Range header of each request


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        behaviour: Behaviour = self.server.behaviour
        asked = self.headers.get("Range")
        behaviour.ranges.append(asked)
        time.sleep(behaviour.delay)
        if behaviour.status:
            self.send_error(behaviour.status)
            return
        body, start = behaviour.payload, 0
        if asked and behaviour.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        sent = body[start:]
        self.send_header("Content-Length", str(len(sent)))
        self.end_headers()
        if behaviour.cut_after is not None:
            sent = sent[: behaviour.cut_after]  # Content-Length promised more; the socket closes
        self.wfile.write(sent)

    def log_message(self, *args) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # A client that gave up (the timeout test) breaks the pipe on purpose.


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 serving the archive; yields (url, behaviour)."""
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/sound/genres.tar.gz", httpd.behaviour
    httpd.shutdown()
    httpd.server_close()


def assert_extracted(out: Path) -> None:
    genres = out / "genres"
    assert (genres / MARKER_NAME).is_file()
    for name, data in CLIPS.items():
        assert (out / name).read_bytes() == data
    assert md5_of((out / "genres.tar.gz").read_bytes()) == ARCHIVE_MD5
    assert sorted(path.name for path in out.iterdir()) == ["genres", "genres.tar.gz"]  # no .part, no temp


def test_downloads_checks_and_extracts_then_skips(server, tmp_path):
    url, behaviour = server
    out = tmp_path / "data"
    assert download_gtzan(out, url=url, md5=ARCHIVE_MD5, progress=False) == out / "genres"
    assert_extracted(out)
    assert behaviour.ranges == [None]
    behaviour.status = 500  # a second call must not even ask
    assert download_gtzan(out, url=url, md5=ARCHIVE_MD5, progress=False) == out / "genres"
    assert behaviour.ranges == [None]


def test_url_from_the_environment(server, tmp_path, monkeypatch):
    url, behaviour = server
    monkeypatch.setenv(URL_ENVIRONMENT_VARIABLE, url)
    download_gtzan(tmp_path, md5=ARCHIVE_MD5, progress=False)
    assert_extracted(tmp_path)
    assert behaviour.ranges == [None]


def test_resumes_a_partial_download_with_range(server, tmp_path):
    url, behaviour = server
    (tmp_path / "genres.tar.gz.part").write_bytes(ARCHIVE[:50_000])
    download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert behaviour.ranges == ["bytes=50000-"]
    assert_extracted(tmp_path)


def test_a_server_ignoring_range_restarts_from_zero(server, tmp_path):
    url, behaviour = server
    behaviour.honour_range = False
    (tmp_path / "genres.tar.gz.part").write_bytes(b"stale bytes that must not survive")
    download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert behaviour.ranges == ["bytes=33-"]
    assert_extracted(tmp_path)


def test_a_whole_part_file_answered_416_is_checked_and_used(server, tmp_path):
    url, behaviour = server
    (tmp_path / "genres.tar.gz.part").write_bytes(ARCHIVE)
    download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert behaviour.ranges == [f"bytes={len(ARCHIVE)}-"]
    assert_extracted(tmp_path)


def test_bad_checksum_deletes_the_file_and_extracts_nothing(server, tmp_path):
    url, _ = server
    with pytest.raises(BenchmarkError) as caught:
        download_gtzan(tmp_path, url=url, md5="0" * 32, progress=False)
    message = str(caught.value)
    assert "checksum mismatch" in message and "0" * 32 in message and ARCHIVE_MD5 in message
    assert "--data-dir" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no archive, no .part, no genres/, no temporary folder


def test_a_cut_transfer_keeps_the_part_and_a_rerun_resumes(server, tmp_path):
    url, behaviour = server
    behaviour.cut_after = 200_000
    with pytest.raises(BenchmarkError) as caught:
        download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    message = str(caught.value)
    assert "resumes" in message and "--data-dir" in message and "\n" not in message
    kept = (tmp_path / "genres.tar.gz.part").read_bytes()
    # All whole chunks received are kept; urllib3 drops the one it was in the middle of.
    assert 200_000 - (1 << 16) < len(kept) <= 200_000 and kept == ARCHIVE[: len(kept)]
    assert not (tmp_path / "genres").exists()

    behaviour.cut_after = None
    download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert behaviour.ranges == [None, f"bytes={len(kept)}-"]
    assert_extracted(tmp_path)


def test_an_http_error_is_one_line(server, tmp_path):
    url, behaviour = server
    behaviour.status = 404
    with pytest.raises(BenchmarkError, match=r"HTTP 404 Not Found.*--data-dir") as caught:
        download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_silent_server_times_out_in_one_line(server, tmp_path):
    url, behaviour = server
    behaviour.delay = 1.0
    with pytest.raises(BenchmarkError, match=r"^could not download .*: timed out: Read timed out") as caught:
        download_file(url, tmp_path / "genres.tar.gz", md5=ARCHIVE_MD5, progress=False, timeout=0.2)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_one_line_naming_data_dir(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/genres.tar.gz"
    with pytest.raises(BenchmarkError) as caught:
        download_gtzan(tmp_path, url=url, progress=False)
    message = str(caught.value)
    assert "Connection refused" in message and "--data-dir" in message and "\n" not in message
    assert "object at 0x" not in message and "Traceback" not in message


@pytest.mark.parametrize(
    ("archive", "culprit"),
    [
        (make_archive({"genres/blues/blues.00000.au": b"x", "../evil.txt": b"evil"}), "../evil.txt"),
        (make_archive({"genres/blues/blues.00000.au": b"x", "/tmp/evil.txt": b"evil"}), "/tmp/evil.txt"),
        (make_archive({"genres/blues/blues.00000.au": b"x"}, links={"genres/jazz": "../../outside"}),
         "genres/jazz"),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_an_escaping_archive_is_refused_naming_the_member(server, tmp_path, archive, culprit):
    url, behaviour = server
    behaviour.payload = archive
    out = tmp_path / "inside" / "out"
    with pytest.raises(BenchmarkError) as caught:
        download_gtzan(out, url=url, md5=md5_of(archive), progress=False)
    assert repr(culprit) in str(caught.value)
    assert sorted(path.name for path in out.iterdir()) == ["genres.tar.gz"]  # no genres/, no temp
    assert [path.name for path in tmp_path.rglob("*")] == ["inside", "out", "genres.tar.gz"]


def test_not_a_tar_gz_is_a_clear_error(server, tmp_path):
    url, behaviour = server
    behaviour.payload = b"<html>a captive portal</html>"
    with pytest.raises(BenchmarkError, match="not a readable tar.gz archive"):
        download_gtzan(tmp_path, url=url, md5=md5_of(behaviour.payload), progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["genres.tar.gz"]


def test_an_unfinished_genres_folder_is_not_overwritten(server, tmp_path):
    url, behaviour = server
    (tmp_path / "genres" / "blues").mkdir(parents=True)
    with pytest.raises(BenchmarkError, match="not a finished download"):
        download_gtzan(tmp_path, url=url, md5=ARCHIVE_MD5, progress=False)
    assert behaviour.ranges == []


def test_cli_downloads_and_says_how_to_use_it(server, tmp_path, capsys):
    url, _ = server
    status = main(["data", "download", "gtzan", "--out", str(tmp_path), "--url", url, "--md5", ARCHIVE_MD5,
                   "--no-progress"])
    assert status == 0
    assert_extracted(tmp_path)
    assert f"--data-dir {tmp_path / 'genres'}" in capsys.readouterr().out


def test_cli_bad_checksum_is_one_error_line(server, tmp_path, capsys):
    url, _ = server
    status = main(["data", "download", "gtzan", "--out", str(tmp_path), "--url", url, "--md5", "f" * 32,
                   "--no-progress"])
    assert status == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "checksum mismatch" in errors[0]
