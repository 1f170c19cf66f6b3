"""Run one dask task per chunk on the cluster, reporting progress as chunks finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask

__all__ = ["Progress", "active_client", "finished", "run_chunk_tasks"]

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


def finished(client: Any, futures: Any) -> Iterator[Any]:
    """``futures`` as they complete (``distributed.as_completed``). On an error or interrupt, while waiting or
    in the caller's loop (which closes this generator), the ones still queued are cancelled."""
    from distributed import as_completed

    try:
        yield from as_completed(futures)
    except BaseException:
        client.cancel(list(futures))
        raise


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
    for future in finished(client, client.compute(list(tasks))):
        future.result()
        done += 1
        if progress is not None:
            progress(done, total)
