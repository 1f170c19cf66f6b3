"""Cached fetches: one file per id in the cache, written atomically, locked per entry, listed in a manifest.

* A download is written with :func:`perc_platform.storage.cache.atomic_file` (an anonymous ``O_TMPFILE``
  linked into place only when complete and valid), so a writer killed at any point (SIGKILL included) leaves
  no file behind; where a named temp file had to be used, the next writer of that entry removes it.
* An exclusive ``flock`` per entry makes two processes (or threads) fetching the same id wait for each
  other: the first downloads, the second finds the finished file.
* Existing files are served without any request; with ``PERC_OFFLINE`` only the cache is used.
* :func:`fetch_many` runs fetches with bounded concurrency and reports progress.

Public helpers: :func:`archive_path`, :func:`record_entry`, :func:`fetch_file`,
:func:`fetch_json`, :func:`fetch_many`, :func:`text_progress`, :class:`FetchOutcome`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from perc_platform.archives import _http
from perc_platform.errors import DataNotFoundError, FormatError, PercError
from perc_platform.storage.cache import atomic_file, entry_lock, sweep_dead_writers
from perc_platform.storage.cache import record as record_entry

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MISS_TTL",
    "FetchOutcome",
    "ManyProgress",
    "Validator",
    "archive_path",
    "fetch_file",
    "fetch_json",
    "fetch_many",
    "record_entry",
    "text_progress",
]

T = TypeVar("T")
K = TypeVar("K")

#: Default number of fetches run at once by :func:`fetch_many` (kind to public services).
DEFAULT_CONCURRENCY = 8

#: ``validate(path)`` raises (any exception) when a downloaded file is unusable; it is then not cached.
Validator = Callable[[str], None]


def archive_path(*parts: str) -> Path:
    """``<cache>/archives/<parts...>``; parts must already be validated ids or fixed names."""
    return Path(_http.current_config().cache_dir).expanduser().joinpath("archives", *parts)


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch_file(url: str, target: Path, *, what: str, kind: str, validate: Validator | None = None,
               progress: _http.Progress | None = None, refresh: bool = False) -> Path:
    """Return ``target``, downloading ``url`` into it first unless it is already cached.

    ``what`` names the item in errors (e.g. ``"PDB entry 1AKI (mmCIF)"``); ``kind`` labels the manifest line.
    A cached file is returned without any request; with ``PERC_OFFLINE`` a missing file raises
    DataNotFoundError. ``validate`` checks the complete download before it is cached.
    """
    if target.exists() and not refresh:
        return target
    if _http.current_config().offline:
        raise DataNotFoundError(f"{what} is not in the cache ({target}) and PERC_OFFLINE is set; fetch it once "
                                "online or unset PERC_OFFLINE")
    with entry_lock(target):
        if target.exists() and not refresh:
            return target  # another process or thread finished it while we waited
        sweep_dead_writers(target)
        with atomic_file(target) as (handle, readable):
            size = _http.download(url, handle, what=what, progress=progress)
            handle.flush()
            if validate is not None:
                try:
                    validate(readable)
                except FormatError as exc:
                    raise type(exc)(f"{what} from {url} is not usable ({exc}); nothing was cached") from exc
                except PercError:
                    raise
                except Exception as exc:
                    raise FormatError(f"{what} from {url} is not usable ({type(exc).__name__}: {exc}); "
                                      "nothing was cached") from exc
            digest = _sha256(readable)
        record_entry(kind, what, target, url=url, sha256=digest, bytes=size)
    return target


#: A cached "nothing here" answer is asked again after this many seconds (entries appear over time).
MISS_TTL = 24 * 3600.0


#: Archive metadata that changes over time (SIFTS mappings, AlphaFold DB predictions) is asked again after
#: this many seconds (when online); the model and entry files themselves never change and never expire.
METADATA_TTL = 7 * 24 * 3600.0


def _stale_miss(target: Path, data: Any, missing: Any, ttl: float | None = None) -> bool:
    age = time.time() - target.stat().st_mtime
    if ttl is not None and age > ttl:
        return True
    return missing is not DataNotFoundError and data == missing and age > MISS_TTL


def fetch_json(url: str, target: Path, *, what: str, kind: str, missing: Any = DataNotFoundError,
               refresh: bool = False, ttl: float | None = None) -> Any:
    """JSON from ``url``, cached in ``target`` (a 404 with ``missing`` given is cached as ``missing`` too).

    Caching the "nothing here" answer lets offline lookups and fallbacks work without a request; it is
    asked again after :data:`MISS_TTL` (when online), and any answer after ``ttl`` seconds when one is
    given. ``refresh=True`` asks again in any case.
    """
    offline = _http.current_config().offline
    if target.exists() and not refresh:
        data = json.loads(target.read_text(encoding="utf-8"))
        if offline or not _stale_miss(target, data, missing, ttl):
            return data
    if offline:
        raise DataNotFoundError(f"{what} is not in the cache ({target}) and PERC_OFFLINE is set; look it up "
                                "once online or unset PERC_OFFLINE")
    with entry_lock(target):
        if target.exists() and not refresh:
            data = json.loads(target.read_text(encoding="utf-8"))
            if not _stale_miss(target, data, missing, ttl):
                return data
        sweep_dead_writers(target)
        data = _http.get_json(url, what=what, missing=missing)
        with atomic_file(target) as (handle, _):
            handle.write(json.dumps(data).encode())
        record_entry(kind, what, target, url=url)
    return data


@dataclass(frozen=True)
class FetchOutcome(Generic[K, T]):
    """What one fetch of :func:`fetch_many` gave: its value, or the error it raised."""

    key: K
    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: ``progress(done, total, outcome)`` after each fetch of :func:`fetch_many` finishes.
ManyProgress = Callable[[int, int, FetchOutcome[Any, Any]], None]


def fetch_many(fetch: Callable[[K], T], keys: Iterable[K], *, max_workers: int = DEFAULT_CONCURRENCY,
               progress: ManyProgress | None = None) -> list[FetchOutcome[K, T]]:
    """Run ``fetch(key)`` for every key, at most ``max_workers`` at once; outcomes come back in key order.

    One failing key does not stop the others: its outcome carries the error (PercError and OSError
    subclasses); anything else (a bug) is re-raised.
    """
    items: Sequence[K] = list(keys)
    outcomes: list[FetchOutcome[K, T] | None] = [None] * len(items)
    if max_workers < 1:
        raise ValueError(f"max_workers={max_workers} must be at least 1")
    with ThreadPoolExecutor(max_workers=min(max_workers, max(1, len(items))),
                            thread_name_prefix="perc-fetch") as pool:
        futures = {pool.submit(fetch, key): i for i, key in enumerate(items)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            try:
                outcome: FetchOutcome[K, T] = FetchOutcome(items[i], value=future.result())
            except (PercError, OSError) as exc:
                outcome = FetchOutcome(items[i], error=exc)
            outcomes[i] = outcome
            if progress is not None:
                progress(done, len(items), outcome)
    return [o for o in outcomes if o is not None]


def text_progress(stream: IO[str] | None = None) -> ManyProgress:
    """A :func:`fetch_many` progress callback printing ``[done/total] key: result`` lines (stderr default)."""
    out = stream or sys.stderr
    lock = threading.Lock()

    def report(done: int, total: int, outcome: FetchOutcome[Any, Any]) -> None:
        status = f"{outcome.value}" if outcome.ok else f"FAILED: {outcome.error}"
        with lock:
            print(f"[{done}/{total}] {outcome.key}: {status}", file=out, flush=True)

    return report
