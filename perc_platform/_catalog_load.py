"""Reading an untrusted catalog: one bounded fetch, checked hosts and redirects, bounded YAML.

The catalog text is read once (the validated text is the text that is used), at most ``MAX_BYTES``, over
HTTP(S) with the URL and each redirect checked by the network policy (``perc_platform.storage.policy``,
with the catalog's own host allowed) before it is followed, never from https to http. The YAML is parsed
with a ``SafeLoader`` that counts nodes as they are composed, with aliases counted at their expanded size,
so an alias bomb fails after reading a few hundred bytes instead of expanding to gigabytes; nesting deeper
than ``MAX_DEPTH`` fails before Python's recursion limit is near; duplicate keys and recursive aliases are
refused.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from perc_platform._version import __version__
from perc_platform.config import get_config
from perc_platform.errors import DataNotFoundError, NetworkPolicyError, PercError, RemoteError, UnsafeCatalogError
from perc_platform.storage import policy
from perc_platform.storage._http_connect import open_connection

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "TRUST_HINT", "is_url", "load_yaml", "local_dir",
           "read_catalog_text", "remote_problem"]

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000
_MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_url(location: str) -> bool:
    """Whether ``location`` names a remote resource (``scheme://``) rather than a local path."""
    return "://" in location and not location.startswith("file://")


TRUST_HINT = ("Open it with trusted=True only if you wrote it or trust its author (trusted catalogs are read by "
              "intake itself, templates, environment and shell lookups included)")


def remote_problem(url: str, hosts: set[str]) -> str | None:
    """Why ``url`` may not be read for an untrusted catalog (not http(s), user information, host not in
    ``hosts``), or None when it may."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return (f"{url!r} uses the {scheme + ':' if scheme else 'empty'} scheme; untrusted catalogs reach only "
                "http(s) URLs")
    try:
        host = policy.normalise_host(parts.netloc, scheme)
    except NetworkPolicyError:
        return f"{url!r} has an invalid port"
    if "@" in parts.netloc or "\\" in parts.netloc or host not in hosts:
        return (f"{url!r} points at host {host or '(none)'!r}, which is not allowed (allowed: "
                f"{', '.join(sorted(hosts)) or 'none'}); add it to PERC_EXTRA_HOSTS if you trust it")
    return None


def read_catalog_text(location: str, hosts: set[str]) -> str:
    """The text of the catalog at ``location`` (local path, ``file://`` or http(s) URL), read once."""
    if location.startswith("file://"):
        location = urlsplit(location).path
    raw = _read_http(location, hosts) if is_url(location) else _read_local(Path(location))
    if len(raw) > MAX_BYTES:
        raise UnsafeCatalogError(f"catalog {location} is larger than {MAX_BYTES >> 20} MiB; refusing it")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeCatalogError(f"catalog {location} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_local(path: Path) -> bytes:
    try:
        if not path.is_file():  # a FIFO or a device would block or never end
            raise DataNotFoundError(f"catalog {path} does not exist or is not a regular file; check the path")
        with path.open("rb") as handle:
            return handle.read(MAX_BYTES + 1)
    except PermissionError:
        raise DataNotFoundError(f"catalog {path} cannot be read (permission denied)") from None


def _read_http(url: str, hosts: set[str]) -> bytes:
    config = get_config()
    allowing = get_config(extra_hosts=sorted(hosts | set(config.extra_hosts)))  # the policy, plus the catalog's host
    first, previous = url, ""
    for _ in range(_MAX_REDIRECTS + 1):
        try:
            if previous:
                policy.check_redirect(previous, url, config=allowing)
            policy.check_url(url, config=allowing, what="a catalog")
        except NetworkPolicyError as exc:
            raise UnsafeCatalogError(f"catalog {first}: {exc}. {TRUST_HINT}") from None
        problem = remote_problem(url, hosts)
        if problem is not None:
            via = f" (redirected from {first})" if url != first else ""
            raise UnsafeCatalogError(f"catalog {url}{via}: {problem}. {TRUST_HINT}")
        conn, target = open_connection(url, config.read_timeout)
        try:
            conn.request("GET", target, headers={"Accept-Encoding": "identity",
                                                 "User-Agent": f"perc-platform/{__version__}"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                previous, url = url, policy.redirect_target(url, response.getheader("Location") or "")
                continue
            return _body(url, response)
        except PercError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteError(f"catalog {url} could not be read ({exc}); check the URL and the network") from None
        finally:
            conn.close()
    raise RemoteError(f"catalog {url}: more than {_MAX_REDIRECTS} redirects; check the URL")


def _body(url: str, response: http.client.HTTPResponse) -> bytes:
    if response.status == 404:
        raise DataNotFoundError(f"catalog {url} does not exist (HTTP 404); check the URL")
    if response.status != 200:
        raise RemoteError(f"catalog {url} answered HTTP {response.status}; check the URL or try again later")
    encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsafeCatalogError(f"catalog {url} was sent with Content-Encoding {encoding!r} although identity "
                                 "was asked for; refusing it")
    length = response.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > MAX_BYTES:
        raise UnsafeCatalogError(f"catalog {url} is larger than {MAX_BYTES >> 20} MiB; refusing it")
    return response.read(MAX_BYTES + 1)


def _at(mark: Any) -> str:
    return "at the start" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader counting composed nodes (aliases at their expanded size) and nesting depth."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self._where = where
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[int, int] = {}

    def _count(self, n: int, mark: Any) -> None:
        self._nodes += n
        if self._nodes > MAX_NODES:
            raise UnsafeCatalogError(f"catalog {self._where}: expands to more than {MAX_NODES} YAML nodes "
                                     f"({_at(mark)}); aliases that expand this far are refused")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise UnsafeCatalogError(f"catalog {self._where}: alias *{event.anchor} refers to a node that "
                                             f"contains it ({_at(event.start_mark)}); recursive aliases are refused")
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise UnsafeCatalogError(f"catalog {self._where}: YAML nested more than {MAX_DEPTH} levels deep "
                                         f"({_at(self.peek_event().start_mark)}); refusing it")
            start = self._nodes
            self._count(1, None)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._nodes - start
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key != "<<" and key in seen:
                raise UnsafeCatalogError(f"catalog {self._where}: key {key!r} appears twice in one mapping "
                                         f"({_at(key_node.start_mark)}); remove one of them")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document with the bounds above; UnsafeCatalogError on bad or oversized YAML."""
    loader = _BoundedLoader(text, where)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise UnsafeCatalogError(f"catalog {where} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def local_dir(location: str) -> str:
    """``CATALOG_DIR`` of a local catalog, as intake computes it (absolute, posix, ending in ``/``)."""
    path = os.path.join(os.getcwd(), os.path.dirname(location)).replace("\\", "/")
    return path if path.endswith("/") else path + "/"
