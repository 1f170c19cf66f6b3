"""``mrc_stack``: particle stacks (files, glob or URL, optional STAR) as a lazy ``(particle, y, x)`` Dataset."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import xarray as xr
from intake.source.base import Schema
from pydantic import PositiveInt

from intake_perc._lazy import PercSource
from intake_perc._params import SourceParams
from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS
from perc_platform.datasets.particles import particle_parts
from perc_platform.datasets.selection import lazy_particles
from perc_platform.io.stack_array import StackArray

_Parts = tuple[StackArray, dict[str, Any], dict[str, Any]]


class MrcStackParams(SourceParams):
    urlpath: str | list[str] | None = None
    star: str | None = None
    chunk_size: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class MrcStackSource(PercSource):
    """Lazy MRC particle stacks; one partition per stack file."""

    name = "mrc_stack"
    Params = MrcStackParams
    partition_access = True

    def __init__(self, urlpath: str | list[str] | None = None, metadata: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> _Parts:
        p = cast(MrcStackParams, self.params)
        return particle_parts(p.urlpath, p.star, p.storage_options)

    @staticmethod
    def _build(data: Any, coords: dict[str, Any], attrs: dict[str, Any]) -> xr.Dataset:
        return xr.Dataset({IMAGE_NAME: (PARTICLE_DIMS, data, attrs)},
                          coords={k: ("particle", np.asarray(v)) for k, v in coords.items()}, attrs=attrs)

    def _dataset(self, opened: _Parts) -> xr.Dataset:
        array, coords, attrs = opened
        return self._build(lazy_particles(array, cast(MrcStackParams, self.params).chunk_size), coords, attrs)

    def _schema_of(self, ds: xr.Dataset) -> Schema:
        array = cast(_Parts, self._load())[0]
        return Schema(datashape=None, dtype=str(array.dtype), shape=array.shape,
                      npartitions=len(array.files), extra_metadata={"files": [f.url for f in array.files]})

    def _get_partition(self, i: int) -> xr.Dataset:
        array, coords, attrs = cast(_Parts, self._load())
        rows = np.flatnonzero(array.file_ids == i)
        return self._build(array.read_particles(rows), {k: np.asarray(v)[rows] for k, v in coords.items()}, attrs)
