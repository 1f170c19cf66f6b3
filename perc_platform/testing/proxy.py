"""A forward HTTP proxy on 127.0.0.1 for tests: it relays plain-HTTP requests to loopback servers only.

``with LoopbackProxy() as proxy:`` then ``http_proxy=proxy.url`` in the environment sends the platform's
HTTP clients through it; :attr:`LoopbackProxy.requests` records each relayed request (absolute URL and
Range header), so a test can see that a request really went through the proxy. Requests for any host other
than a loopback address are refused with 403: nothing ever leaves the machine.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from perc_platform.testing.server import serve_in_thread

__all__ = ["LoopbackProxy"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_FORWARDED = ("Range", "Accept-Encoding", "User-Agent", "Accept")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection", "content-length"})


class LoopbackProxy:
    """Forward proxy bound to 127.0.0.1 on a free port; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # method, absolute URL, Range header
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> LoopbackProxy:
        owner = self

        class Handler(_ProxyHandler):
            proxy = owner

        self._httpd, _thread = serve_in_thread(Handler, "perc-loopback-proxy")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the loopback proxy is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: LoopbackProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
        return

    def _refuse(self, status: int, why: str) -> None:
        body = why.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        self._refuse(501, "this test proxy relays plain HTTP only")

    def do_HEAD(self) -> None:
        self._relay("HEAD")

    def do_GET(self) -> None:
        self._relay("GET")

    def _relay(self, method: str) -> None:
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.netloc:
            self._refuse(400, "a forward proxy needs an absolute http:// URL on the request line")
            return
        if parts.hostname not in _LOOPBACK:
            self._refuse(403, f"{parts.hostname} is not a loopback address; this proxy relays to loopback only")
            return
        with self.proxy._lock:
            self.proxy.requests.append((method, self.path, self.headers.get("Range")))
        upstream = http.client.HTTPConnection(parts.netloc, timeout=30)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            upstream.request(method, target, headers={h: self.headers[h] for h in _FORWARDED if h in self.headers})
            answer = upstream.getresponse()
            body = answer.read()
            length = answer.getheader("Content-Length") if method == "HEAD" else None
        finally:
            upstream.close()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", length if length is not None else str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)
