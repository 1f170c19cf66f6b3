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

**URLs the caller passes directly are readable whatever their host.** ``open_particles(url)``,
``open_volume(url)``, ``open_movies``, ``open_tilt_series``, ``open_tomogram``, ``open_ome_zarr``,
``open_subtomograms`` (its picks file) and ``open_image_file(s)`` are decorated with :func:`trusts_caller`:
when code *outside* perc-platform calls them, the URL arguments are wrapped as :class:`CallerURL`, a ``str``
subclass that :func:`check_url` lets through. The trust is carried by the string object itself, so it covers
exactly that call and the reads that follow from it (the opened files keep the object as their ``url``; it
pickles as itself into dask graphs, so reads on cluster workers are covered without granting any host),
and nothing else: the same URL typed in a catalog, named by a STAR/``.cs``/mdoc file, sent by an API or
as a redirect ``Location`` is a new plain ``str`` and is policed as above. The design fails closed:

* trust is never gained by accident: only :func:`trusts_caller` (for callers outside the package) and
  :func:`derived` (a URL our code builds from a caller's URL on the same host, e.g. a glob's matches)
  make a :class:`CallerURL` (``tests/test_safety_policy.py`` checks no other module constructs one);
* calls from inside the package (the catalog drivers in ``intake_perc``, the EMPIAR dataset with API
  answers) are never marked, whatever they pass; a driver that calls a public open function with a
  catalog's URL gets the plain policy;
* any string operation on a URL (joining, stripping, resolving a relative name) returns a plain ``str``,
  so trust can be lost by accident (a refusal naming the fix), never widened.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urljoin, urlsplit

from perc_platform.config import PercConfig, get_config
from perc_platform.errors import NetworkPolicyError

__all__ = ["CallerURL", "allowed_hosts", "check_redirect", "check_url", "derived", "grant_host", "granted_hosts",
           "hosts_to_share", "normalise_host", "on_grant", "redirect_target", "trusts_caller", "url_parts"]

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
#: Modules whose calls of the public open functions never mark URLs as the caller's (catalog drivers included).
_INTERNAL_PACKAGES = ("perc_platform", "intake_perc")
P = ParamSpec("P")
R = TypeVar("R")


class CallerURL(str):
    """A URL the caller passed directly to a public open function: :func:`check_url` reads it on any host.

    Made only by :func:`trusts_caller` and :func:`derived` (see the module docstring).
    """

    __slots__ = ()


def _is_internal(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _INTERNAL_PACKAGES)


def _mark(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, CallerURL) and ("://" in value or "::" in value):
        return CallerURL(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_mark(v) for v in value)
    return value


def trusts_caller(*names: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a public open function: the arguments ``names`` hold URLs the caller chose.

    Called from outside perc-platform, their URL strings (and lists of them) become :class:`CallerURL`;
    called from inside (drivers, archive code), nothing is marked.
    """
    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if not _is_internal(str(caller)):
                bound = signature.bind_partial(*args, **kwargs)
                for name in names:
                    if name in bound.arguments:
                        bound.arguments[name] = _mark(bound.arguments[name])
                return func(*bound.args, **bound.kwargs)  # type: ignore[arg-type]
            return func(*args, **kwargs)

        return wrapper

    return decorate


def derived(parent: str | os.PathLike[str], url: str) -> str:
    """``url`` as a :class:`CallerURL` when our code built it from the caller's URL ``parent`` and it stays
    on the same hosts (a glob's matches, a file beside the caller's); else ``url`` as it is."""
    if isinstance(parent, CallerURL) and isinstance(url, str) and _netlocs(parent) == _netlocs(url):
        return CallerURL(url)
    return url


def _netlocs(url: str) -> list[str]:
    return [urlsplit(part).netloc.lower() for protocol, part in url_parts(url) if protocol not in LOCAL_PROTOCOLS]


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

    ``what`` names what the URL was for in the message (e.g. "stack named by run.star"). A
    :class:`CallerURL` (passed directly by the caller) is allowed as it is.
    """
    if isinstance(url, CallerURL):
        return url
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
    return check_url(str(target), config=config, what=f"redirected from {url}")  # a Location is never the caller's


def hosts_to_share(config: PercConfig | None = None) -> list[str]:
    """``PERC_EXTRA_HOSTS`` plus the granted hosts: what other processes need to allow the same hosts."""
    config = config or get_config()
    return sorted(set(config.extra_hosts) | granted_hosts())

