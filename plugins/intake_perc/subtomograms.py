"""``subtomograms``: cubes cut around picks (STAR/CSV) in a tomogram, as a lazy ``(particle, z, y, x)`` Dataset."""

from __future__ import annotations

from typing import Any, Literal

import xarray as xr
from pydantic import NonNegativeInt, PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams
from perc_platform.datasets.subtomograms import open_subtomograms
from perc_platform.datasets.tomography import open_tomogram


class SubtomogramsParams(SourceParams):
    urlpath: str
    picks: str
    box: PositiveInt
    units: Literal["angstrom", "pixel"]
    edge: Literal["refuse", "pad"] = "refuse"
    pad_value: float = 0.0
    level: NonNegativeInt = 0
    chunk_size: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class SubtomogramsSource(LazyArraySource):
    """Lazy subtomograms; ``units`` (required) says whether the picks are in Angstrom or voxels."""

    name = "subtomograms"
    Params = SubtomogramsParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        volume = open_tomogram(p.urlpath, level=p.level, storage_options=p.storage_options)
        return open_subtomograms(volume, p.picks, box=p.box, units=p.units, edge=p.edge, pad_value=p.pad_value,
                                 chunk_size=p.chunk_size, storage_options=p.storage_options)
