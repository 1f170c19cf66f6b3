"""Run one dask task per chunk on the cluster, reporting progress as chunks finish."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask

__all__ = ["Progress", "active_client", "run_chunk_tasks"]

Progress = Callable[[int, int], None]


def active_client(start: bool = False) -> Any:
    """The active distributed client; with ``start``, the platform's (embedded) client when none is active."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        if not start:
            return None
        from perc_platform.cluster import get_client

        return get_client()


def run_chunk_tasks(tasks: Sequence[Any], *, total: int | None = None, done: int = 0,
                    progress: Progress | None = None, start_cluster: bool = False) -> None:
    """Compute ``tasks`` (dask delayed, small results) on the cluster; call ``progress(done, total)`` per chunk.

    Without a distributed client (and without ``start_cluster``) the tasks run on dask's local scheduler.
    On an error or interrupt the tasks still queued are cancelled and the exception propagates.
    """
    total = len(tasks) + done if total is None else total
    client = active_client(start_cluster)
    if client is None:
        dask.compute(*tasks)
        if progress is not None:
            progress(total, total)
        return
    from distributed import as_completed

    futures = client.compute(list(tasks))
    try:
        for future in as_completed(futures):
            future.result()
            done += 1
            if progress is not None:
                progress(done, total)
    except BaseException:
        client.cancel(futures)
        raise
