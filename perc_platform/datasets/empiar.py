"""EMPIAR imagesets as lazy ``image`` DataArrays read by byte range from the archive.

Particles are ``(particle, y, x)`` (optionally joined to a STAR file), micrographs ``(micrograph, y, x)``
and movies ``(movie, frame, y, x)``. Only MRC files are read lazily; other formats (TIFF, EER, compressed
files) are refused with an error that says so and how to get the files instead.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.archives.empiar import (
    DEFAULT_TTL,
    EmpiarImageset,
    empiar_files_url,
    fetch_empiar_entry,
    list_files,
)
from perc_platform.conventions import IMAGE_NAME, MICROGRAPH_DIMS, MOVIE_DIMS, add_history
from perc_platform.datasets.particles import open_particles
from perc_platform.datasets.selection import lazy_particles
from perc_platform.errors import DataNotFoundError, FormatError, MrcFormatError
from perc_platform.io.mrc_array import MrcStackArray
from perc_platform.io.mrc_file import open_mrc_files

__all__ = ["LAZY_SUFFIXES", "open_empiar_imageset"]

#: File suffixes read lazily by byte range (MRC family).
LAZY_SUFFIXES = (".mrcs", ".mrc", ".st", ".ali", ".map")


def _refuse(eid: str, key: str, imageset: EmpiarImageset, what: str) -> FormatError:
    return FormatError(
        f"{eid} imageset {key!r} ({imageset.category or 'unknown category'}) holds {what}, which cannot be read "
        f"lazily yet: only MRC files ({', '.join(LAZY_SUFFIXES)}) are read by byte range. Download the files "
        f"instead (`perc empiar download --entry {eid} --dir {imageset.directory or '.'} --select ...`) and "
        "read them with a reader for that format")


def open_empiar_imageset(entry: str | int, imageset: str, *, pattern: str | None = None, regex: str | None = None,
                         star: str | None = None, chunk_size: int | None = None,
                         ttl: float = DEFAULT_TTL) -> xr.DataArray:
    """One imageset of an EMPIAR entry as a lazy ``image`` DataArray over the files it selects.

    Parameters
    ----------
    entry, imageset
        The entry id (``EMPIAR-10934`` or ``10934``) and the imageset's catalog key, name or directory.
    pattern, regex
        Select files below the imageset's directory by glob and/or regex (default: every MRC file).
    star
        RELION STAR file for particles: a URL, an absolute local path, or a path relative to the entry's folder
        (``data/.../particles.star``). Its rows become the particles, with their metadata as coords.
    chunk_size
        Images per dask chunk (default: about ``PERC_CHUNK_BYTES``).
    """
    meta = fetch_empiar_entry(entry, ttl=ttl)
    eid, chosen = meta.empiar_id, meta.imageset(imageset)
    kind = chosen.kind
    if kind == "other":
        raise _refuse(eid, imageset, chosen, f"{chosen.category or 'images'} (not particles, micrographs or movies)")
    files = list_files(eid, chosen.directory, pattern=pattern, regex=regex, ttl=ttl)
    if not files:
        raise DataNotFoundError(f"{eid} imageset {imageset!r}: no file under {chosen.directory or '/'} matches "
                                f"pattern={pattern!r} regex={regex!r}; `perc empiar search --entry {eid}` lists them")
    if pattern is None and regex is None:
        lazy = [f for f in files if f.name.lower().endswith(LAZY_SUFFIXES)]
        if not lazy:
            formats = sorted({f.name.split(".", 1)[-1] for f in files})
            raise _refuse(eid, imageset, chosen, f"{chosen.data_format or 'non-MRC'} files (.{', .'.join(formats)})")
        files = lazy
    else:
        odd = [f.name for f in files if not f.name.lower().endswith(LAZY_SUFFIXES)]
        if odd:
            raise _refuse(eid, imageset, chosen, f"{chosen.data_format or 'non-MRC'} files such as {odd[0]}")
    if star is not None and kind != "particles":
        raise FormatError(f"star= joins particle metadata; imageset {imageset!r} of {eid} holds {kind}")
    urls = [f.url for f in files]
    if kind == "particles":
        star_url = star
        if star is not None and "://" not in star and not os.path.isabs(star):
            star_url = empiar_files_url(eid, star)
        images = open_particles(urls, star=star_url, chunk_size=chunk_size)
    elif kind == "micrographs":
        images = open_particles(urls, chunk_size=chunk_size).rename(particle=MICROGRAPH_DIMS[0])
    else:
        images = _open_movies(urls, chunk_size)
    if star is None and chosen.pixel_width:
        images.attrs["pixel_size"] = chosen.pixel_width  # the archive's pixel size beats an unset header (1.0)
    images.attrs.update({"source_id": eid, "source_uri": empiar_files_url(eid, chosen.directory),
                         "imageset": chosen.name, "category": chosen.category})
    add_history(images, f"opened {len(urls)} file(s) of {eid} imageset {imageset!r} by byte range")
    return images


def _open_movies(urls: list[str], chunk_size: int | None) -> xr.DataArray:
    files = open_mrc_files(urls)
    first = files[0].header
    for f in files[1:]:
        h = f.header
        if (h.nz, h.ny, h.nx, h.mode) != (first.nz, first.ny, first.nx, first.mode):
            raise MrcFormatError(f"{f.url}: {h.nz} frames of {h.nx}x{h.ny} mode {h.mode}, but {files[0].url} has "
                                 f"{first.nz} of {first.nx}x{first.ny} mode {first.mode}; select movies of one shape")
    frames = [lazy_particles(MrcStackArray([f]), chunk_size) for f in files]
    data = da.stack(frames, axis=0)
    coords: dict[str, Any] = {"file": (MOVIE_DIMS[0], np.array([u.rsplit("/", 1)[-1] for u in urls]))}
    attrs: dict[str, Any] = {"stack_files": urls}
    if first.voxel_size[0] > 0:
        attrs["pixel_size"] = first.voxel_size[0]
    return xr.DataArray(data, dims=MOVIE_DIMS, name=IMAGE_NAME, coords=coords, attrs=attrs)
