"""A real HTTP server on 127.0.0.1 for tests, benchmarks and the demo: files with Range, routes, faults.

``LoopbackServer(root)`` serves the files below ``root`` (never above it), answers ``Range: bytes=a-b``
with 206, lists folders as Apache-style HTML, counts requests and body bytes sent, and can be told to
ignore Range, add latency, or inject faults (status codes with headers such as Retry-After, connections
dropped mid-body, slow responses) for paths matching a glob. Archive-shaped JSON endpoints are added as
routes (see ``perc_platform.testing.archive``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import html
import json
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["Fault", "LoopbackServer", "RequestRecord", "Response", "serve_in_thread"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


@dataclasses.dataclass
class Fault:
    """An injected fault for request paths matching ``pattern`` (fnmatch), ``times`` times (None: always).

    kind: ``"status"`` (answer ``status`` with ``headers``), ``"drop"`` (send half the body, then close),
    ``"slow"`` (wait ``delay`` seconds, then answer normally).
    """

    pattern: str
    kind: str = "status"
    status: int = 500
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    times: int | None = 1


@dataclasses.dataclass
class Response:
    """What a route returns: a body (bytes, or JSON-able object), a status and headers."""

    body: bytes | Any = b""
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json"


Route = Callable[[str, dict[str, str]], "Response | Path | None"]


def serve_in_thread(handler: type[BaseHTTPRequestHandler], name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threading HTTP server on 127.0.0.1 (a free port) serving ``handler`` from a daemon thread.

    A short poll interval lets ``shutdown()`` return at once (tests start many servers).
    """
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=lambda: httpd.serve_forever(poll_interval=0.05), name=name, daemon=True)
    thread.start()
    return httpd, thread


class LoopbackServer:
    """HTTP server bound to 127.0.0.1 on a free port; use as a context manager or start()/stop()."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, ignore_range: bool = False,
                 latency: float = 0.0) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self.ignore_range = ignore_range
        self.latency = latency
        self.faults: list[Fault] = []
        self.routes: list[tuple[str, Route]] = []
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> LoopbackServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd, self._thread = serve_in_thread(Handler, "perc-loopback")
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the loopback server is not running; call start() first")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    # -- configuration ----------------------------------------------------------------------------
    def add_route(self, prefix: str, route: Route) -> None:
        """Answer paths starting with ``prefix`` with ``route(path, query)`` (None falls through to files)."""
        self.routes.append((prefix, route))

    def add_fault(self, pattern: str, kind: str = "status", **kwargs: Any) -> Fault:
        fault = Fault(pattern, kind, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    # -- accounting -------------------------------------------------------------------------------
    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(r.bytes_sent for r in self.requests)

    def count(self, method: str | None = None, pattern: str = "*") -> int:
        """Number of requests (of ``method``) whose path matches ``pattern``."""
        with self._lock:
            return sum(1 for r in self.requests if (method is None or r.method == method)
                       and fnmatch.fnmatch(r.path, pattern))

    def _log(self, record: RequestRecord) -> RequestRecord:
        with self._lock:
            self.requests.append(record)
        return record

    def _amend(self, record: RequestRecord, bytes_sent: int) -> None:
        """Correct the bytes of a record logged before its body went out, when fewer were sent."""
        with self._lock:
            for i in range(len(self.requests) - 1, -1, -1):
                if self.requests[i] is record:
                    self.requests[i] = dataclasses.replace(record, bytes_sent=bytes_sent)
                    return

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fnmatch.fnmatch(path, fault.pattern) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def resolve(self, path: str) -> Path | None:
        """File or folder for a URL path, or None when outside the root (path traversal) or missing."""
        if self.root is None:
            return None
        clean = posixpath.normpath("/" + path).lstrip("/")
        if clean.startswith("..") or "\x00" in clean:
            return None
        target = (self.root / clean).resolve()
        if target != self.root and self.root not in target.parents:
            return None
        return target if target.exists() else None


class _Handler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production servers set it (nginx's tcp_nodelay is on by default): without it a small body
    # sent after its headers waits for the client's delayed ACK, about 40 ms per request on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        return

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str], head: bool,
              path: str, rng: str | None, drop: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        if drop:
            self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"" if head else body[: len(body) // 2] if drop else body
        # Logged before the body goes out, so a client that has read the body always finds the record.
        record = self.owner._log(RequestRecord(self.command, path, rng, status, len(chunk)))
        if not head:
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.owner._amend(record, 0)
            if drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

    def _serve(self, head: bool) -> None:
        owner = self.owner
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        rng = self.headers.get("Range")
        if owner.latency:
            time.sleep(owner.latency)
        fault = owner._take_fault(path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if fault is not None and fault.kind == "status":
            body = f"injected {fault.status}".encode()
            self._send(fault.status, body, "text/plain", fault.headers, head, path, rng)
            return
        drop = fault is not None and fault.kind == "drop"
        for prefix, route in owner.routes:
            if path.startswith(prefix):
                answer = route(path, query)
                if answer is None:
                    continue
                if isinstance(answer, Path):
                    self._serve_file(answer, path, rng, head, drop)
                    return
                body, ctype = answer.payload()
                self._send(answer.status, body, ctype, answer.headers, head, path, rng, drop)
                return
        target = owner.resolve(path)
        if target is None:
            self._send(404, b"not found", "text/plain", {}, head, path, rng)
        elif target.is_dir():
            if not path.endswith("/"):
                self._send(301, b"", "text/plain", {"Location": path + "/"}, head, path, rng)
                return
            self._send(200, _listing(target, path), "text/html", {}, head, path, rng, drop)
        else:
            self._serve_file(target, path, rng, head, drop)

    def _serve_file(self, target: Path, path: str, rng: str | None, head: bool, drop: bool) -> None:
        size = target.stat().st_size
        headers = {"Accept-Ranges": "bytes"} if not self.owner.ignore_range else {}
        start, end = 0, size - 1
        status = 200
        if rng and not self.owner.ignore_range:
            match = _RANGE.match(rng.strip())
            if not match or (not match.group(1) and not match.group(2)):
                self._send(416, b"bad range", "text/plain", {"Content-Range": f"bytes */{size}"}, head, path, rng)
                return
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size or start > end:
                self._send(416, b"range not satisfiable", "text/plain", {"Content-Range": f"bytes */{size}"},
                           head, path, rng)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if head:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Type", "application/octet-stream")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.owner._log(RequestRecord("HEAD", path, rng, 200, 0))
            return
        if drop or type(self)._send is not _Handler._send:
            # Faults, and subclasses that shape bodies in _send (throttling), get the bytes through _send.
            with open(target, "rb") as handle:
                handle.seek(start)
                body = handle.read(end - start + 1)
            self._send(status, body, "application/octet-stream", headers, head, path, rng, drop)
            return
        self._sendfile(target, start, end - start + 1, status, headers, path, rng)

    def _sendfile(self, target: Path, start: int, length: int, status: int, headers: dict[str, str], path: str,
                  rng: str | None) -> None:
        """Send a file's byte range with ``os.sendfile`` (no copy through Python, the GIL released)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()
        record = self.owner._log(RequestRecord(self.command, path, rng, status, length))  # before, as in _send
        sent = 0
        with open(target, "rb") as handle:
            try:
                while sent < length:
                    n = os.sendfile(self.connection.fileno(), handle.fileno(), start + sent, length - sent)
                    if n == 0:
                        break
                    sent += n
            except (BrokenPipeError, ConnectionResetError):
                pass
        if sent < length:
            self.owner._amend(record, sent)
            self.close_connection = True  # the body fell short of its Content-Length


def _listing(folder: Path, path: str) -> bytes:
    rows = []
    for entry in sorted(folder.iterdir()):
        name = entry.name + ("/" if entry.is_dir() else "")
        size = "-" if entry.is_dir() else str(entry.stat().st_size)
        rows.append(f'<tr><td><a href="{html.escape(name)}">{html.escape(name)}</a></td><td>{size}</td></tr>')
    title = html.escape(path)
    return (f"<!DOCTYPE HTML><html><head><title>Index of {title}</title></head><body><h1>Index of {title}</h1>"
            f'<table><tr><th>Name</th><th>Size</th></tr><tr><td><a href="../">Parent Directory</a></td></tr>'
            + "".join(rows) + "</table></body></html>").encode()
