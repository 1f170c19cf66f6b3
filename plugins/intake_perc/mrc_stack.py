"""``mrc_stack``: particle stacks (files, glob or URL, optional STAR) as a lazy ``(particle, y, x)`` Dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from intake.source.base import DataSource, Schema
from pydantic import PositiveInt

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__
from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS
from perc_platform.datasets.particles import particle_parts
from perc_platform.datasets.selection import lazy_particles
from perc_platform.io.stack_array import StackArray


class MrcStackParams(SourceParams):
    urlpath: str | list[str] | None = None
    star: str | None = None
    chunk_size: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class MrcStackSource(DataSource):
    """Lazy MRC particle stacks; one partition per stack file."""

    container = "xarray"
    name = "mrc_stack"
    version = __version__
    partition_access = True

    def __init__(self, urlpath: str | list[str] | None = None, star: str | None = None,
                 chunk_size: int | None = None, storage_options: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None, **unknown: Any) -> None:
        self.params = validate_params(MrcStackParams, self.name, urlpath=urlpath, star=star,
                                      chunk_size=chunk_size, storage_options=storage_options, **unknown)
        self._parts: tuple[StackArray, dict[str, Any], dict[str, Any]] | None = None
        super().__init__(metadata=metadata)

    def _load(self) -> tuple[StackArray, dict[str, Any], dict[str, Any]]:
        if self._parts is None:
            p = self.params
            self._parts = particle_parts(p.urlpath, p.star, p.storage_options)
        return self._parts

    def _get_schema(self) -> Schema:
        array, _, attrs = self._load()
        self.metadata.update({k: v for k, v in attrs.items() if k != "history"})
        return Schema(datashape=None, dtype=str(array.dtype), shape=array.shape,
                      npartitions=len(array.files), extra_metadata={"files": [f.url for f in array.files]})

    def _dataset(self, data: Any, coords: dict[str, Any], attrs: dict[str, Any]) -> xr.Dataset:
        return xr.Dataset({IMAGE_NAME: (PARTICLE_DIMS, data, attrs)},
                          coords={k: ("particle", np.asarray(v)) for k, v in coords.items()}, attrs=attrs)

    def to_dask(self) -> xr.Dataset:
        array, coords, attrs = self._load()
        return self._dataset(lazy_particles(array, self.params.chunk_size), coords, attrs)

    def _get_partition(self, i: int) -> xr.Dataset:
        array, coords, attrs = self._load()
        rows = np.flatnonzero(array.file_ids == i)
        return self._dataset(array.read_particles(rows), {k: np.asarray(v)[rows] for k, v in coords.items()},
                             attrs)

    def read(self) -> xr.Dataset:
        return self.to_dask().load()

    def _close(self) -> None:
        self._parts = None
