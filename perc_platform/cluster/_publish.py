"""Shared datasets: persist a catalog slice on the cluster once and publish it by name.

One person (or a data-preparation job) runs ``publish_dataset(images, "empiar-10025-train")``: the slice is
read into the workers' memory and kept there under that name. Anyone connected to the same scheduler then
calls ``attach_dataset("empiar-10025-train")`` and gets the same lazy xarray object, labels and attrs
included, whose chunks are served from the cluster's memory: the files are not read again.
"""

from __future__ import annotations

from typing import Any

from distributed import Client, futures_of, wait

from perc_platform.cluster._client import scheduler_address
from perc_platform.errors import DataNotFoundError, InputError, ParameterError

__all__ = ["attach_dataset", "list_datasets", "publish_dataset", "unpublish_dataset"]


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from perc_platform.cluster._client import get_client

    return get_client()


def publish_dataset(data: Any, name: str, *, client: Client | None = None, override: bool = False) -> Any:
    """Persist ``data`` (an xarray object or dask collection) on the cluster and publish it as ``name``.

    Returns the persisted object. Waits until every chunk is in the workers' memory, so a read error
    surfaces here; the published copy lives until :func:`unpublish_dataset` (or the scheduler stops).
    """
    if not name or not isinstance(name, str):
        raise ParameterError(f"name={name!r}: a published dataset needs a non-empty string name")
    if not hasattr(data, "__dask_graph__") or data.__dask_graph__() is None:
        raise InputError(f"publish_dataset({name!r}) needs a lazy (dask-backed) object, got {type(data).__name__}; "
                         "open it from a catalog or with open_particles / open_volume")
    client = _client(client)
    if not override and name in client.list_datasets():
        raise ParameterError(f"a dataset named {name!r} is already published on {scheduler_address(client)}; "
                             "pick another name, pass override=True, or unpublish_dataset() it first")
    persisted = client.persist(data)
    futures = futures_of(persisted)
    wait(futures)
    for future in futures:
        if future.status == "error":
            raise future.exception()
    client.publish_dataset(**{name: persisted}, override=override)
    return persisted


def attach_dataset(name: str, *, client: Client | None = None) -> Any:
    """The dataset published as ``name`` on the cluster (its chunks come from the workers' memory)."""
    client = _client(client)
    try:
        return client.get_dataset(name)
    except KeyError:
        raise DataNotFoundError(f"no dataset named {name!r} is published on {scheduler_address(client)}; "
                                f"published: {sorted(client.list_datasets()) or 'none'}") from None


def list_datasets(*, client: Client | None = None) -> list[str]:
    """Names of the datasets published on the cluster."""
    return sorted(_client(client).list_datasets())


def unpublish_dataset(name: str, *, client: Client | None = None) -> None:
    """Remove ``name`` from the cluster; its memory is freed once no client holds it."""
    client = _client(client)
    try:
        client.unpublish_dataset(name)
    except KeyError:
        raise DataNotFoundError(f"no dataset named {name!r} is published on {scheduler_address(client)}") from None
