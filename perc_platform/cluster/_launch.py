"""Start a standalone cluster (``perc cluster start``) and describe a running one (``perc cluster info``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from distributed import Client, LocalCluster

from perc_platform.cluster._client import scheduler_address
from perc_platform.cluster._plugin import PLUGIN_NAME, register_config_plugin
from perc_platform.config import get_config
from perc_platform.errors import ParameterError

__all__ = ["cluster_info", "run_cluster", "start_cluster"]


def start_cluster(n_workers: int = 2, *, memory_limit: str | float = "4GiB", threads_per_worker: int = 1,
                  host: str = "127.0.0.1", port: int = 8786, dashboard_port: int = 8787) -> LocalCluster:
    """A scheduler and ``n_workers`` worker processes (each with a nanny and ``memory_limit``).

    ``host="0.0.0.0"`` serves other machines of a lab; ports 0 pick free ones.
    """
    if n_workers < 1 or threads_per_worker < 1:
        raise ParameterError(f"workers={n_workers} threads={threads_per_worker}: need at least one of each")
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, host=host,
                        scheduler_port=port, dashboard_address=f"{host}:{dashboard_port}",
                        memory_limit=memory_limit)


def run_cluster(say: Callable[[str], Any] = print, *, stop: threading.Event | None = None,
                **options: Any) -> None:
    """Start a cluster (see :func:`start_cluster`), share this process's config with it, and serve until
    interrupted (Ctrl-C or SIGTERM) or ``stop`` is set."""
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too, explicitly: a process started with SIGINT ignored (a background job of a shell script,
        # which is how many lab scripts start it) inherits SIG_IGN, and Python then never raises
        # KeyboardInterrupt, so Ctrl-C or `kill -INT` would be ignored and the cluster would serve on.
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        with start_cluster(**options) as cluster, Client(cluster) as client:
            register_config_plugin(client)
            info = cluster_info(client)
            say(f"scheduler: {info['scheduler']}")
            say(f"dashboard: {info['dashboard']}")
            for worker in info["workers"]:
                say(f"worker:    {worker['address']} ({worker['nthreads']} threads, memory limit "
                    f"{worker['memory_limit'] / 2**30:.2f} GiB)")
            say(f"use it with: export PERC_SCHEDULER_ADDRESS={info['scheduler']}")
            say("serving until interrupted (Ctrl-C)")
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            say("stopping the cluster")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cluster_info(client: Client | None = None, address: str | None = None) -> dict[str, Any]:
    """Scheduler address, dashboard, workers (threads, memory), published datasets, and whether the workers
    have the platform's config plugin."""
    if client is not None:
        return _describe(client)
    address = address or get_config().scheduler_address
    if not address:
        raise ParameterError("no cluster to describe: set PERC_SCHEDULER_ADDRESS or pass --address "
                             "(start one with `perc cluster start`)")
    with Client(address, timeout=get_config().connect_timeout, set_as_default=False) as own:
        return _describe(own)


def _describe(client: Client) -> dict[str, Any]:
    info = client.scheduler_info(n_workers=-1)
    plugins = client.run_on_scheduler(_worker_plugin_names)
    workers = [{"address": addr, "name": str(w.get("name", "")), "nthreads": int(w.get("nthreads", 0)),
                "memory_limit": int(w.get("memory_limit") or 0), "memory": int(w.get("metrics", {}).get("memory", 0))}
               for addr, w in sorted(info["workers"].items())]
    return {"scheduler": scheduler_address(client), "dashboard": client.dashboard_link, "workers": workers,
            "threads": sum(w["nthreads"] for w in workers), "memory_limit": sum(w["memory_limit"] for w in workers),
            "datasets": sorted(client.list_datasets()), "config_plugin": PLUGIN_NAME in plugins}


def _worker_plugin_names(dask_scheduler: Any) -> list[str]:
    return list(dask_scheduler.worker_plugins)
