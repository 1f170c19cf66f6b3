"""Resumable downloads of large files: ``.part`` file, HTTP Range resume, size/checksum check, rename.

The bytes go to ``.<name>.part`` beside the target. Every attempt (the shared client's retries after a
dropped connection, or a later run after the process died) asks for ``Range: bytes=<part size>-`` and
appends; a server that ignores Range (200 instead of 206) restarts the file from zero. Only a complete
file whose size matches the server's (``Content-Range`` total or ``Content-Length``, and the listing's size
when known) and whose checksum matches (when one is given) is renamed to the final name, so a partial
file never appears there. An exclusive lock per target keeps two downloaders of one file apart.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from collections.abc import Callable
from pathlib import Path

from perc_platform.archives import _http
from perc_platform.errors import ParameterError, RemoteError
from perc_platform.storage.cache import cache_dir, entry_lock, record, storage_errors

__all__ = ["ByteProgress", "download_resumable", "part_path"]

#: ``progress(bytes_of_this_file_on_disk, file_size_or_None)``.
ByteProgress = Callable[[int, "int | None"], None]

_BLOCK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _lock_for(target: Path) -> Path:
    """The lock of a download lives in the cache, not beside the file: no ``.lock`` is left in the user's
    download folder, and two processes downloading the same target still share one lock."""
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:32]
    return cache_dir() / "locks" / "downloads" / digest


def part_path(target: Path) -> Path:
    """Where the bytes of ``target`` collect until it is complete."""
    return target.with_name(f".{target.name}.part")


def _checksum(path: Path, spec: str) -> tuple[str, str]:
    algorithm, _, expected = spec.partition(":")
    if algorithm.lower() not in ("sha256", "md5", "sha1") or not expected:
        raise ParameterError(f"checksum {spec!r}: give 'sha256:<hex>', 'sha1:<hex>' or 'md5:<hex>'")
    with open(path, "rb") as handle:
        return expected.lower(), hashlib.file_digest(handle, algorithm.lower()).hexdigest()


def download_resumable(url: str, target: Path, *, what: str, size: int | None = None, checksum: str | None = None,
                       progress: ByteProgress | None = None) -> Path:
    """Download ``url`` to ``target`` (resuming a ``.part`` left by an earlier try) and return ``target``.

    A ``target`` that already exists (with ``size`` bytes, when given) is returned without any request.
    Raises RemoteError when the finished file has the wrong size or checksum (the part is then removed).
    """
    if target.exists() and (size is None or target.stat().st_size == size):
        return target
    part = part_path(target)
    with entry_lock(_lock_for(target)):
        if target.exists() and (size is None or target.stat().st_size == size):
            return target
        headers: dict[str, str] = {}
        expected: dict[str, int] = {}

        def before() -> None:
            # Runs before every attempt: ask only for what the part file does not hold yet.
            # Ask from the last byte already held: the answer is never empty (so a part that already holds
            # the whole file gets a 206 telling the size, not a 416) and that byte must match ours.
            have = part.stat().st_size if part.exists() else 0
            headers.pop("Range", None)
            if have:
                headers["Range"] = f"bytes={have - 1}-"

        def copy(resp: http.client.HTTPResponse, answer: _http.Answer) -> int:
            have = part.stat().st_size if part.exists() else 0
            length = int(answer.headers.get("content-length", -1))
            skip = 0
            if answer.status == 206:
                match = _CONTENT_RANGE.match(answer.headers.get("content-range", ""))
                if not match or not have or int(match.group(1)) != have - 1:
                    raise RemoteError(f"{what}: asked {url} for bytes {max(have - 1, 0)}- and got "
                                      f"{answer.headers.get('content-range')!r}; not resuming from a wrong offset")
                if match.group(3) != "*":
                    expected["total"] = int(match.group(3))
                with open(part, "rb") as held:
                    held.seek(have - 1)
                    if resp.read(1) != held.read(1):
                        # the remote file changed since the part was written: start again from zero
                        part.unlink()
                        raise http.client.IncompleteRead(b"", 1)
                skip = 1
            else:
                have = 0  # the server sent the whole file (Range ignored or not asked): start over
                if length >= 0:
                    expected["total"] = length
            got = skip
            with storage_errors(part, f"{what} ({part.name})"), open(part, "ab" if have else "wb") as handle:
                while block := resp.read1(_BLOCK):
                    handle.write(block)
                    got += len(block)
                    if progress is not None:
                        progress(have - skip + got, expected.get("total", size))
                handle.flush()
                os.fsync(handle.fileno())
            if length >= 0 and got != length:
                raise http.client.IncompleteRead(b"", length - got)  # retried: resumes from here
            return have - skip + got

        with storage_errors(target):
            target.parent.mkdir(parents=True, exist_ok=True)
        if size is not None and part.exists() and part.stat().st_size == size:
            got = size  # finished by an earlier run that stopped before the rename
        else:
            if size is not None and part.exists() and part.stat().st_size > size:
                part.unlink()
            try:
                got = _http.request(url, what=what, on_body=copy, headers=headers, before=before)
            except RemoteError as exc:
                if "HTTP 416" not in str(exc) or not part.exists():
                    raise
                part.unlink()  # the part is longer than the remote file (which changed): start again from zero
                got = _http.request(url, what=what, on_body=copy, headers=headers, before=before)
        total = expected.get("total", got)
        for label, want in (("the server's size", total), ("the listed size", size)):
            if want is not None and got != want:
                part.unlink(missing_ok=True)
                raise RemoteError(f"{what}: downloaded {got} bytes from {url} but {label} is {want}; "
                                  "the partial file was removed, try again")
        digest = None
        if checksum:
            want_sum, have_sum = _checksum(part, checksum)
            if want_sum != have_sum:
                part.unlink(missing_ok=True)
                raise RemoteError(f"{what}: checksum of the download from {url} is {have_sum}, expected "
                                  f"{want_sum}; the file was removed, try again")
            digest = checksum
        os.replace(part, target)
        record("empiar-file", what, target, url=url, bytes=got, **({"checksum": digest} if digest else {}))
    return target
