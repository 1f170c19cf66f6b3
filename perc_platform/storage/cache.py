"""The on-disk cache: atomic writes (temp file + rename), a lock per entry, and a JSON-lines manifest.

A file appears under its final name only when it is complete, so a crash or SIGKILL never leaves a
partial file where a reader would find it; temp files are named ``.<name>.<pid>.part`` and swept by
:func:`sweep_dead_writers` under the entry lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from perc_platform.config import get_config

__all__ = ["atomic_write", "cache_dir", "cache_path_for_url", "entry_lock", "record", "sweep_dead_writers"]


def cache_dir() -> Path:
    """The cache root (``PERC_CACHE_DIR``), created on first use."""
    root = Path(get_config().cache_dir).expanduser()
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` through a temp file in the same folder, renamed into place only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
