"""EMPIAR tomography imagesets: tilt series and (sub)tomograms opened through the same readers as local files.

Each file of a tilt-series imageset is one tilt series (:func:`~perc_platform.datasets.tomography.open_tilt_series`,
angles from the ``.tlt``/``.rawtlt``/``.mdoc`` beside it on the archive); each file of a tomogram or subtomogram
imageset one volume (:func:`~perc_platform.datasets.tomography.open_tomogram`). One file gives that DataArray;
several of one shape are stacked lazily along a leading dim (``tilt_series``, ``tomogram``, ``subtomogram``).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import IMAGE_NAME
from perc_platform.datasets.tomography import open_tilt_series, open_tomogram
from perc_platform.errors import FormatError

__all__ = ["open_tomography_files"]

_LEADING = {"tilt_series": "tilt_series", "tomograms": "tomogram", "subtomograms": "subtomogram"}


def open_tomography_files(kind: str, urls: list[str], chunk_size: int | None, where: str) -> xr.DataArray:
    """The files of a tomography imageset: one DataArray, or several of one shape stacked along a new dim."""
    if kind == "tilt_series":
        arrays = [open_tilt_series(u, chunk_size=chunk_size) for u in urls]
    else:
        arrays = [open_tomogram(u, chunks=chunk_size) for u in urls]
    first = arrays[0]
    if len(arrays) == 1:
        return first
    for url, array in zip(urls[1:], arrays[1:], strict=True):
        if array.shape != first.shape or array.dtype != first.dtype:
            raise FormatError(f"{where}: {url.rsplit('/', 1)[-1]} is {array.shape} {array.dtype} but "
                              f"{urls[0].rsplit('/', 1)[-1]} is {first.shape} {first.dtype}; select files of one "
                              "shape (pattern= or regex=), or open them one at a time")
    lead = _LEADING[kind]
    data = da.stack([a.data for a in arrays], axis=0)
    coords: dict[str, Any] = {"file": (lead, np.array([u.rsplit("/", 1)[-1] for u in urls]))}
    if kind == "tilt_series":
        coords["tilt_angle"] = ((lead, "tilt"), np.stack([a["tilt_angle"].values for a in arrays]))
    else:
        for dim in map(str, first.dims):  # Angstrom coords of each volume (their origins may differ)
            coords[f"{dim}_origin"] = (lead, np.array([float(a[dim].values[0]) for a in arrays]))
            coords[dim] = (dim, first[dim].values - float(first[dim].values[0]))
    attrs = dict(first.attrs)
    attrs["stack_files"] = urls
    return xr.DataArray(data, dims=(lead, *first.dims), name=first.name or IMAGE_NAME, coords=coords, attrs=attrs)
