"""The on-disk cache: atomic writes, a lock per entry, and a JSON-lines manifest.

A file appears under its final name only when it is complete, so a crash or SIGKILL never leaves a
partial file where a reader would find it. All atomic writes of the package come from here:

* :func:`atomic_file` (and :func:`atomic_write`, its plain-handle form) writes to an anonymous file
  (``O_TMPFILE``) in the target folder and links it into place only when complete, so a writer killed at any
  point leaves nothing behind. Where ``O_TMPFILE`` is unavailable it falls back to a named temp file.
* :func:`atomic_path` gives writers that need a file *name* (``savefig``, ``mrcfile``, ``np.savez``) a
  named temp file, renamed into place on success.

Named temp files are ``.<name>.<pid>.<thread>.part`` (links in flight ``.link``); a killed writer's are
removed by :func:`sweep_dead_writers` under the entry lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from perc_platform.config import get_config
from perc_platform.errors import StorageError

__all__ = [
    "atomic_file",
    "atomic_path",
    "atomic_write",
    "cache_dir",
    "cache_path_for_url",
    "entry_lock",
    "record",
    "storage_errors",
    "sweep_dead_writers",
    "write_atomically",
]


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


@contextlib.contextmanager
def storage_errors(path: str | os.PathLike[str], what: str = "") -> Iterator[None]:
    """Turn a full disk or an unwritable folder met while writing ``path`` into a StorageError saying so
    (naming the folder, and PERC_CACHE_DIR when it is in the cache), instead of a bare OSError that callers
    would take for a network or format fault."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, StorageError) or exc.errno not in _FULL | _NOT_WRITABLE:
            raise
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        root = Path(get_config().cache_dir).expanduser()
        where = (f"the cache folder {root} (set PERC_CACHE_DIR to a writable folder with room)"
                 if folder.is_relative_to(root) else f"the folder {folder}")
        doing = f" while writing {what}" if what else ""
        if exc.errno in _FULL:
            problem = "the disk is full (or a quota or file-size limit is reached)"
            fix = "free some space or choose another folder"
        else:
            problem = "it cannot be written (read-only or no permission)"
            fix = "make it writable or choose another folder"
        error = StorageError(f"{where}: {problem}{doing} ({exc.strerror}); {fix}")
        error.errno = exc.errno
        raise error from None


def cache_dir() -> Path:
    """The cache root (``PERC_CACHE_DIR``), created on first use."""
    root = Path(get_config().cache_dir).expanduser()
    with storage_errors(root / "x"):
        root.mkdir(parents=True, exist_ok=True)
    return root


def cache_path_for_url(url: str, kind: str = "files", suffix: str = "") -> Path:
    """Deterministic cache location for a remote URL: ``<cache>/<kind>/<hash>/<basename><suffix>``."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    name = os.path.basename(url.split("?", 1)[0].rstrip("/")) or "data"
    return cache_dir() / kind / digest / f"{name}{suffix}"


@contextlib.contextmanager
def entry_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock for one cache entry (``<path>.lock``, flock)."""
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a+b")  # noqa: SIM115 - closed below
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temp_name(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}{suffix}")


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[tuple[IO[bytes], str]]:
    """Write ``target`` atomically: yields a binary temp file and a path to read it back while open; the
    file is put in place, fsynced, only when the block ends without an exception.

    Hold :func:`entry_lock` on ``target`` around it when others may write it. A full disk or an unwritable
    folder is a :class:`~perc_platform.errors.StorageError`.
    """
    with storage_errors(target, target.name), _atomic_file(target) as opened:
        yield opened


@contextlib.contextmanager
def _atomic_file(target: Path) -> Iterator[tuple[IO[bytes], str]]:
    target.parent.mkdir(parents=True, exist_ok=True)
    named: Path | None = None
    try:
        fd = os.open(target.parent, os.O_TMPFILE | os.O_RDWR, 0o644)
    except (AttributeError, OSError):
        named = _temp_name(target, ".part")
        fd = os.open(named, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    handle = os.fdopen(fd, "w+b")
    try:
        yield handle, (str(named) if named else f"/proc/self/fd/{fd}")
        handle.flush()
        os.fsync(fd)
        if named is None:
            link = _temp_name(target, ".link")
            root = os.open("/", os.O_RDONLY)
            try:
                # src_dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW), which links the open inode.
                os.link(f"/proc/self/fd/{fd}", link, src_dir_fd=root)
            finally:
                os.close(root)
            os.replace(link, target)
        else:
            os.replace(named, target)
    except BaseException:
        if named is not None:
            with contextlib.suppress(FileNotFoundError):
                named.unlink()
        raise
    finally:
        handle.close()


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[IO[bytes]]:
    """:func:`atomic_file` for writers that need only the handle."""
    with atomic_file(Path(path)) as (handle, _readable):
        yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp file name beside ``path`` for writers that open files by name; renamed over ``path`` (after an
    fsync) when the block ends without an exception, removed otherwise."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target, ".part")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` with a temp file name (see :func:`atomic_path`); return ``path`` once it is in place."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def record(kind: str, key: str, path: Path, **extra: Any) -> None:
    """Append one line to the cache manifest (``manifest.jsonl``) describing a new entry."""
    root = cache_dir()
    line = {"kind": kind, "key": key, "path": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
            "size": path.stat().st_size, "time": time.time(), **extra}
    manifest = root / "manifest.jsonl"
    with entry_lock(manifest), open(manifest, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def sweep_dead_writers(target: Path) -> None:
    """Remove temp files of ``target`` left by writers that died (call with ``entry_lock(target)`` held)."""
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.suffix in (".part", ".link"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
