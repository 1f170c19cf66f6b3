"""``zarr_particles``: a particle store written by ``perc preprocess`` as a lazy ``image`` Dataset."""

from __future__ import annotations

from typing import Any, cast

import xarray as xr

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams


class ZarrParticlesParams(SourceParams):
    urlpath: str


class ZarrParticlesSource(LazyArraySource):
    """Preprocessed particles (``perc_platform.processing.open_preprocessed``); refuses unfinished stores."""

    name = "zarr_particles"
    Params = ZarrParticlesParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **unknown: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **unknown)

    def _open(self) -> xr.DataArray:
        from perc_platform.processing import open_preprocessed

        return open_preprocessed(cast(ZarrParticlesParams, self.params).urlpath)
