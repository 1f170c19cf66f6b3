"""The one network policy: which URLs may be read, checked where the bytes are read (redirects included).

A URL may be read when it is local (a path, ``file://``, ``local://``, ``memory://``) or when every network
part of it (each ``proto://host`` of an fsspec chain such as ``simplecache::https://host/x``) names an
allowed host:

* the configured archive endpoints (``PERC_*_URL``, :meth:`PercConfig.endpoint_hosts`),
* ``PERC_EXTRA_HOSTS``,
* hosts granted in this process with :func:`grant_host` (``open_catalog`` grants a shared catalog's own
  host). Granted hosts travel to Dask workers with the other settings (``perc_platform.cluster``).

Hosts are compared as ``host[:port]`` (lower case, default ports dropped): ``127.0.0.1:8000``,
``localhost:8000`` and ``127.0.0.1:8001`` are three different hosts. A redirect is followed only to a URL
the policy allows, and never from ``https`` to ``http`` (:func:`check_redirect`). Refusals raise
:class:`~perc_platform.errors.NetworkPolicyError`, naming the URL, the host and the fix.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from perc_platform.config import PercConfig, get_config
from perc_platform.errors import NetworkPolicyError

__all__ = ["allowed_hosts", "check_redirect", "check_url", "grant_host", "granted_hosts", "hosts_to_share",
           "normalise_host", "on_grant", "redirect_target", "url_parts"]

#: fsspec protocols that read nothing over the network themselves (local files, in-process memory, caches
#: and containers wrapping another layer of the chain, inline data).
LOCAL_PROTOCOLS = frozenset({"file", "local", "memory", "simplecache", "filecache", "blockcache", "cached",
                             "zip", "tar", "libarchive", "dir", "data", "asynclocal"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PROTOCOL = re.compile(r"^[a-z][a-z0-9+.\-]*$")

_granted: set[str] = set()
_listeners: list[Callable[[], None]] = []
_lock = threading.Lock()
# id(config) -> (config, generation, allowed hosts); holding the config keeps its id from being reused
_allowed_cache: dict[int, tuple[PercConfig, int, frozenset[str]]] = {}
_generation = 0  # grants and revocations so far


def normalise_host(netloc: str, scheme: str = "") -> str:
    """``host[:port]`` as the policy compares it: lower case, no user info, no default port."""
    parts = urlsplit(netloc if "//" in netloc else f"//{netloc}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise NetworkPolicyError(f"{netloc!r} has an invalid port; give hosts as host or host:port") from None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def grant_host(netloc: str) -> None:
    """Allow ``netloc`` (``host[:port]``, or a URL whose host to allow) for the rest of this process.

    Workers of the platform's Dask client are told too (see ``perc_platform.cluster``).
    """
    host = normalise_host(urlsplit(netloc).netloc if "://" in netloc else netloc)
    if not host:
        raise NetworkPolicyError(f"grant_host({netloc!r}): no host name in it; pass host or host:port")
    with _lock:
        if host in _granted:
            return
        _granted.add(host)
        _bump()
        listeners = list(_listeners)
    for listener in listeners:
        listener()


def granted_hosts() -> frozenset[str]:
    """Hosts granted in this process with :func:`grant_host`."""
    with _lock:
        return frozenset(_granted)


def on_grant(listener: Callable[[], None]) -> None:
    """Call ``listener()`` after each newly granted host (the cluster layer re-shares its settings)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def _revoke_all() -> None:
    """Forget every granted host (tests)."""
    with _lock:
        _granted.clear()
        _bump()


def _bump() -> None:
    global _generation
    _generation += 1
    _allowed_cache.clear()


def allowed_hosts(config: PercConfig | None = None) -> frozenset[str]:
    """Every host the policy allows now: endpoints, ``PERC_EXTRA_HOSTS`` and granted hosts."""
    config = config or get_config()
    cached = _allowed_cache.get(id(config))
    if cached is not None and cached[0] is config and cached[1] == _generation:
        return cached[2]
    generation = _generation
    hosts = {normalise_host(h) for h in config.endpoint_hosts()} | set(granted_hosts())
    allowed = frozenset(h for h in hosts if h)
    with _lock:
        if len(_allowed_cache) > 64:
            _allowed_cache.clear()
        _allowed_cache[id(config)] = (config, generation, allowed)
    return allowed


def url_parts(url: str) -> list[tuple[str, str]]:
    """``(protocol, url)`` for each layer of an fsspec URL (``a::b::proto://...``), outermost first."""
    out = []
    for bit in url.split("::") if "::" in url else [url]:
        if "://" in bit:
            out.append((bit.split("://", 1)[0].lower(), bit))
        elif _PROTOCOL.match(bit):
            out.append((bit.lower(), f"{bit}://"))
        else:
            out.append(("file", bit))
    return out


def check_url(url: str, *, config: PercConfig | None = None, what: str | None = None) -> str:
    """Return ``url`` if the policy allows reading it; else raise NetworkPolicyError saying how to allow it.

    ``what`` names what the URL was for in the message (e.g. "stack named by run.star").
    """
    allowed: frozenset[str] | None = None
    for protocol, part in url_parts(url):
        if protocol in LOCAL_PROTOCOLS:
            continue
        netloc = urlsplit(part).netloc
        host = normalise_host(netloc, protocol) if netloc else ""
        if allowed is None:
            allowed = allowed_hosts(config)
        if host and host in allowed:
            continue
        purpose = f" ({what})" if what else ""
        listed = ", ".join(sorted(allowed)) or "none"
        if not host:
            raise NetworkPolicyError(f"refusing to read {url}{purpose}: {part!r} names no host, so the network "
                                     "policy cannot allow it; give a full URL such as https://host/path")
        raise NetworkPolicyError(f"refusing to read {url}{purpose}: host {host!r} is not a configured endpoint "
                                 f"nor an allowed host (allowed: {listed}). If you trust it, add it to "
                                 f"PERC_EXTRA_HOSTS (e.g. PERC_EXTRA_HOSTS='[\"{host}\"]')")
    return url


def redirect_target(url: str, location: str) -> str:
    """The absolute URL a ``Location`` header sends ``url`` to."""
    return urljoin(url, location.strip())


def check_redirect(url: str, target: str, *, config: PercConfig | None = None) -> str:
    """Return ``target`` if a redirect from ``url`` to it may be followed: allowed host, no https -> http."""
    source_scheme, target_scheme = urlsplit(url).scheme.lower(), urlsplit(target).scheme.lower()
    if target_scheme not in ("http", "https"):
        raise NetworkPolicyError(f"refusing the redirect from {url} to {target}: only http(s) redirects are "
                                 "followed")
    if source_scheme == "https" and target_scheme == "http":
        raise NetworkPolicyError(f"refusing the redirect from {url} to {target}: it downgrades https to plain "
                                 "http; ask the server's owner to redirect to https")
    return check_url(target, config=config, what=f"redirected from {url}")


def hosts_to_share(config: PercConfig | None = None) -> list[str]:
    """``PERC_EXTRA_HOSTS`` plus the granted hosts: what other processes need to allow the same hosts."""
    config = config or get_config()
    return sorted(set(config.extra_hosts) | granted_hosts())

