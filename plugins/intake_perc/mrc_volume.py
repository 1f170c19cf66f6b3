"""``mrc_volume``: one MRC/CCP4 map (local, URL, ``.gz``) as a lazy ``density`` Dataset in Angstrom coords."""

from __future__ import annotations

from typing import Any

import xarray as xr
from pydantic import PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams
from perc_platform.datasets.volumes import open_volume


class MrcVolumeParams(SourceParams):
    urlpath: str
    chunks: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None


class MrcVolumeSource(LazyArraySource):
    """Lazy MRC density map; one partition."""

    name = "mrc_volume"
    Params = MrcVolumeParams

    def __init__(self, urlpath: str, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        return open_volume(p.urlpath, chunks=p.chunks, storage_options=p.storage_options)

    def to_neural_map(self, **options: Any) -> Any:
        """Fit a neural map to this map (``perc_platform.neural_maps.fit_neural_map`` options)."""
        from perc_platform.neural_maps import fit_neural_map

        return fit_neural_map(self._load(), **options)
