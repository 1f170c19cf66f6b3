"""``movies``: movie files of any format in the table (TIFF, MRC, compressed MRC, EER) as a lazy
``(movie, frame, y, x)`` Dataset with dose per frame, pixel size and exposure; an optional gain reference applied
lazily. EER movies take ``super_resolution`` (1, 2, 4), ``frames_per_fraction`` and ``remainder``."""

from __future__ import annotations

from typing import Any

import xarray as xr
from pydantic import PositiveInt, field_validator

from intake_perc._lazy import LazyArraySource
from intake_perc._params import EerParams
from perc_platform.datasets.movies import apply_gain, open_movies


class MoviesParams(EerParams):
    urlpath: str | list[str]
    mdoc: str | list[str] | bool | None = None
    dose_per_frame: float | None = None
    pixel_size: float | None = None
    gain: str | None = None
    gain_rotation: int = 0
    gain_flip: int = 0
    chunk_size: PositiveInt | None = None
    storage_options: dict[str, Any] | None = None

    @field_validator("mdoc", mode="before")
    @classmethod
    def _switch_as_text(cls, value: Any) -> Any:
        # Catalog parameters arrive as text: "false"/"true" switch the mdoc look-up, they are not file names.
        if isinstance(value, str) and value.strip().lower() in ("false", "true"):
            return value.strip().lower() == "true"
        return value


class MoviesSource(LazyArraySource):
    """Lazy movies; metadata from the files, SerialEM mdoc files or the arguments."""

    name = "movies"
    Params = MoviesParams

    def __init__(self, urlpath: str | list[str], metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, urlpath=urlpath, **kwargs)

    def _open(self) -> xr.DataArray:
        p: Any = self.params
        movies = open_movies(p.urlpath, mdoc=p.mdoc, dose_per_frame=p.dose_per_frame, pixel_size=p.pixel_size,
                             chunk_size=p.chunk_size, super_resolution=p.super_resolution,
                             frames_per_fraction=p.frames_per_fraction, remainder=p.remainder,
                             storage_options=p.storage_options)
        if p.gain:
            movies = apply_gain(movies, p.gain, rotation=p.gain_rotation, flip=p.gain_flip,
                                storage_options=p.storage_options)
        return movies
