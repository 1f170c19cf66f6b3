"""Ranged HTTP(S) reads straight into the caller's buffers: coalesced runs on a bounded pool of kept-alive
connections.

Used by :func:`perc_platform.storage.ranges.read_ranges_into` for plain ``http(s)://`` URLs without storage
options. The ranges of one call are coalesced into runs (``_range_plan``: touching ranges join, small gaps are
read through within a byte budget), and the runs are split over up to ``CONNECTIONS`` connections, each
worker taking its share in file order on its thread's kept-alive connection (the calling thread works too,
so a one-run read involves no other thread). Bytes go from the socket straight into the caller's buffers
(``recv_into``), gap bytes into a scratch buffer.

Connections are set up by ``http.client`` (``_http_connect.open_connection``: proxies, ``CONNECT``
tunnels, TLS), then spoken to directly on their socket by :mod:`._http_wire`. Redirects are followed only
where the network policy allows (``policy.check_redirect``: allowed host, no https -> http); a refused hop
is never requested. Errors map onto what ``ranges`` retries or reports: FileNotFoundError (404/410),
RetryLater (429/5xx, with the server's ``Retry-After``), RemoteError (other 4xx: not retried),
ConnectionError (dropped connection, short body, other unusable answers), and :class:`RangeIgnored` when
the server answers a ranged request with the whole file (200), which ``ranges`` turns into a cached copy.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from perc_platform.errors import RemoteError
from perc_platform.storage import policy
from perc_platform.storage._http_connect import retry_after
from perc_platform.storage._http_wire import Answer, RangeIgnored, connections, drop, exchange, key
from perc_platform.storage._range_plan import RunPlan, plan_runs
from perc_platform.storage._remote import RetryLater

__all__ = ["CONNECTIONS", "GAP_BUDGET", "MAX_GAP", "RangeIgnored", "read_head", "read_ranges_into"]

#: Connections one call reads over at most (a bounded pool: more only shares one server's CPU thinner).
CONNECTIONS = 4
#: Largest gap between two ranges that is read through rather than asked for separately.
MAX_GAP = 1 << 20
#: Bytes read through gaps, as a fraction of the bytes asked for, at most.
GAP_BUDGET = 0.02
_POOL_SIZE = 8
_MAX_REDIRECTS = 5
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_moved: dict[str, str] = {}  # permanent redirects seen: URL asked for -> where it lives
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()

# kept for tests and callers that look at this thread's connections
_connections, _key = connections, key


def _answer(url: str, start: int, length: int, allow_short: bool) -> tuple[str, Answer]:
    """The answer to ``GET url`` for bytes ``start..start+length-1`` (redirects the policy allows followed),
    with its headers read and its body not yet; errors raised as the module docstring says."""
    source, url = url, _moved.get(url, url)
    if url != source:
        policy.check_url(url)  # moved earlier: still allowed?
    for _ in range(_MAX_REDIRECTS + 1):
        answer = exchange(url, start, length)
        location = answer.headers.get("location")
        if answer.status in _REDIRECT_STATUS and location:
            drop(url)  # do not read a body we will not use
            target = policy.check_redirect(url, policy.redirect_target(url, location))
            if answer.status in (301, 308):  # permanent: later reads go straight there
                if len(_moved) > 1024:
                    _moved.clear()
                _moved[source] = target
            url = target
            continue
        _check_status(url, answer, start, length, allow_short)
        return url, answer
    raise RemoteError(f"GET {source}: more than {_MAX_REDIRECTS} redirects")


def _check_status(url: str, answer: Answer, start: int, length: int, allow_short: bool) -> None:
    status = answer.status
    if status == 206:
        if answer.range_start != start:
            drop(url)
            raise ConnectionError(f"GET {url}: asked for bytes from {start}, the server sent "
                                  f"{answer.headers.get('content-range')!r}")
        if answer.length > length:
            drop(url)
            raise RangeIgnored(url)
        return
    if status == 200 and start == 0 and 0 <= answer.length <= length:
        return  # the whole file, and it is no more than was asked for
    drop(url)  # do not read a body we will not use
    if status in (404, 410):
        raise FileNotFoundError(url)
    if status == 416 and allow_short:
        answer.length = 0
        return
    if status == 200:
        raise RangeIgnored(url)
    what = f"GET {url} bytes {start}-{start + length - 1}: HTTP {status} {answer.reason}"
    if status in _RETRY_STATUS:
        raise RetryLater(what, retry_after(answer.headers.get("retry-after")))
    if 400 <= status < 500:  # the same request would get the same answer: not retried
        raise RemoteError(f"{what}; check the URL and your access to it")
    raise ConnectionError(what)


def _fetch(url: str, start: int, length: int, pieces: Sequence[memoryview], allow_short: bool) -> tuple[int, int]:
    """One ranged GET whose body fills ``pieces`` in turn: (bytes received, file size or -1)."""
    url, answer = _answer(url, start, length, allow_short)
    if answer.status == 416:
        return 0, answer.total
    got = answer.read_into(pieces)
    return got, answer.total if answer.status == 206 else got


def _views(buffers: Sequence[np.ndarray], lengths: np.ndarray) -> list[memoryview]:
    return [memoryview(b.reshape(-1).view(np.uint8)).cast("B")[:int(n)]  # type: ignore[arg-type]
            for b, n in zip(buffers, lengths.tolist(), strict=True)]


def _read_runs(url: str, plan: RunPlan, runs: range, views: list[memoryview], lengths: np.ndarray,
               members: list[np.ndarray], got: np.ndarray, allow_short: bool) -> None:
    """Read runs ``runs`` of ``plan`` (in file order) on this thread's connection; bytes per range into ``got``."""
    scratch = bytearray()
    for r in runs:
        start, end = int(plan.run_start[r]), int(plan.run_end[r])
        ranges = members[r]  # the run's ranges, by start
        if ranges.size == 1:
            i = int(ranges[0])
            got[i] = _fetch(url, start, end - start, [views[i]], allow_short)[0]
            continue
        offsets = plan.offset[ranges].tolist()
        if plan.overlapping[r]:  # overlapping ranges: the run into scratch, then each range out of it
            block = np.empty(end - start, np.uint8)
            received = _fetch(url, start, end - start, [memoryview(block)], allow_short)[0]  # type: ignore[arg-type]
            for i, off in zip(ranges.tolist(), offsets, strict=True):
                n = max(0, min(int(lengths[i]), received - off))
                views[i][:n] = memoryview(block)[off:off + n]  # type: ignore[arg-type]
                got[i] = n
            continue
        pieces: list[memoryview] = []
        at = 0
        for i, off in zip(ranges.tolist(), offsets, strict=True):
            if off > at:  # a gap read through: into scratch
                if len(scratch) < off - at:
                    scratch = bytearray(off - at)
                pieces.append(memoryview(scratch)[:off - at])
            pieces.append(views[i])
            at = off + int(lengths[i])
        received = _fetch(url, start, end - start, pieces, allow_short)[0]
        for i, off in zip(ranges.tolist(), offsets, strict=True):
            got[i] = max(0, min(int(lengths[i]), received - off))


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="perc-http-range")
        return _pool


def read_ranges_into(url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                     allow_short: bool) -> list[int]:
    """Bytes read per range (each ``(start, length)`` into its buffer): coalesced runs, read concurrently."""
    if not ranges:
        return []
    spans = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
    starts, lengths = spans[:, 0], spans[:, 1]
    views = _views(buffers, lengths)
    got = np.zeros(len(views), dtype=np.int64)
    # a read that may end early (past the end of the file) is asked for range by range: short means EOF there
    plan = plan_runs(starts, lengths, max_gap=-1 if allow_short else MAX_GAP, budget=GAP_BUDGET)
    by_run = plan.run_of[plan.order]
    bounds = np.flatnonzero(np.diff(by_run)) + 1
    members = np.split(plan.order, bounds)
    workers = min(CONNECTIONS, plan.runs)
    cuts = np.linspace(0, plan.runs, workers + 1).round().astype(int).tolist()
    shares = [range(a, b) for a, b in itertools.pairwise(cuts) if b > a]
    futures: list[Future[None]] = [_shared_pool().submit(_read_runs, url, plan, share, views, lengths, members,
                                                         got, allow_short) for share in shares[1:]]
    try:
        _read_runs(url, plan, shares[0], views, lengths, members, got, allow_short)
    finally:
        for future in futures:
            future.exception()  # wait for every share before the buffers are handed back
    for future in futures:
        future.result()
    return [int(n) for n in got]


def read_head(url: str, length: int, buffer: np.ndarray) -> tuple[int, int]:
    """The first ``length`` bytes of ``url`` into ``buffer`` in one GET: (bytes read, file size or -1).

    The size comes from the answer's ``Content-Range`` (``bytes 0-1023/SIZE``), so no HEAD is needed.
    """
    return _fetch(url, 0, length, _views([buffer], np.array([length])), allow_short=True)
