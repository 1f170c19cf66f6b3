"""``emdb_map``: an EMDB map by id (``.map.gz`` fetched once into the cache) as a lazy ``density`` Dataset."""

from __future__ import annotations

from typing import Any

import xarray as xr
from intake.source.base import DataSource, Schema
from pydantic import PositiveInt

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__
from perc_platform.datasets.emdb import open_emdb_map


class EmdbMapParams(SourceParams):
    emdb_id: str
    chunks: PositiveInt | None = None
    metadata_fields: bool = True


class EmdbMapSource(DataSource):
    """A lazy EMDB density map in Angstrom coords; one partition."""

    container = "xarray"
    name = "emdb_map"
    version = __version__
    partition_access = True

    def __init__(self, emdb_id: str, chunks: int | None = None, metadata_fields: bool = True,
                 metadata: dict[str, Any] | None = None) -> None:
        self.params = validate_params(EmdbMapParams, self.name, emdb_id=str(emdb_id), chunks=chunks,
                                      metadata_fields=metadata_fields)
        self._density: xr.DataArray | None = None
        super().__init__(metadata=metadata)

    def _load(self) -> xr.DataArray:
        if self._density is None:
            p = self.params
            self._density = open_emdb_map(p.emdb_id, chunks=p.chunks, metadata=p.metadata_fields)
        return self._density

    def _get_schema(self) -> Schema:
        density = self._load()
        self.metadata.update({k: v for k, v in density.attrs.items() if k != "history"})
        return Schema(datashape=None, dtype=str(density.dtype), shape=density.shape, npartitions=1,
                      extra_metadata={})

    def to_dask(self) -> xr.Dataset:
        return self._load().to_dataset(promote_attrs=True)

    def _get_partition(self, i: int) -> xr.Dataset:
        return self.to_dask().load()

    def read(self) -> xr.Dataset:
        return self.to_dask().load()

    def _close(self) -> None:
        self._density = None
