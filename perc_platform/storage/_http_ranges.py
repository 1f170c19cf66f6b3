"""Ranged HTTP(S) reads straight into the caller's buffers (``readinto``: no intermediate bytes, no copies).

Used by :func:`perc_platform.storage.ranges.read_ranges_into` for plain ``http(s)://`` URLs without
storage options. Each thread keeps a few keep-alive connections (one per host); several ranges of one call
are fetched concurrently on a small shared pool, so random access over a slow link is not serialised.
Redirects are followed only where the network policy allows (``policy.check_redirect``: allowed host, no
https -> http); a refused hop is never requested. Errors map onto what ``ranges`` retries or reports:
FileNotFoundError (404/410), RetryLater (429/5xx, with the server's ``Retry-After``), RemoteError (other 4xx:
not retried), ConnectionError (dropped connection, short body, other unusable answers), and
:class:`RangeIgnored` when the server answers a ranged request with the whole file (200), which ``ranges``
turns into a cached copy.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np

from perc_platform.config import get_config
from perc_platform.errors import RemoteError
from perc_platform.storage import policy
from perc_platform.storage._http_connect import open_connection, proxy_for, request_target, retry_after
from perc_platform.storage._remote import RetryLater

__all__ = ["RangeIgnored", "read_ranges_into"]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_MAX_HOSTS_PER_THREAD = 4
_POOL_SIZE = 8
_MAX_REDIRECTS = 5
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_moved: dict[str, str] = {}  # permanent redirects seen: URL asked for -> where it lives
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class RangeIgnored(Exception):
    """The server sent the whole file (HTTP 200) for a ranged request."""


Key = tuple[str, str, str | None]  # scheme, host:port, proxy


def _connections() -> OrderedDict[Key, http.client.HTTPConnection]:
    if not hasattr(_local, "connections"):
        _local.connections = OrderedDict()
    return _local.connections  # type: ignore[no-any-return]


def _key(url: str) -> Key:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc, proxy_for(url)


def _connection(url: str) -> tuple[http.client.HTTPConnection, str, bool]:
    """This thread's keep-alive connection for ``url``'s host (direct or through the environment's proxy),
    the request target, and whether the connection was reused."""
    pool = _connections()
    key = _key(url)
    if key in pool:
        pool.move_to_end(key)
        return pool[key], request_target(url, key[2]), True
    config = get_config()
    conn, target = open_connection(url, config.connect_timeout)
    conn.connect()
    if conn.sock is not None:
        conn.sock.settimeout(config.read_timeout)
    pool[key] = conn
    while len(pool) > _MAX_HOSTS_PER_THREAD:
        pool.popitem(last=False)[1].close()
    return conn, target, False


def _drop(url: str) -> None:
    conn = _connections().pop(_key(url), None)
    if conn is not None:
        conn.close()


def _request(url: str, start: int, length: int) -> http.client.HTTPResponse:
    headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
    for _ in range(2):
        conn, target, reused = _connection(url)
        try:
            conn.request("GET", target, headers=headers)
            return conn.getresponse()
        except (http.client.HTTPException, OSError) as exc:
            _drop(url)
            if not reused:  # a fresh connection failed: a real error; a reused one may just have gone stale
                raise ConnectionError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    raise AssertionError("unreachable")


def _read_one(url: str, start: int, length: int, buf: np.ndarray, allow_short: bool) -> int:
    """One range of ``url`` into ``buf``, following redirects the network policy allows."""
    source, url = url, _moved.get(url, url)
    if url != source:
        policy.check_url(url)  # moved earlier: still allowed?
    for _ in range(_MAX_REDIRECTS + 1):
        resp = _request(url, start, length)
        location = resp.getheader("Location")
        if resp.status not in _REDIRECT_STATUS or not location:
            return _read_body(url, resp, start, length, buf, allow_short)
        _drop(url)  # do not read a body we will not use
        target = policy.check_redirect(url, policy.redirect_target(url, location))
        if resp.status in (301, 308):  # permanent: later reads go straight there
            if len(_moved) > 1024:
                _moved.clear()
            _moved[source] = target
        url = target
    raise RemoteError(f"GET {source}: more than {_MAX_REDIRECTS} redirects")


def _read_body(url: str, resp: http.client.HTTPResponse, start: int, length: int, buf: np.ndarray,
               allow_short: bool) -> int:
    status = resp.status
    if status != 206:
        whole = status == 200 and start == 0 and resp.length is not None and resp.length <= length
        if not whole:
            _drop(url)  # do not read a body we will not use
            if status in (404, 410):
                raise FileNotFoundError(url)
            if status == 416 and allow_short:
                return 0
            if status == 200:
                raise RangeIgnored(url)
            what = f"GET {url} bytes {start}-{start + length - 1}: HTTP {status} {resp.reason}"
            if status in _RETRY_STATUS:
                raise RetryLater(what, retry_after(resp.getheader("Retry-After")))
            if 400 <= status < 500:  # the same request would get the same answer: not retried
                raise RemoteError(f"{what}; check the URL and your access to it")
            raise ConnectionError(what)
    else:
        match = _CONTENT_RANGE.match(resp.getheader("Content-Range", ""))
        if not match or int(match.group(1)) != start:
            _drop(url)
            raise ConnectionError(f"GET {url}: asked for bytes from {start}, the server sent "
                                  f"{resp.getheader('Content-Range')!r}")
    expected = resp.length if resp.length is not None else length
    if expected > length:
        _drop(url)
        raise RangeIgnored(url)
    view = memoryview(buf.reshape(-1).view(np.uint8)).cast("B")[:expected]  # type: ignore[arg-type]
    got = 0
    try:
        while got < expected:
            n = resp.readinto(view[got:])
            if not n:
                break
            got += n
    except (http.client.HTTPException, OSError) as exc:
        _drop(url)
        raise ConnectionError(f"GET {url}: connection dropped after {got} of {expected} bytes ({exc})") from exc
    if got < expected:
        _drop(url)
        raise ConnectionError(f"GET {url}: connection dropped after {got} of {expected} bytes")
    return got


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_SIZE, thread_name_prefix="perc-http-range")
        return _pool


def read_ranges_into(url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                     allow_short: bool) -> list[int]:
    """Bytes read per range (each ``(start, length)`` into its buffer); several ranges run concurrently."""
    if len(ranges) == 1:
        (start, length), = ranges
        return [_read_one(url, start, length, buffers[0], allow_short)]
    futures = [_shared_pool().submit(_read_one, url, s, n, b, allow_short)
               for (s, n), b in zip(ranges, buffers, strict=True)]
    return [f.result() for f in futures]
