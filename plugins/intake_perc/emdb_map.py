"""``emdb_map``: an EMDB map by id (``.map.gz`` fetched once into the cache) as a lazy ``density`` Dataset."""

from __future__ import annotations

from typing import Any

import xarray as xr
from pydantic import PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams
from perc_platform.datasets.emdb import open_emdb_map


class EmdbMapParams(SourceParams):
    emdb_id: str
    chunks: PositiveInt | None = None
    metadata_fields: bool = True


class EmdbMapSource(LazyArraySource):
    """A lazy EMDB density map in Angstrom coords; one partition."""

    name = "emdb_map"
    Params = EmdbMapParams

    def __init__(self, emdb_id: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, emdb_id=str(emdb_id), **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        return open_emdb_map(p.emdb_id, chunks=p.chunks, metadata=p.metadata_fields)
