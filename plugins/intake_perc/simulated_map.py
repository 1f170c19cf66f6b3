"""``simulated_map``: a molmap-style density map of a structure (path, URL or id) as a lazy ``density`` Dataset."""

from __future__ import annotations

from typing import Any, cast

import xarray as xr
from pydantic import PositiveFloat, PositiveInt

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams


class SimulatedMapParams(SourceParams):
    structure: str
    resolution: PositiveFloat
    voxel_size: PositiveFloat | None = None
    box: PositiveInt | None = None
    like: str | None = None
    cutoff: PositiveFloat = 5.0
    chunks: PositiveInt | None = None


class SimulatedMapSource(LazyArraySource):
    """Density simulated from atoms (``perc_platform.simulate.density_map``), on ``like``'s grid if given."""

    name = "simulated_map"
    Params = SimulatedMapParams

    def __init__(self, structure: str, resolution: float, voxel_size: float | None = None, box: int | None = None,
                 like: str | None = None, cutoff: float = 5.0, chunks: int | None = None,
                 metadata: dict[str, Any] | None = None, **unknown: Any) -> None:
        super().__init__(metadata=metadata, structure=structure, resolution=resolution, voxel_size=voxel_size,
                         box=box, like=like, cutoff=cutoff, chunks=chunks, **unknown)

    def _open(self) -> xr.DataArray:
        from perc_platform.datasets.volumes import open_volume
        from perc_platform.simulate import density_map

        p = cast(SimulatedMapParams, self.params)
        like = open_volume(p.like) if p.like else None
        return density_map(p.structure, p.voxel_size, p.resolution, p.box, like=like, cutoff=p.cutoff,
                           chunks=p.chunks)
