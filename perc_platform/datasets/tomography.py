"""Tilt series as lazy ``image`` DataArrays ``(tilt, y, x)`` with ``tilt_angle`` coords; tomograms as volumes.

A tilt series is an image stack (IMOD ``.st``/``.ali``, or ``.mrc``), so it is read like a particle stack:
one ranged read per chunk of tilts, nothing but the header at open. Its angles come from ``angles=`` (a
file or the numbers) or from the files IMOD and SerialEM put beside it (``TS.tlt``, ``TS.rawtlt``,
``TS.st.mdoc``, ``TS.mdoc``). A tomogram (``.rec``, ``.mrc``) is a volume and opens like a map.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from perc_platform.conventions import TILT_SERIES_DIMS, add_history
from perc_platform.datasets.particles import open_particles
from perc_platform.datasets.volumes import open_volume
from perc_platform.errors import DataNotFoundError, FormatError, RemoteError
from perc_platform.io.tilt_angles import angle_file_candidates, read_tilt_angles
from perc_platform.storage.policy import derived, trusts_caller
from perc_platform.storage.ranges import file_size

__all__ = ["open_tilt_series", "open_tomogram"]

Angles = str | os.PathLike[str] | Sequence[float] | np.ndarray


def _exists(url: str, storage_options: dict[str, Any] | None) -> bool:
    try:
        file_size(url, storage_options)
    except (DataNotFoundError, RemoteError, FileNotFoundError):
        return False
    return True


def _find_angle_file(stack: str, storage_options: dict[str, Any] | None) -> str:
    tried = [derived(stack, c) for c in angle_file_candidates(stack)]  # beside the caller's stack: theirs too
    for candidate in tried:
        if _exists(candidate, storage_options):
            return candidate
    raise DataNotFoundError(f"{stack}: no tilt angles found beside it (tried {', '.join(tried)}); pass angles= "
                            "(a .tlt/.rawtlt/.mdoc file or the angles in degrees)")


@trusts_caller("path_or_url", "angles")
def open_tilt_series(path_or_url: str | os.PathLike[str], angles: Angles | None = None, *,
                     chunk_size: int | None = None, storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Open a tilt series lazily as an ``image`` DataArray ``(tilt, y, x)`` with a ``tilt_angle`` coord.

    Parameters
    ----------
    path_or_url
        The stack (``.st``, ``.ali``, ``.mrc``; local path or fsspec URL).
    angles
        Tilt angles in degrees, in stack order: a ``.tlt``/``.rawtlt``/``.mdoc`` file, or the numbers. By
        default the first of ``TS.tlt``, ``TS.rawtlt``, ``TS.st.mdoc``, ``TS.mdoc`` beside the stack.
    chunk_size
        Tilts per dask chunk (default: about ``PERC_CHUNK_BYTES``).

    With an ``.mdoc``, the dose of each tilt (``ExposureDose``, e/A^2) and its pixel size come along. Only the
    header and the angle file are read here.
    """
    url = os.fspath(path_or_url)
    stack = open_particles(url, chunk_size=chunk_size, storage_options=storage_options)
    stack = stack.rename(particle=TILT_SERIES_DIMS[0]).drop_vars("image_name")
    source: str
    mdoc = None
    if angles is None or isinstance(angles, (str, os.PathLike)):
        source = os.fspath(angles) if angles is not None else _find_angle_file(url, storage_options)
        if source.lower().split("?", 1)[0].endswith(".mdoc"):
            from perc_platform.io.mdoc import read_mdoc

            mdoc = read_mdoc(source, storage_options)
            values = mdoc.tilt_angles()
        else:
            values = read_tilt_angles(source, storage_options)
    else:
        source = "angles given"
        values = np.asarray(angles, dtype=np.float64).reshape(-1)
        if not np.isfinite(values).all():
            raise FormatError(f"{url}: angles= holds values that are not finite numbers")
    n = stack.sizes[TILT_SERIES_DIMS[0]]
    if values.size != n:
        raise FormatError(f"{url} holds {n} images but {source} gives {values.size} tilt angles; pass the angle "
                          "file of this stack (angles=)")
    stack = stack.assign_coords(tilt_angle=(TILT_SERIES_DIMS[0], values))
    if mdoc is not None:
        order = mdoc.tilt_series_order()
        stack = stack.assign_coords(dose=(TILT_SERIES_DIMS[0], mdoc.dose[order]))
        if mdoc.pixel_size is not None:
            stack.attrs["pixel_size"] = mdoc.pixel_size
    stack.attrs["tilt_angles_from"] = source
    add_history(stack, f"tilt series: {n} tilts, angles from {source}")
    return stack


@trusts_caller("path_or_url")
def open_tomogram(path_or_url: str | os.PathLike[str], *, level: int = 0, chunks: int | None = None,
                  storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Open a reconstructed tomogram lazily as a ``(z, y, x)`` volume in Angstrom coords.

    MRC (``.rec``, ``.mrc``) is read like :func:`~perc_platform.datasets.volumes.open_volume` (MAPC/MAPR/MAPS
    and placement honoured, chunked along the sections); an OME-Zarr group (``.zarr``, as the CZ cryoET Data
    Portal serves tomograms) through :func:`~perc_platform.datasets.ome_zarr.open_ome_zarr` at scale ``level``.
    Only headers / metadata are read here.
    """
    url = os.fspath(path_or_url)
    if url.rstrip("/").lower().split("?", 1)[0].endswith(".zarr"):
        from perc_platform.datasets.ome_zarr import open_ome_zarr

        return open_ome_zarr(url, level=level, storage_options=storage_options)
    volume = open_volume(url, chunks=chunks, storage_options=storage_options)
    volume.attrs["kind"] = "tomogram"
    return volume
