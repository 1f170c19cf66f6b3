"""The HTTP client every archive module uses: allow-listed hosts, timeouts, bounded retries with backoff.

* Only ``http``/``https`` URLs that the network policy (:mod:`perc_platform.storage.policy`: configured
  endpoints, ``PERC_EXTRA_HOSTS``, granted hosts) allows are requested, each redirect hop included; a
  redirect from https to http is refused.
* Connect and read timeouts come from config (``PERC_CONNECT_TIMEOUT``, ``PERC_READ_TIMEOUT``).
* 429 and 5xx answers, dropped connections (a body shorter than its ``Content-Length``), resets and
  timeouts are retried up to ``PERC_RETRIES`` times with exponential backoff (``PERC_BACKOFF * 2**attempt``
  seconds), waiting at least what ``Retry-After`` asks for.
* 404/410 raise :class:`DataNotFoundError`, anything else unusable :class:`RemoteError`; both messages name
  what was being fetched (the id) and the URL.

Public helpers: :func:`current_config`, :func:`check_url`, :func:`request`, :func:`get_bytes`, :func:`get_json`,
:func:`download`.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from perc_platform._version import __version__
from perc_platform.config import PercConfig, get_config
from perc_platform.errors import DataNotFoundError, NetworkPolicyError, PercError, RemoteError
from perc_platform.storage import policy
from perc_platform.storage._http_connect import MAX_RETRY_AFTER, open_connection, retry_after

__all__ = ["MAX_RETRY_AFTER", "USER_AGENT", "Answer", "Progress", "check_url", "current_config", "download",
           "get_bytes", "get_json", "request"]

USER_AGENT = f"perc-platform/{__version__}"
_MAX_REDIRECTS = 5
_BLOCK = 1 << 20
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
# What a dropped or stalled connection looks like from http.client.
_TRANSIENT = (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout, ssl.SSLError, OSError)

#: ``progress(bytes_done, bytes_total_or_None)``, called as a body arrives.
Progress = Callable[[int, "int | None"], None]


class _Retry(Exception):
    """An attempt failed in a way worth retrying; ``wait`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


@dataclass(frozen=True)
class _Answer:
    url: str
    status: int
    headers: Mapping[str, str]


def current_config() -> PercConfig:
    """The current settings (``get_config()``, which is rebuilt only when a ``PERC_*`` variable changes)."""
    return get_config()


def check_url(url: str, config: PercConfig | None = None) -> str:
    """Return ``url`` if it is http(s) and the network policy allows its host; else raise NetworkPolicyError.

    The policy (:mod:`perc_platform.storage.policy`) allows the configured endpoints, ``PERC_EXTRA_HOSTS``
    and granted hosts.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NetworkPolicyError(f"refusing to fetch {url!r}: only http(s) URLs are followed")
    return policy.check_url(url, config=config or current_config())


def _attempt(url: str, what: str, headers: Mapping[str, str], config: PercConfig,
             on_body: Callable[[http.client.HTTPResponse, _Answer], Any]) -> Any:
    """One try (following allowed redirects): returns ``on_body(...)`` or raises _Retry / a final error."""
    for _ in range(_MAX_REDIRECTS + 1):
        check_url(url, config)
        conn, target = open_connection(url, config.connect_timeout)
        try:
            try:
                conn.connect()
                if conn.sock is not None:
                    conn.sock.settimeout(config.read_timeout)
                conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                                                     "Connection": "close",
                                                     **headers})
                resp = conn.getresponse()
            except _TRANSIENT as exc:
                raise _Retry(f"{type(exc).__name__}: {exc}") from exc
            answer = _Answer(url, resp.status, {k.lower(): v for k, v in resp.getheaders()})
            if resp.status in _REDIRECT_STATUS and "location" in answer.headers:
                url = policy.check_redirect(url, policy.redirect_target(url, answer.headers["location"]), config=config)
                continue
            if resp.status in (404, 410):
                raise DataNotFoundError(f"{what} not found: {url} answered HTTP {resp.status}; check the id "
                                        "(or the PERC_*_URL endpoint)")
            if resp.status in _RETRY_STATUS:
                raise _Retry(f"HTTP {resp.status}", retry_after(answer.headers.get("retry-after")))
            if resp.status not in (200, 206):
                raise RemoteError(f"fetching {what} from {url} failed: HTTP {resp.status} {resp.reason}")
            _check_encoding(url, what, answer.headers)
            try:
                return on_body(resp, answer)
            except PercError:
                raise
            except _TRANSIENT as exc:
                raise _Retry(f"connection dropped mid-body ({type(exc).__name__}: {exc})") from exc
        finally:
            conn.close()
    raise RemoteError(f"fetching {what} from {url} failed: more than {_MAX_REDIRECTS} redirects")


def _check_encoding(url: str, what: str, headers: Mapping[str, str]) -> None:
    """Refuse a body sent encoded although identity was asked for: stored as it came, it would be wrong bytes.

    A ``.gz`` file sent with ``Content-Encoding: gzip`` (Apache's ``AddEncoding`` does this) is the file itself.
    """
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return
    if encoding in ("gzip", "x-gzip") and urlsplit(url).path.lower().endswith(".gz"):
        return
    raise RemoteError(f"{what}: {url} answered with Content-Encoding {encoding!r} although identity was asked "
                      "for; refusing to store or use encoded bytes as the file (ask the archive's operators, or "
                      "download it with another tool)")


def _with_retries(url: str, what: str, headers: Mapping[str, str] | None,
                  on_body: Callable[[http.client.HTTPResponse, _Answer], Any], before: Callable[[], None] | None
                  ) -> Any:
    config = current_config()
    if config.offline:
        raise DataNotFoundError(f"{what} is not in the cache and PERC_OFFLINE is set, so {url} was not "
                                "requested; fetch it once online or unset PERC_OFFLINE")
    check_url(url, config)
    reasons: list[str] = []
    for attempt in range(config.retries + 1):
        if before is not None:
            before()
        try:
            return _attempt(url, what, headers or {}, config, on_body)
        except _Retry as retry:
            reasons.append(str(retry))
            if attempt == config.retries:
                break
            delay = config.backoff * 2**attempt
            if retry.wait is not None:
                if retry.wait > MAX_RETRY_AFTER:
                    raise RemoteError(f"fetching {what} from {url}: the server asked to retry after "
                                      f"{retry.wait:.0f} s (more than {MAX_RETRY_AFTER:.0f} s); try again later"
                                      ) from None
                delay = max(delay, retry.wait)
            time.sleep(delay)
    raise RemoteError(f"fetching {what} from {url} failed after {len(reasons)} attempt(s): "
                      f"{'; '.join(reasons)}. Check the network or raise PERC_RETRIES / PERC_READ_TIMEOUT")


#: What ``on_body`` of :func:`request` is given besides the response: final URL, status, lower-case headers.
Answer = _Answer


def request(url: str, *, what: str, on_body: Callable[[http.client.HTTPResponse, _Answer], Any],
            headers: Mapping[str, str] | None = None, before: Callable[[], None] | None = None) -> Any:
    """GET ``url`` with the retry policy and return ``on_body(response, answer)`` for a 200/206 answer.

    ``before()`` runs before every attempt (e.g. to rewind a file or to set ``Range`` in ``headers``, which
    is read again at each attempt). A short body raised as ``http.client.IncompleteRead`` or any connection
    error inside ``on_body`` is retried like a 5xx; PercErrors pass through. Building block of
    :func:`get_bytes` and :func:`download`.
    """
    return _with_retries(url, what, headers, on_body, before)


def _read_all(resp: http.client.HTTPResponse, answer: _Answer) -> bytes:
    body = resp.read()
    expected = answer.headers.get("content-length")
    if expected is not None and len(body) != int(expected):
        raise http.client.IncompleteRead(body, int(expected) - len(body))
    return body


def get_bytes(url: str, *, what: str, headers: Mapping[str, str] | None = None) -> bytes:
    """The whole body of ``url`` (GET, retried); ``what`` names the thing fetched in errors (e.g. the id)."""
    return _with_retries(url, what, headers, _read_all, None)  # type: ignore[no-any-return]


def get_json(url: str, *, what: str, missing: Any = DataNotFoundError) -> Any:
    """Parsed JSON from ``url``; on 404 return ``missing`` if given, else raise DataNotFoundError."""
    try:
        body = get_bytes(url, what=what, headers={"Accept": "application/json"})
    except DataNotFoundError:
        if missing is DataNotFoundError:
            raise
        return missing
    if not body.strip():
        # Some EBI services answer "nothing maps" with an empty 200 body.
        if missing is DataNotFoundError:
            raise DataNotFoundError(f"{what} not found: {url} answered with an empty body")
        return missing
    try:
        return json.loads(body)
    except ValueError as exc:
        raise RemoteError(f"fetching {what} from {url}: the answer is not JSON ({exc}); "
                          f"it starts {body[:80]!r}") from None


def download(url: str, handle: IO[bytes], *, what: str, progress: Progress | None = None) -> int:
    """Stream ``url`` into the binary file ``handle`` (truncated before each try); return the bytes written.

    A transfer that ends short of its ``Content-Length`` is retried from the start, so ``handle`` holds the
    complete body when this returns.
    """

    def restart() -> None:
        handle.seek(0)
        handle.truncate()

    def copy(resp: http.client.HTTPResponse, answer: _Answer) -> int:
        total = int(answer.headers["content-length"]) if "content-length" in answer.headers else None
        done = 0
        while block := resp.read1(_BLOCK):
            handle.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
        if total is not None and done != total:
            raise http.client.IncompleteRead(b"", total - done)
        return done

    return _with_retries(url, what, None, copy, restart)  # type: ignore[no-any-return]
