"""EMPIAR imagesets as lazy ``image`` DataArrays read by byte range from the archive.

Particles are ``(particle, y, x)`` (optionally joined to a STAR file), micrographs ``(micrograph, y, x)``,
movies ``(movie, frame, y, x)``, tilt series ``(tilt, y, x)`` with ``tilt_angle`` and tomograms/subtomograms
``(z, y, x)`` volumes (several files of one shape stacked along a leading dim). Files are opened through the format
table (:mod:`perc_platform.io.formats`): MRC, TIFF (also bzip2/gzip-compressed) and EER are read by byte range; a
format the table knows but does not read (DM4, JPEG...) is refused with an error that names it, says why, and
how to get the files instead; so is an imageset category that is not images to open (diffraction images, ...).
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
from perc_platform.datasets._empiar_tomo import open_tomography_files
from perc_platform.datasets.particles import open_particles
from perc_platform.datasets.selection import lazy_particles
from perc_platform.errors import DataNotFoundError, FormatError
from perc_platform.io.formats import format_for, open_image_files, readable_suffixes, refusal_for
from perc_platform.io.stack_array import StackArray

__all__ = ["open_empiar_imageset"]


def _why(name: str) -> str:
    why = refusal_for(name)
    if why is not None:
        return why
    suffix = name.split(".", 1)[-1] if "." in name else name
    return f"no format in perc-platform's table reads .{suffix} files (it reads {', '.join(readable_suffixes())})"


def _refuse(eid: str, key: str, imageset: EmpiarImageset, what: str, why: str) -> FormatError:
    return FormatError(
        f"{eid} imageset {key!r} ({imageset.category or 'unknown category'}) holds {what}, which cannot be read "
        f"lazily: {why}. Download the files instead (`perc empiar download --entry {eid} --dir "
        f"{imageset.directory or '.'} --select ...`) and convert them")


def open_empiar_imageset(entry: str | int, imageset: str, *, pattern: str | None = None, regex: str | None = None,
                         star: str | None = None, chunk_size: int | None = None,
                         ttl: float = DEFAULT_TTL, format_options: dict[str, Any] | None = None) -> xr.DataArray:
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
    format_options
        Options of the files' format for movies, e.g. EER's ``{"super_resolution": 2, "frames_per_fraction": 20}``.
    """
    meta = fetch_empiar_entry(entry, ttl=ttl)
    eid, chosen = meta.empiar_id, meta.imageset(imageset)
    kind = chosen.kind
    if kind == "other":
        raise _refuse(eid, imageset, chosen, f"{chosen.category or 'images'}",
                      "only particles, micrographs, movies, tilt series, tomograms and subtomograms are opened as "
                      f"images, and the category {chosen.category or '(none)'!r} is none of them")
    files = list_files(eid, chosen.directory, pattern=pattern, regex=regex, ttl=ttl)
    if not files:
        raise DataNotFoundError(f"{eid} imageset {imageset!r}: no file under {chosen.directory or '/'} matches "
                                f"pattern={pattern!r} regex={regex!r}; `perc empiar search --entry {eid}` lists them")
    readable = [f for f in files if format_for(f.name) is not None]
    if pattern is None and regex is None:
        if not readable:  # without a pattern, files no format reads (pictures, logs) are left out
            formats = sorted({f.name.split(".", 1)[-1] for f in files})
            raise _refuse(eid, imageset, chosen, f"{chosen.data_format or 'unknown format'} files "
                          f"(.{', .'.join(formats)})", _why(files[0].name))
        files = readable
    elif len(readable) < len(files):
        odd = next(f.name for f in files if format_for(f.name) is None)
        raise _refuse(eid, imageset, chosen, f"{chosen.data_format or 'unknown format'} files such as {odd}",
                      _why(odd))
    if format_options and kind != "movies":
        raise FormatError(f"format_options apply to movie imagesets; imageset {imageset!r} of {eid} holds {kind}")
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
    elif kind == "movies":
        images = _open_movies(urls, chunk_size, format_options or {})
    else:
        images = open_tomography_files(kind, urls, chunk_size, f"{eid} imageset {imageset!r}")

    if star is None and chosen.pixel_width:
        # the archive's pixel size beats an unset header (1.0); it is the physical one, so a rendering divides it
        images.attrs["pixel_size"] = chosen.pixel_width / images.attrs.get("super_resolution", 1)
    images.attrs.update({"source_id": eid, "source_uri": empiar_files_url(eid, chosen.directory),
                         "imageset": chosen.name, "category": chosen.category})
    add_history(images, f"opened {len(urls)} file(s) of {eid} imageset {imageset!r} by byte range")
    return images


def _open_movies(urls: list[str], chunk_size: int | None, options: dict[str, Any]) -> xr.DataArray:
    files = open_image_files(urls, **options)
    first = files[0]
    for f in files[1:]:
        if (f.shape, f.dtype) != (first.shape, first.dtype):
            raise FormatError(f"{f.url}: {f.shape[0]} frames of {f.shape[2]}x{f.shape[1]} {f.dtype}, but {first.url} "
                              f"has {first.shape[0]} of {first.shape[2]}x{first.shape[1]} {first.dtype}; select movies "
                              "of one shape")
    frames = [lazy_particles(StackArray([f]), chunk_size) for f in files]
    data = da.stack(frames, axis=0)
    coords: dict[str, Any] = {"file": (MOVIE_DIMS[0], np.array([u.rsplit("/", 1)[-1] for u in urls]))}
    attrs: dict[str, Any] = {"stack_files": urls, "format": first.format}
    attrs.update({k: getattr(first, k) for k in ("super_resolution", "frames_per_fraction") if hasattr(first, k)})
    if first.pixel_size > 0:
        attrs["pixel_size"] = first.pixel_size
    return xr.DataArray(data, dims=MOVIE_DIMS, name=IMAGE_NAME, coords=coords, attrs=attrs)
