"""Byte-range reads from local paths and any fsspec URL, with every length checked.

Local files are read with ``os.preadv`` straight into the caller's buffer (no copies). Remote files are
read with one ``fs.cat_ranges`` call per batch; a response of the wrong length means the server ignored
``Range``: the file is then cached once (atomically) and read locally from then on, with a warning.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import posixpath
import re
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import fsspec
import numpy as np

from perc_platform.config import get_config
from perc_platform.errors import (
    DataNotFoundError,
    FormatError,
    RangeNotSupportedWarning,
    RemoteError,
    SizeLimitError,
    StorageError,
    TruncatedFileError,
)
from perc_platform.storage import _http_ranges, _remote, policy
from perc_platform.storage.cache import atomic_write, cache_path_for_url, entry_lock, record, sweep_dead_writers

__all__ = ["decompressed_copy", "file_size", "is_remote", "local_copy", "local_path", "read_bytes",
           "read_consecutive_into", "read_head", "read_ranges_into", "read_runs_into", "resolve_relative"]

_redirects: dict[str, str] = {}  # URLs of servers that ignored Range -> their cached copy
_CHAIN = re.compile(r"^[a-z][a-z0-9+.\-]*::")


def is_remote(url: str) -> bool:
    """True for fsspec URLs other than plain local files: a scheme other than file://, or a chain (``a::b``)."""
    return ("://" in url and not url.startswith("file://")) or bool(_CHAIN.match(url))


def local_path(url: str) -> str:
    """The path of a local file given as a path or a ``file://`` URL (as ``fsspec.open`` reads it)."""
    if url.startswith(("file://", "local://")):
        from fsspec.implementations.local import LocalFileSystem

        return str(LocalFileSystem._strip_protocol(url))
    return url



@contextlib.contextmanager
def open_input(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[IO[bytes]]:
    """Open a file to read it through (a STAR file, a catalog): a local path or ``file://`` URL, or any
    fsspec URL, checked against the network policy with each redirect."""
    if not is_remote(url):
        with open(local_path(url), "rb") as handle:
            yield handle
        return
    fs, path = _fs(url, storage_options)
    mark = _remote.refusals_mark()
    try:
        remote = fs.open(path, "rb")
    except FileNotFoundError:
        refusal = _remote.refused_since(mark)
        if refusal is not None:
            raise refusal from None
        raise
    with remote:
        yield remote


def _fs(url: str, storage_options: dict[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
    return _remote.filesystem(url, storage_options)


_with_retries = _remote.with_retries


def resolve_relative(base: str, name: str) -> str:
    """``name`` resolved against the folder of ``base`` (a local path or a URL); absolute names as they are."""
    if "://" in name or os.path.isabs(name):
        return name
    if is_remote(base):
        scheme, rest = base.split("://", 1)
        host, _, path = rest.partition("/")
        return f"{scheme}://{host}{posixpath.normpath(posixpath.join(posixpath.dirname('/' + path), name))}"
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(local_path(base))), name))


def file_size(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Size of a local file or remote object in bytes (a HEAD request for HTTP)."""
    url = _redirects.get(url, url)
    if not is_remote(url):
        try:
            return os.path.getsize(local_path(url))
        except FileNotFoundError:
            raise DataNotFoundError(f"{url}: no such file; check the path") from None
    fs, path = _fs(url, storage_options)
    size = _with_retries(lambda: fs.info(path).get("size"), url)
    if size is None:
        return len(local_copy(url, storage_options).read_bytes())
    return int(size)


def read_head(url: str, length: int, storage_options: dict[str, Any] | None = None) -> tuple[bytes, int]:
    """The first ``length`` bytes of a file (fewer if it is shorter) and its size in bytes.

    For plain HTTP(S) this is one ranged GET: the size comes with it (``Content-Range``), no HEAD request.
    """
    url = _redirects.get(url, url)
    if url.startswith(("http://", "https://")) and not storage_options:
        config = get_config()
        policy.check_url(url, config=config)
        buf = np.empty(length, np.uint8)
        try:
            got, size = _with_retries(lambda: _http_ranges.read_head(url, length, buf), url, config)
        except _http_ranges.RangeIgnored:
            got = _read_cached_copy(url, [(0, length)], [buf], None, True)[0]
            size = file_size(url)
        return bytes(buf[:got]), size if size >= 0 else file_size(url)
    return read_bytes(url, 0, length, storage_options), file_size(url, storage_options)


def read_bytes(url: str, start: int, length: int, storage_options: dict[str, Any] | None = None) -> bytes:
    """Read ``length`` bytes at ``start``; fewer only at the end of the file."""
    buf = np.empty(length, np.uint8)
    got = read_ranges_into(url, [(start, length)], [buf], storage_options, allow_short=True)
    return bytes(buf[: got[0]])


def read_ranges_into(url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                     storage_options: dict[str, Any] | None = None, *, allow_short: bool = False) -> list[int]:
    """Fill each buffer (a contiguous uint8-viewable array) with the bytes of the matching (start, length).

    Returns the number of bytes read per range. Raises TruncatedFileError on a short read unless
    ``allow_short``.
    """
    url = _redirects.get(url, url)
    if not is_remote(url):
        return _read_local(local_path(url), ranges, buffers, allow_short)
    if url.startswith(("http://", "https://")) and not storage_options:
        return _read_http(url, ranges, buffers, allow_short)
    fs, path = _fs(url, storage_options)
    starts = [s for s, _ in ranges]
    ends = [s + n for s, n in ranges]
    blobs = _with_retries(lambda: fs.cat_ranges([path] * len(ranges), starts, ends, on_error="raise"), url)
    got = []
    for (start, length), blob, buf in zip(ranges, blobs, buffers, strict=True):
        if isinstance(blob, Exception):
            raise RemoteError(f"reading bytes {start}-{start + length} of {url} failed: {blob}")
        if len(blob) > length:  # the server ignored Range and sent the whole file (or more than asked)
            return _read_cached_copy(url, ranges, buffers, storage_options, allow_short)
        flat = buf.reshape(-1).view(np.uint8)
        flat[: len(blob)] = np.frombuffer(blob, np.uint8)
        got.append(len(blob))
    return _checked(url, ranges, got, allow_short)


def _read_cached_copy(url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                      storage_options: dict[str, Any] | None, allow_short: bool) -> list[int]:
    """A server that ignores Range: cache the whole file once and read it (and later reads) locally."""
    warnings.warn(f"{url}: the server ignored an HTTP Range request; caching the whole file once "
                  "and reading it locally", RangeNotSupportedWarning, stacklevel=4)
    local = local_copy(url, storage_options)
    _redirects[url] = str(local)
    return _read_local(str(local), ranges, buffers, allow_short)


def _checked(url: str, ranges: Sequence[tuple[int, int]], got: list[int], allow_short: bool) -> list[int]:
    for (start, length), n in zip(ranges, got, strict=True):
        if n < length and not allow_short:
            raise TruncatedFileError(f"{url}: asked for {length} bytes at {start}, got {n}; "
                                     "the file is shorter than its header says")
    return got


def _read_http(url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
               allow_short: bool) -> list[int]:
    """Plain HTTP(S): each range read straight into its buffer (``_http_ranges``), same checks and fallback."""
    config = get_config()
    policy.check_url(url, config=config)
    try:
        got = _with_retries(lambda: _http_ranges.read_ranges_into(url, ranges, buffers, allow_short), url, config)
    except _http_ranges.RangeIgnored:
        return _read_cached_copy(url, ranges, buffers, None, allow_short)
    return _checked(url, ranges, got, allow_short)


_IOV_MAX = 1024  # iovecs one preadv takes


def _preadv_fill(fd: int, path: str, offset: int, views: Sequence[np.ndarray], allow_short: bool) -> int:
    """Fill ``views`` (C-contiguous arrays) in turn with the bytes of ``fd`` from ``offset``: one scatter
    read per IOV_MAX views, short reads finished view by view. Returns the bytes read."""
    pos = offset
    for i in range(0, len(views), _IOV_MAX):
        group = views[i:i + _IOV_MAX]  # C-contiguous arrays are buffers preadv fills as they are
        got = os.preadv(fd, group, pos)  # type: ignore[arg-type]
        for view in group:
            have = min(got, view.nbytes)
            got -= have
            while have < view.nbytes:
                n = os.preadv(fd, [view.reshape(-1).view(np.uint8)[have:]], pos + have)  # type: ignore[list-item]
                if n == 0:
                    if not allow_short:
                        raise TruncatedFileError(f"{path}: asked for bytes up to {pos + view.nbytes}, the file "
                                                 f"ends at {pos + have}; it is shorter than its header says "
                                                 "(truncated?)")
                    return pos + have - offset
                have += n
            pos += view.nbytes
    return pos - offset


def _open_local(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file; check the path") from None


def _read_local(path: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                allow_short: bool) -> list[int]:
    fd = _open_local(path)
    try:
        return [_preadv_fill(fd, path, start, [buf.reshape(-1).view(np.uint8)[:length]], allow_short)
                for (start, length), buf in zip(ranges, buffers, strict=True)]
    finally:
        os.close(fd)


def read_consecutive_into(url: str, offset: int, views: Sequence[np.ndarray],
                          storage_options: dict[str, Any] | None = None) -> None:
    """Fill ``views`` (C-contiguous arrays) in turn with consecutive bytes of ``url`` from ``offset``.

    A local file is read with scatter reads straight into the views (each byte copied once, e.g. into
    shuffled slots of pinned batches); a remote one with one ranged read, then copied into the views.
    """
    url = _redirects.get(url, url)
    if not is_remote(url):
        fd = _open_local(local_path(url))
        try:
            _preadv_fill(fd, local_path(url), offset, views, allow_short=False)
        finally:
            os.close(fd)
        return
    whole = np.empty(sum(v.nbytes for v in views), np.uint8)
    read_ranges_into(url, [(offset, whole.size)], [whole], storage_options)
    at = 0
    for view in views:
        view.reshape(-1).view(np.uint8)[...] = whole[at:at + view.nbytes]
        at += view.nbytes


def read_runs_into(url: str, runs: Sequence[tuple[int, Sequence[np.ndarray]]],
                   storage_options: dict[str, Any] | None = None) -> None:
    """For each ``(offset, views)`` of ``runs``, fill ``views`` (C-contiguous arrays) in turn with consecutive
    bytes of ``url`` from ``offset``: :func:`read_consecutive_into` for many runs in one call.

    A local file gets one scatter read per run; a remote one a single :func:`read_ranges_into` call, so the
    runs are coalesced and fetched concurrently (plain HTTP: straight into the views, no copy).
    """
    url = _redirects.get(url, url)
    if not is_remote(url):
        fd = _open_local(local_path(url))
        try:
            for offset, views in runs:
                _preadv_fill(fd, local_path(url), offset, views, allow_short=False)
        finally:
            os.close(fd)
        return
    ranges: list[tuple[int, int]] = []
    buffers: list[np.ndarray] = []
    for offset, views in runs:
        for view in views:
            ranges.append((offset, view.nbytes))
            buffers.append(view)
            offset += view.nbytes
    read_ranges_into(url, ranges, buffers, storage_options)


def local_copy(url: str, storage_options: dict[str, Any] | None = None) -> Path:
    """Download a remote file once into the cache (atomically; safe for concurrent processes)."""
    target = cache_path_for_url(url)
    if target.exists():
        return target
    with entry_lock(target):
        if target.exists():
            return target
        sweep_dead_writers(target)
        fs, path = _fs(url, storage_options)

        def download() -> None:
            expected = fs.info(path).get("size")
            with fs.open(path, "rb", block_size=0) as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst, 8 * 2**20)
                got = dst.tell()
                if expected is not None and got != int(expected):
                    # Raised inside atomic_write: the temp file is removed, nothing lands in the cache.
                    raise ConnectionError(f"got {got} of {expected} bytes")

        _with_retries(download, url)
        record("file", url, target)
    return target


def decompressed_copy(url: str, storage_options: dict[str, Any] | None = None) -> Path:
    """Decompress a ``.gz``/``.bz2`` file once into the cache (size-limited) and return the local path."""
    openers: dict[str, Callable[..., IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open}  # type: ignore[dict-item]
    opener = openers[os.path.splitext(url)[1].lower()]
    source = Path(local_path(url)) if not is_remote(url) else local_copy(url, storage_options)
    key = f"{source.resolve()}:{source.stat().st_mtime_ns}" if not is_remote(url) else url
    target = cache_path_for_url(key, kind="decompressed")
    target = target.with_name(os.path.splitext(os.path.basename(url))[0])
    if target.exists():
        return target
    limit = get_config().max_decompressed_bytes
    with entry_lock(target):
        if target.exists():
            return target
        sweep_dead_writers(target)
        total = 0
        try:
            with opener(source, "rb") as src, atomic_write(target) as dst:
                while block := src.read(8 * 2**20):
                    total += len(block)
                    if total > limit:
                        raise SizeLimitError(f"{url}: decompresses to more than {limit / 2**30:.1f} GiB; raise "
                                             "PERC_MAX_DECOMPRESSED_BYTES if the map is really that large")
                    dst.write(block)
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            if isinstance(exc, (SizeLimitError, StorageError)):
                raise
            raise FormatError(f"{url}: the compressed file is damaged or truncated ({exc}); download it again") \
                from None
        record("decompressed", url, target)
    return target
