"""How both HTTP clients reach a URL: directly, or through the environment's proxy.

:func:`open_connection` is shared by the archive client (``perc_platform.archives._http``) and the ranged
reader (``perc_platform.storage._http_ranges``), so a lab behind an HTTP(S) proxy (``http_proxy`` /
``https_proxy``, with ``no_proxy`` exceptions, as ``urllib`` reads them) reaches the archives and remote
stacks the same way. Plain HTTP through a proxy sends the absolute URL as the request target; HTTPS is
tunnelled with ``CONNECT``. Both clients read ``Retry-After`` with :func:`retry_after`.
"""

from __future__ import annotations

import email.utils
import http.client
import time
import urllib.request
from urllib.parse import urlsplit

__all__ = ["MAX_RETRY_AFTER", "open_connection", "proxy_for", "request_target", "retry_after"]

#: Longest ``Retry-After`` (seconds) honoured; a server asking for more is reported instead of waited for.
MAX_RETRY_AFTER = 120.0


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def proxy_for(url: str) -> str | None:
    """The proxy (``host:port``) the environment asks ``url`` to go through, or None for a direct connection."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}").netloc


def request_target(url: str, proxy: str | None = None) -> str:
    """What goes on the request line: the path (and query), or the whole URL for plain HTTP via a proxy."""
    parts = urlsplit(url)
    if proxy is not None and parts.scheme == "http":
        return url
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def open_connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """An unopened connection for ``url`` (through the environment's proxy, if any) and its request target."""
    parts = urlsplit(url)
    proxy = proxy_for(url)
    target = request_target(url, proxy)
    if proxy is not None and parts.scheme == "https":
        tunnel = http.client.HTTPSConnection(proxy, timeout=timeout)
        tunnel.set_tunnel(parts.netloc)
        return tunnel, target
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(proxy or parts.netloc, timeout=timeout), target
