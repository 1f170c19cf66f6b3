"""How fsspec reaches remote files here: the network policy on every layer and hop, and the retry policy.

* :func:`filesystem` turns any URL ``fsspec.open`` accepts (chained ones such as ``simplecache::https://...``
  included) into a filesystem and the path to give it. Every HTTP layer of it gets an aiohttp trace hook that
  judges each redirect with :func:`perc_platform.storage.policy.check_redirect` *before* it is followed (the
  refused hop is never requested), and ``trust_env`` so that proxies from the environment are honoured.
* :func:`with_retries` retries dropped connections, timeouts, 429 and 5xx answers with exponential backoff,
  waiting at least what ``Retry-After`` asks; 404/410 become :class:`DataNotFoundError` at once, other 4xx a
  :class:`RemoteError` at once, policy refusals pass through.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec

from perc_platform.config import PercConfig, get_config
from perc_platform.errors import DataNotFoundError, NetworkPolicyError, PercError, RemoteError
from perc_platform.storage import policy
from perc_platform.storage._http_connect import MAX_RETRY_AFTER, retry_after

__all__ = ["RetryLater", "filesystem", "refusals_mark", "refused_since", "with_retries"]

T = TypeVar("T")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class RetryLater(ConnectionError):
    """A transient answer (429/5xx); ``wait`` is the server's Retry-After in seconds, if it gave one."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def _transient_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, OSError]
    try:
        import aiohttp
        from fsspec.exceptions import FSTimeoutError

        errors += [aiohttp.ClientError, FSTimeoutError]
    except ImportError:  # fsspec's HTTP support (aiohttp) is optional for local-only use
        pass
    return tuple(errors)


_TRANSIENT = _transient_errors()

# Refusals made inside aiohttp (fsspec's info() turns any exception into FileNotFoundError, so the reason
# is kept here and raised instead of "does not exist").
_refusals: collections.deque[NetworkPolicyError] = collections.deque(maxlen=64)
_refused_count = 0
_refusals_lock = threading.Lock()


def refused_since(mark: int) -> NetworkPolicyError | None:
    with _refusals_lock:
        return _refusals[-1] if _refused_count > mark and _refusals else None


async def _on_redirect(session: Any, context: Any, params: Any) -> None:
    global _refused_count
    source = str(params.url)
    try:
        policy.check_redirect(source, policy.redirect_target(source, params.response.headers.get("Location", "")))
    except NetworkPolicyError as exc:
        with _refusals_lock:
            _refusals.append(exc)
            _refused_count += 1
        raise


def _trace_config() -> Any:
    import aiohttp

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_on_redirect)
    return trace


_TRACE: Any = None


def _http_options(options: dict[str, Any]) -> dict[str, Any]:
    global _TRACE
    if _TRACE is None:
        _TRACE = _trace_config()  # one instance: fsspec caches filesystems by their options
    options = dict(options)
    client = {"trust_env": True, **options.get("client_kwargs", {})}
    traces = list(client.get("trace_configs", []))
    client["trace_configs"] = traces if _TRACE in traces else [*traces, _TRACE]
    options["client_kwargs"] = client
    return options


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for ``url`` (checked against the network policy) and the path to pass it."""
    policy.check_url(url)
    options = dict(storage_options or {})
    for i, (protocol, _) in enumerate(policy.url_parts(url)):
        if protocol in ("http", "https"):
            if i == 0:
                options = _http_options(options)
            else:  # a later layer of a chain takes the options keyed by its protocol
                options[protocol] = _http_options(options.get(protocol, {}))
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path


def refusals_mark() -> int:
    """A mark to pass to :func:`with_retries` (refusals after it are raised instead of FileNotFoundError)."""
    with _refusals_lock:
        return _refused_count


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        return None, None
    headers = getattr(exc, "headers", None) or {}
    return status, retry_after(headers.get("Retry-After")) if hasattr(headers, "get") else None


def with_retries(call: Callable[[], T], url: str, config: PercConfig | None = None) -> T:
    """``call()`` with the platform's retry policy for reading ``url`` (see the module docstring)."""
    config = config or get_config()
    for attempt in range(config.retries + 1):
        mark = refusals_mark()
        try:
            return call()
        except (NetworkPolicyError, DataNotFoundError):
            raise
        except FileNotFoundError:
            refusal = refused_since(mark)
            if refusal is not None:
                raise refusal from None
            raise DataNotFoundError(f"{url} does not exist (HTTP 404/410 or missing file); check the path or URL"
                                    ) from None
        except PercError:
            raise
        except _TRANSIENT as exc:
            wait = exc.wait if isinstance(exc, RetryLater) else None
            status, header_wait = _status_of(exc)
            if status in (404, 410):
                raise DataNotFoundError(f"{url} answered HTTP {status} (gone or missing); check the path or URL"
                                        ) from None
            if status is not None and status not in _RETRY_STATUS:
                raise RemoteError(f"reading {url} failed: HTTP {status} {getattr(exc, 'message', '')}".rstrip()
                                  ) from None
            wait = wait if wait is not None else header_wait
            if attempt == config.retries:
                raise RemoteError(f"reading {url} failed after {attempt + 1} attempts: {exc}") from exc
            delay = config.backoff * 2**attempt
            if wait is not None:
                if wait > MAX_RETRY_AFTER:
                    raise RemoteError(f"reading {url}: the server asked to retry after {wait:.0f} s (more than "
                                      f"{MAX_RETRY_AFTER:.0f} s); try again later") from None
                delay = max(delay, wait)
            time.sleep(delay)
    raise AssertionError("unreachable")
