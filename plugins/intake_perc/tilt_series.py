"""``tilt_series``: a tilt series (``.st``, ``.ali``, ``.mrc``) as a lazy ``(tilt, y, x)`` Dataset with angles."""

from __future__ import annotations

from typing import Any

import xarray as xr
from pydantic import PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams
from perc_platform.datasets.tomography import open_tilt_series


class TiltSeriesParams(SourceParams):
    urlpath: str
    angles: str | list[float] | None = None
    chunk_size: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class TiltSeriesSource(LazyArraySource):
    """Lazy tilt series; angles from ``angles`` or the ``.tlt``/``.rawtlt``/``.mdoc`` beside the stack."""

    name = "tilt_series"
    Params = TiltSeriesParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        return open_tilt_series(p.urlpath, p.angles, chunk_size=p.chunk_size, storage_options=p.storage_options)
