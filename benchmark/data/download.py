"""Download GTZAN's archive, check it, and extract it safely.

The archive is large (1.2 GB) and its canonical server is slow and often unreachable, so the
download resumes where an earlier attempt stopped, and every failure is one line that says what
to do next, including how to use a copy of GTZAN obtained another way (``--data-dir``).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import requests
from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

#: GTZAN's canonical address (Tzanetakis' server at the University of Victoria).
GTZAN_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"
#: The md5 of ``genres.tar.gz``: the plain-HTTP download is only trusted once this matches.
GTZAN_MD5 = "5b3d6dddb579ab49814ab86dba69e7c7"
#: An environment variable that overrides :data:`GTZAN_URL` (a mirror, a local copy's server).
URL_ENVIRONMENT_VARIABLE = "GENRE_BENCHMARK_GTZAN_URL"
#: Written inside the extracted folder before it is moved into place: its presence means complete.
MARKER_NAME = ".complete"

# Small enough that a cut transfer loses little: urllib3 drops the unfinished chunk it was reading.
_CHUNK = 1 << 16
_DATA_DIR_HINT = (
    "To use a copy of GTZAN obtained another way, extract genres.tar.gz and pass its genres/ folder "
    "with --data-dir, e.g. python -m benchmark run --all --experiment paper --data-dir DIR/genres"
)


def download_gtzan(out: str | Path, *, url: str | None = None, md5: str = GTZAN_MD5,
                   progress: bool = True) -> Path:
    """Download GTZAN into ``out`` and extract it; return the ``out/genres`` folder.

    ``url`` defaults to ``$GENRE_BENCHMARK_GTZAN_URL``, else :data:`GTZAN_URL`. A finished
    earlier run is detected by its marker and skipped. The archive is kept as
    ``out/genres.tar.gz``. Every failure is a one-line :class:`BenchmarkError`.
    """
    out = Path(out).expanduser()
    genres = out / "genres"
    if (genres / MARKER_NAME).is_file():
        log.info("GTZAN is already downloaded and extracted in %s; nothing to do", genres)
        return genres
    if genres.exists():
        # Not ours, or not finished: never overwrite or merge into a folder we cannot vouch for.
        raise BenchmarkError(
            f"{genres} exists but is not a finished download (no {MARKER_NAME} in it); "
            "move it away or choose another --out"
        )
    url = url or os.environ.get(URL_ENVIRONMENT_VARIABLE) or GTZAN_URL
    try:
        archive = download_file(url, out / "genres.tar.gz", md5=md5, progress=progress)
        return safe_extract(archive, out, top="genres")
    except BenchmarkError as error:
        raise BenchmarkError(f"{error}. {_DATA_DIR_HINT}") from None


def download_file(url: str, destination: str | Path, *, md5: str, progress: bool = True,
                  timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination``, resuming a partial download, and check its md5.

    Bytes go to ``destination.part`` first; a re-run asks the server for the rest only
    (``Range``) and starts over if the server ignores that. The file is renamed to
    ``destination`` only once its md5 matches; a mismatching file is deleted, so no re-run
    resumes garbage. An existing ``destination`` with the right md5 is not downloaded again.
    """
    destination = Path(destination)
    md5 = md5.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", md5):
        raise BenchmarkError(f"not an md5 checksum (32 hex digits): {md5!r}")
    if destination.is_file():
        if _md5_of(destination) == md5:
            return destination
        destination.unlink()  # Changed since we checked it; fetch it again.
    part = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch(url, part, progress=progress, timeout=timeout)
    except requests.RequestException as error:
        held = part.stat().st_size if part.exists() else 0
        if held:
            kept = f"the {held} bytes received are kept in {part} and re-running the same command resumes"
        elif isinstance(error, requests.HTTPError):
            kept = "check the URL"
        else:
            kept = "re-run the command once the server can be reached"
        raise BenchmarkError(f"could not download {url}: {_describe(error)}; {kept}") from None
    actual = _md5_of(part)
    if actual != md5:
        part.unlink()
        raise BenchmarkError(
            f"checksum mismatch for {destination.name} from {url}: expected md5 {md5}, got {actual}; "
            "the file was deleted"
        )
    os.replace(part, destination)
    return destination


def _fetch(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``part``, appending to the bytes already there when the server allows."""
    offset = part.stat().st_size if part.exists() else 0
    # identity: requests would otherwise accept (and silently undo) a gzip Content-Encoding,
    # which breaks both the byte offsets of a resume and the md5 of the file as served.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and offset:
            return  # Nothing left to send: the part is presumably whole, and the md5 decides.
        response.raise_for_status()
        if response.status_code == 206:
            start = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if not start or int(start.group(1)) != offset:
                part.unlink()
                raise requests.HTTPError(f"the server sent an unexpected range "
                                         f"({response.headers.get('Content-Range')!r}); the partial "
                                         "file was deleted")
        else:
            offset = 0  # A 200 is the whole file: the server ignores Range, so start over.
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        with part.open("ab" if offset else "wb") as sink, tqdm(
            total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            try:
                for chunk in response.iter_content(chunk_size=_CHUNK):
                    sink.write(chunk)
                    bar.update(len(chunk))
            finally:
                # Whatever happens, the bytes received are on disk for the next run to resume.
                sink.flush()
                os.fsync(sink.fileno())
    received = part.stat().st_size
    if expected is not None and received < expected:
        raise requests.exceptions.ChunkedEncodingError(
            f"the connection closed after {received} of {expected} bytes"
        )


def _describe(error: requests.RequestException) -> str:
    """A short phrase for a requests failure, without urllib3's object reprs."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"the server answered HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        detail = str(error.args[0]) if error.args else ""
        if "closed after" not in detail:
            detail = "the connection closed before the transfer finished"
        return detail
    # urllib3 wraps the useful words ("Connection refused", "Failed to resolve") in a retry error.
    reason = getattr(error.args[0], "reason", error.args[0]) if error.args else error
    text = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", str(reason))
    prefix = "timed out: " if isinstance(error, requests.Timeout) else ""
    return prefix + " ".join(text.split())


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_extract(archive: str | Path, target_dir: str | Path, *, top: str = "genres") -> Path:
    """Extract the folder ``top`` of a tar archive into ``target_dir``; return ``target_dir/top``.

    Every member is checked first: an absolute path, a ``..`` component, a link or a special
    file is a :class:`BenchmarkError` naming it, and tarfile's ``data`` filter guards the
    extraction as well. Extraction goes to a temporary folder inside ``target_dir`` and the
    result is renamed into place, so a failure leaves nothing half-extracted behind.
    """
    archive, target_dir = Path(archive), Path(target_dir)
    final = target_dir / top
    if final.exists():
        raise BenchmarkError(f"{final} already exists; move it away to extract {archive.name} again")
    target_dir.mkdir(parents=True, exist_ok=True)
    # Inside target_dir, so the final rename stays on one file system and is atomic.
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target_dir))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, archive)
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise BenchmarkError(f"{archive} is not a readable tar.gz archive: {error}") from None
        except OSError as error:  # A full disk, a permission: the archive may well be fine.
            raise BenchmarkError(f"could not extract {archive} into {target_dir}: {error}") from None
        extracted = staging / top
        if not extracted.is_dir():
            raise BenchmarkError(f"{archive} holds no {top}/ folder at its top")
        (extracted / MARKER_NAME).write_text(f"extracted from {archive.name}\n")
        os.rename(extracted, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("extracted %s into %s", archive.name, final)
    return final


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that could write outside the target or is not a plain file or folder."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        problem = "an absolute path" if path.is_absolute() else "a '..' component"
    elif member.issym() or member.islnk():
        problem = f"a link (to {member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        problem = "a device or other special file"
    else:
        return
    raise BenchmarkError(f"refusing to extract {archive.name}: member {member.name!r} is {problem}")
