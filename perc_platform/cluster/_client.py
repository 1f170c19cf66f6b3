"""The platform's Dask client: an embedded LocalCluster on first use, or the scheduler in config.

Nothing starts at import. ``get_client()`` returns the same client for the life of the process.
"""

from __future__ import annotations

import logging
import os
import threading

from distributed import Client, LocalCluster

from perc_platform.cluster._plugin import register_config_plugin
from perc_platform.config import get_config
from perc_platform.errors import RemoteError
from perc_platform.storage.policy import on_grant

__all__ = ["close_client", "dashboard_url", "get_client", "scheduler_address"]

log = logging.getLogger(__name__)
_lock = threading.Lock()
_client: Client | None = None
_cluster: LocalCluster | None = None
_sharing = False  # whether _client's workers get this process's settings


def get_client(address: str | None = None, *, n_workers: int | None = None, threads_per_worker: int = 1,
               memory_limit: str | float | None = "auto", share_config: bool = True) -> Client:
    """The platform's client: connect to ``address`` / ``PERC_SCHEDULER_ADDRESS``, else an embedded cluster.

    The embedded cluster uses worker processes (``threads_per_worker`` threads each, default 1), binds to
    127.0.0.1 and serves the dashboard on a free port of 127.0.0.1 (``dashboard_url()``). With
    ``share_config`` (the default) the workers get this process's ``PERC_*`` settings through
    :class:`PercConfigPlugin`.
    """
    global _client, _cluster, _sharing
    with _lock:
        if _client is not None and _client.status == "running":
            return _client
        address = address or get_config().scheduler_address
        if address:
            _client = Client(address, timeout=get_config().connect_timeout)
        else:
            workers = n_workers or max(1, min(2, os.cpu_count() or 1))
            _cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                    host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                    memory_limit=memory_limit)
            _client = Client(_cluster)
        _sharing = share_config
        if share_config:
            register_config_plugin(_client)
            on_grant(_share_grants)
        log.info("perc-platform dask client: %s (dashboard %s)", _client, _client.dashboard_link)
        return _client


def _share_grants() -> None:
    """A host was granted to the network policy: give the workers the new settings too."""
    client = _client
    if _sharing and client is not None and client.status == "running":
        register_config_plugin(client)


def scheduler_address(client: Client) -> str:
    """Address of the scheduler ``client`` talks to."""
    if client.scheduler is None:
        raise RemoteError("the Dask client is not connected to a scheduler; call get_client() again")
    return str(client.scheduler.address)


def dashboard_url() -> str | None:
    """The dashboard URL of the platform's client, if one is running."""
    return _client.dashboard_link if _client is not None else None


def close_client() -> None:
    """Close the platform's client and the embedded cluster, if any."""
    global _client, _cluster
    with _lock:
        if _client is not None:
            _client.close()
        if _cluster is not None:
            _cluster.close()
        _client = _cluster = None
