"""``mrc_volume``: one MRC/CCP4 map (local, URL, ``.gz``) as a lazy ``density`` Dataset in Angstrom coords."""

from __future__ import annotations

from typing import Any

import xarray as xr
from intake.source.base import DataSource, Schema
from pydantic import PositiveInt

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__
from perc_platform.datasets.volumes import open_volume


class MrcVolumeParams(SourceParams):
    urlpath: str
    chunks: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class MrcVolumeSource(DataSource):
    """Lazy MRC density map; one partition."""

    container = "xarray"
    name = "mrc_volume"
    version = __version__
    partition_access = True

    def __init__(self, urlpath: str, chunks: int | None = None, storage_options: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None, **unknown: Any) -> None:
        self.params = validate_params(MrcVolumeParams, self.name, urlpath=urlpath, chunks=chunks,
                                      storage_options=storage_options, **unknown)
        self._density: xr.DataArray | None = None
        super().__init__(metadata=metadata)

    def _load(self) -> xr.DataArray:
        if self._density is None:
            p = self.params
            self._density = open_volume(p.urlpath, chunks=p.chunks, storage_options=p.storage_options)
        return self._density

    def _get_schema(self) -> Schema:
        density = self._load()
        self.metadata.update({k: v for k, v in density.attrs.items() if k != "history"})
        return Schema(datashape=None, dtype=str(density.dtype), shape=density.shape, npartitions=1,
                      extra_metadata={})

    def to_dask(self) -> xr.Dataset:
        density = self._load()
        return density.to_dataset(promote_attrs=True)

    def _get_partition(self, i: int) -> xr.Dataset:
        return self.to_dask().load()

    def read(self) -> xr.Dataset:
        return self.to_dask().load()

    def _close(self) -> None:
        self._density = None
