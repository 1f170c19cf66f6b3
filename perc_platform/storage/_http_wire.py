"""HTTP/1.1 ranged GETs spoken directly on kept-alive sockets, one connection per host and thread.

Written by hand on purpose: ``http.client`` (and ``h11``) run every answer's headers through general
machinery that costs about 150 us of CPU per request, three to four times what moving a 64 KiB particle over
loopback costs, and a random subset of a stack is hundreds of small requests. Only what ranged reads use is
parsed: the status line, ``Content-Length``, ``Content-Range``, ``Location``, ``Retry-After``, ``Connection``
and ``Transfer-Encoding``. Setting connections up (proxies, ``CONNECT`` tunnels, TLS) stays with
``http.client`` (:func:`~perc_platform.storage._http_connect.open_connection`); only its socket is used here.
No pipelining: one request at a time on a connection; concurrency comes from several connections.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Sequence
from urllib.parse import urlsplit

from perc_platform.config import get_config
from perc_platform.errors import RemoteError
from perc_platform.storage._http_connect import open_connection, proxy_for, request_target

__all__ = ["Answer", "RangeIgnored", "Wire", "connections", "drop", "exchange", "key"]

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # no spaces or control characters in a request line (no injection)
_MAX_HOSTS_PER_THREAD = 4
_MAX_HEAD = 64 * 1024
_HEAD_READ = 4096  # bytes asked of the socket for the headers (the rest of what comes is body)
_local = threading.local()

Key = tuple[str, str, str | None]  # scheme, host:port, proxy


class RangeIgnored(Exception):
    """The server sent the whole file (HTTP 200) for a ranged request."""


class Wire:
    """One kept-alive connection: the ``http.client`` connection that set it up, and its socket."""

    __slots__ = ("conn", "host", "proxy", "sock")

    def __init__(self, conn: http.client.HTTPConnection, host: str, proxy: str | None) -> None:
        self.conn, self.host, self.proxy = conn, host, proxy
        assert conn.sock is not None
        self.sock: socket.socket = conn.sock

    def close(self) -> None:
        self.conn.close()


def connections() -> OrderedDict[Key, Wire]:
    """This thread's kept-alive connections, most recently used last."""
    if not hasattr(_local, "wires"):
        _local.wires = OrderedDict()
    return _local.wires  # type: ignore[no-any-return]


_PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
_keys: dict[tuple[str, tuple[str | None, ...]], Key] = {}  # (URL, proxy settings) -> key


def key(url: str) -> Key:
    """``(scheme, host:port, proxy)`` of ``url``; the proxy looked up once per URL and proxy settings
    (``urllib`` scans the whole environment for it, on every request otherwise)."""
    settings = tuple(os.environ.get(name) for name in _PROXY_VARIABLES)
    found = _keys.get((url, settings))
    if found is None:
        parts = urlsplit(url)
        found = (parts.scheme, parts.netloc, proxy_for(url))
        if len(_keys) > 4096:
            _keys.clear()
        _keys[(url, settings)] = found
    return found


def _wire(url: str) -> tuple[Wire, bool]:
    """This thread's connection to ``url``'s host (opened if needed), and whether it was reused."""
    pool = connections()
    k = key(url)
    wire = pool.get(k)
    if wire is not None:
        pool.move_to_end(k)
        return wire, True
    config = get_config()
    conn, _ = open_connection(url, config.connect_timeout)
    conn.connect()
    assert conn.sock is not None
    conn.sock.settimeout(config.read_timeout)
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small requests go out at once
    except OSError:
        pass
    wire = pool[k] = Wire(conn, k[1].rpartition("@")[2], k[2])
    while len(pool) > _MAX_HOSTS_PER_THREAD:
        pool.popitem(last=False)[1].close()
    return wire, False


def drop(url: str) -> None:
    """Close this thread's connection to ``url``'s host (after an answer whose body is not read)."""
    wire = connections().pop(key(url), None)
    if wire is not None:
        wire.close()


class Answer:
    """The status and headers of one answer; :meth:`read_into` reads its body."""

    __slots__ = ("_prefix", "_url", "_wire", "headers", "length", "range_start", "reason", "reusable", "status",
                 "total")

    def __init__(self, url: str, wire: Wire, head: str, prefix: bytes) -> None:
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, self.reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ConnectionError(f"GET {url}: not an HTTP/1.x answer: {lines[0][:80]!r}")
        self.status = int(code)
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._url, self._wire, self._prefix = url, wire, prefix
        length = self.headers.get("content-length", "")
        self.length = int(length) if length.isdigit() else -1
        self.reusable = version != "HTTP/1.0" and self.headers.get("connection", "").lower() != "close"
        self.range_start, self.total = -1, -1
        match = _CONTENT_RANGE.match(self.headers.get("content-range", ""))
        if match:
            self.range_start = int(match.group(1))
            self.total = int(match.group(3)) if match.group(3) != "*" else -1
        if self.headers.get("transfer-encoding", "identity").lower() != "identity":
            self.length, self.reusable = -1, False
            if self.status == 206:
                raise ConnectionError(f"GET {url}: a chunked answer to a ranged request; ranged reads need "
                                      "the server to send Content-Length")
        elif self.length < 0 and match:  # no Content-Length: the Content-Range says how long the body is
            self.length, self.reusable = int(match.group(2)) - self.range_start + 1, False

    def read_into(self, pieces: Sequence[memoryview]) -> int:
        """Fill ``pieces`` in turn with the body (``length`` bytes); the bytes read."""
        expected, got, sock = self.length, 0, self._wire.sock
        prefix = memoryview(self._prefix)
        try:
            for piece in pieces:
                want = min(len(piece), expected - got)
                have = 0
                if prefix:
                    have = min(want, len(prefix))
                    piece[:have] = prefix[:have]
                    prefix = prefix[have:]
                while have < want:
                    n = sock.recv_into(piece[have:want])
                    if not n:
                        break
                    have += n
                got += have
                if have < want or got >= expected:
                    break
        except OSError as exc:
            drop(self._url)
            raise ConnectionError(f"GET {self._url}: connection dropped after {got} of {expected} bytes "
                                  f"({exc})") from exc
        if got < expected:
            drop(self._url)
            raise ConnectionError(f"GET {self._url}: connection dropped after {got} of {expected} bytes")
        if prefix or not self.reusable:  # more than the body came (never asked for), or the server closes
            drop(self._url)
        return got


def _head(url: str, sock: socket.socket) -> tuple[str, bytes]:
    """The header block of the answer (without the blank line) and the body bytes that came with it."""
    buf = bytearray()
    while True:
        chunk = sock.recv(_HEAD_READ)
        if not chunk:
            raise ConnectionResetError(f"GET {url}: the server closed the connection before answering")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return buf[:end].decode("latin-1"), bytes(buf[end + 4:])
        if len(buf) > _MAX_HEAD:
            raise ConnectionError(f"GET {url}: answer headers longer than {_MAX_HEAD} bytes")


def exchange(url: str, start: int, length: int) -> Answer:
    """Send ``GET url`` for bytes ``start..start+length-1`` and read the answer's status and headers."""
    for _ in range(2):
        wire, reused = _wire(url)
        target = request_target(url, wire.proxy)
        if _UNSAFE.search(target) or _UNSAFE.search(wire.host):
            raise RemoteError(f"{url}: the URL holds spaces or control characters; percent-encode them")
        try:
            request = (f"GET {target} HTTP/1.1\r\nHost: {wire.host}\r\nRange: bytes={start}-{start + length - 1}"
                       "\r\nAccept-Encoding: identity\r\n\r\n").encode("ascii")
        except UnicodeEncodeError:
            raise RemoteError(f"{url}: the URL holds characters other than ASCII; percent-encode them") from None
        try:
            wire.sock.sendall(request)
            head, prefix = _head(url, wire.sock)
        except OSError as exc:
            drop(url)
            if not reused:  # a fresh connection failed: a real error; a reused one may just have gone stale
                raise ConnectionError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
            continue
        try:
            return Answer(url, wire, head, prefix)
        except ConnectionError:
            drop(url)
            raise
    raise ConnectionError(f"GET {url} failed on a fresh connection too")
