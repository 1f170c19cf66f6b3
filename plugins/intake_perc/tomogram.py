"""``tomogram``: a tomogram (MRC ``.rec``/``.mrc``, or an OME-Zarr ``.zarr`` level) as a lazy ``(z, y, x)`` Dataset."""

from __future__ import annotations

from typing import Any

import xarray as xr
from pydantic import NonNegativeInt, PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams
from perc_platform.datasets.tomography import open_tomogram


class TomogramParams(SourceParams):
    urlpath: str
    level: NonNegativeInt = 0
    chunks: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class TomogramSource(LazyArraySource):
    """Lazy tomogram in absolute Angstrom coords; ``level`` picks the OME-Zarr scale."""

    name = "tomogram"
    Params = TomogramParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        return open_tomogram(p.urlpath, level=p.level, chunks=p.chunks, storage_options=p.storage_options)
