"""``simulated_particles``: particle images simulated from a structure, lazy, with ground-truth coords."""

from __future__ import annotations

from typing import Any, Literal

import xarray as xr
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from intake_perc._lazy import LazyArraySource
from intake_perc._params import SourceParams


class SimulatedParticlesParams(SourceParams):
    structure: str
    n: PositiveInt
    box: PositiveInt
    pixel_size: PositiveFloat
    snr: PositiveFloat = 0.1
    defocus_range: tuple[PositiveFloat, PositiveFloat] = (10000.0, 25000.0)
    seed: NonNegativeInt = 0
    voltage: PositiveFloat = 300.0
    spherical_aberration: NonNegativeFloat = 2.7
    amplitude_contrast: NonNegativeFloat = 0.1
    max_shift: NonNegativeFloat | None = None
    resolution: PositiveFloat | None = None
    chunk_size: PositiveInt | None = None
    stage: Literal["noisy", "ctf", "clean"] = "noisy"

    @field_validator("defocus_range", mode="before")
    @classmethod
    def _pair_from_text(cls, value: Any) -> Any:
        # A catalog parameter renders as text: accept "10000,25000" or "[10000, 25000]".
        if isinstance(value, str):
            return [v for v in value.strip("[]() ").replace(",", " ").split() if v]
        return value


class SimulatedParticlesSource(LazyArraySource):
    """Particles from ``perc_platform.simulate.particles``: reproducible from the seed, generated per chunk."""

    name = "simulated_particles"
    Params = SimulatedParticlesParams

    def __init__(self, structure: str, n: int, box: int, pixel_size: float, metadata: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(metadata=metadata, structure=structure, n=n, box=box, pixel_size=pixel_size, **kwargs)

    def _open(self) -> xr.DataArray:
        from perc_platform.simulate import particles

        p = self.params.model_dump()
        return particles(p.pop("structure"), p.pop("n"), p.pop("box"), p.pop("pixel_size"), **p)
