"""Movies as lazy ``image`` DataArrays ``(movie, frame, y, x)``, with dose, pixel size and exposure.

Any file the format table reads is a movie (TIFF, MRC, compressed MRC, EER): one file is one movie, its frames the
pages or sections; for EER, the fractions its raw frames are summed into (``frames_per_fraction``), rendered at
``super_resolution`` 1, 2 or 4 (see :mod:`perc_platform.io.eer_file`). Metadata come from the files (MRC header,
TIFF resolution tags, EER acquisition metadata), from SerialEM ``.mdoc`` files (``mdoc=``; by default
``<movie>.mdoc`` beside each local movie when there is one), or from arguments, which win. ``dose_per_frame`` is
electrons per square Angstrom per frame: SerialEM's ``ExposureDose`` (the whole exposure) divided by the frames.
:func:`sum_frames` groups frames into fractions lazily; Noise2Noise pairs come from
:func:`perc_platform.processing.noise2noise_pairs`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import (
    GAIN_FLIPS,
    GAIN_ROTATIONS,
    IMAGE_NAME,
    MOVIE_DIMS,
    add_history,
    orient_gain,
    provenance,
)
from perc_platform.datasets.particles import Source, expand_sources
from perc_platform.datasets.selection import lazy_particles
from perc_platform.errors import FormatError, ParameterError
from perc_platform.io.formats import open_image_file, open_image_files
from perc_platform.io.mdoc import MdocFile, read_mdoc
from perc_platform.io.stack_array import StackArray
from perc_platform.storage.policy import trusts_caller
from perc_platform.storage.ranges import is_remote

__all__ = ["apply_gain", "open_movies", "sum_frames"]


def _mdocs(urls: list[str], mdoc: str | Sequence[str] | bool | None,
           storage_options: dict[str, Any] | None) -> list[MdocFile | None]:
    if mdoc is False:
        return [None] * len(urls)
    if mdoc is None or mdoc is True:  # beside each local movie, when there
        found = [u + ".mdoc" if not is_remote(u) and os.path.isfile(u + ".mdoc") else None for u in urls]
        return [read_mdoc(p) if p else None for p in found]
    paths = [os.fspath(mdoc)] if isinstance(mdoc, (str, os.PathLike)) else [os.fspath(m) for m in mdoc]
    if len(paths) == 1 and len(urls) > 1:
        paths = paths * len(urls)  # one mdoc describes every movie (one session)
    if len(paths) != len(urls):
        raise ParameterError(f"{len(paths)} mdoc files for {len(urls)} movies; give one, or one per movie")
    return [read_mdoc(p, storage_options) for p in paths]


def _per_movie(mdocs: list[MdocFile | None], pick: Any) -> np.ndarray:
    values = []
    for m in mdocs:
        value = pick(m) if m is not None else np.nan
        values.append(float(value) if value is not None else np.nan)
    return np.asarray(values, dtype=np.float64)


def _first(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite[0]) if finite.size else np.nan


@trusts_caller("source", "mdoc")
def open_movies(source: Source, *, mdoc: str | Sequence[str] | bool | None = None,
                dose_per_frame: float | None = None, pixel_size: float | None = None,
                exposure_time: float | None = None, chunk_size: int | None = None,
                super_resolution: int | None = None, frames_per_fraction: int | None = None,
                remainder: str | None = None, storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Open movie files lazily as an ``image`` DataArray ``(movie, frame, y, x)`` backed by dask.

    Parameters
    ----------
    source
        A path, URL, glob or list of them; every file is one movie and all must share frame count and shape.
    mdoc
        SerialEM ``.mdoc`` file(s): one for all movies or one per movie; default: ``<movie>.mdoc`` beside each
        local movie if present; ``False``: none.
    dose_per_frame, pixel_size, exposure_time
        Electrons per square Angstrom per frame, Angstrom per pixel, seconds per exposure; given values win
        over the files'.
    chunk_size
        Frames per dask chunk (default: about ``PERC_CHUNK_BYTES``); one chunk never spans two movies.
    super_resolution, frames_per_fraction, remainder
        EER only: render on the 1x (sensor), 2x or 4x grid (default 1); sum this many raw frames into each
        fraction, which is then one ``frame`` (default 1); ``"drop"`` (default) or ``"keep"`` a last, shorter
        group. ``dose_per_frame`` is then the dose of one full fraction (from the EER metadata unless given or in
        an mdoc), ``pixel_size`` that of the rendered grid (an mdoc's physical one divided by the factor), and
        the ``raw_frames`` coord ``(movie, frame)`` says how many raw frames each fraction sums.

    Nothing but headers (and mdoc files) is read here.
    """
    urls = expand_sources(source, storage_options)
    given = {"super_resolution": super_resolution, "frames_per_fraction": frames_per_fraction,
             "remainder": remainder}
    files = open_image_files(urls, storage_options, **{k: v for k, v in given.items() if v is not None})
    first = files[0]
    for f in files[1:]:
        if (f.shape, f.dtype) != (first.shape, first.dtype):
            raise FormatError(f"{f.url}: {f.shape[0]} frames of {f.shape[2]}x{f.shape[1]} {f.dtype}, but "
                              f"{first.url} has {first.shape[0]} of {first.shape[2]}x{first.shape[1]} {first.dtype}; "
                              "open movies of one shape together")
    mdocs = _mdocs(urls, mdoc, storage_options)
    frames = first.shape[0]
    total_dose = _per_movie(mdocs, lambda m: _first(m.dose))
    times = _per_movie(mdocs, lambda m: _first(m.exposure_time))
    mdoc_pixel = _per_movie(mdocs, lambda m: m.pixel_size if m.pixel_size is not None else _first(m.section_pixel_size))
    mdoc_pixel = mdoc_pixel / getattr(first, "super_resolution", 1)  # an mdoc states the physical pixel
    per_frame = np.full(len(files), float(dose_per_frame)) if dose_per_frame is not None else total_dose / frames
    # formats that state dose or exposure themselves (EER's metadata) fill what the mdoc left unknown
    per_frame = np.where(np.isfinite(per_frame), per_frame, [getattr(f, "dose_per_frame", np.nan) for f in files])
    times = np.where(np.isfinite(times), times, [getattr(f, "exposure_time", np.nan) for f in files])
    if exposure_time is not None:
        times = np.full(len(files), float(exposure_time))
    data = da.stack([lazy_particles(StackArray([f]), chunk_size) for f in files], axis=0)
    coords: dict[str, Any] = {
        "file": (MOVIE_DIMS[0], np.array([u.rsplit("/", 1)[-1] for u in urls])),
        "frame": (MOVIE_DIMS[1], np.arange(1, frames + 1)),
        "dose_per_frame": (MOVIE_DIMS[0], per_frame),
        "exposure_time": (MOVIE_DIMS[0], times),
    }
    if hasattr(first, "frame_counts"):  # fractions of raw frames (EER)
        counts = [list(f.frame_counts) for f in files]  # type: ignore[attr-defined]
        coords["raw_frames"] = (MOVIE_DIMS[:2], np.asarray(counts, dtype=np.int64))
    attrs: dict[str, Any] = {"stack_files": urls, "format": first.format}
    for name in ("super_resolution", "frames_per_fraction"):
        if hasattr(first, name):
            attrs[name] = int(getattr(first, name))
    size = pixel_size if pixel_size is not None else _first(mdoc_pixel)
    if not np.isfinite(size) and first.pixel_size > 0:
        size = first.pixel_size
    if np.isfinite(size) and size > 0:
        attrs["pixel_size"] = float(size)
    if np.all(np.isfinite(per_frame)) and np.unique(per_frame).size == 1:
        attrs["dose_per_frame"] = float(per_frame[0])
    uri = urls[0] if len(urls) == 1 else f"{urls[0]} (+{len(urls) - 1} more)"
    attrs.update(provenance(source_id=os.path.basename(uri), source_uri=uri,
                            history=f"opened {len(files)} {first.format.upper()} movie(s) lazily"))
    return xr.DataArray(data, dims=MOVIE_DIMS, name=IMAGE_NAME, coords=coords, attrs=attrs)


def sum_frames(movies: xr.DataArray, group: int | None = None) -> xr.DataArray:
    """Sum frames (float32, lazily): all of them ``(movie, y, x)``, or fractions of ``group`` frames
    ``(movie, fraction, y, x)`` (a last, shorter group is left out, as motion correction programs do)."""
    if "frame" not in movies.dims:
        raise ParameterError(f"sum_frames needs a frame dimension; got dims {movies.dims}")
    if group is None:
        out = movies.sum("frame", dtype=np.float32)
        add_history(out, f"summed {movies.sizes['frame']} frames")
        return out
    if not 1 <= group <= movies.sizes["frame"]:
        raise ParameterError(f"group={group}: give 1 to {movies.sizes['frame']} frames per fraction")
    n = movies.sizes["frame"] // group
    used = movies.isel(frame=slice(0, n * group)).drop_vars("frame", errors="ignore")
    out = used.astype(np.float32).coarsen(frame=group).sum().rename(frame="fraction")
    out = out.assign_coords(fraction=np.arange(1, n + 1))
    if "dose_per_frame" in out.attrs:
        out.attrs["dose_per_fraction"] = out.attrs["dose_per_frame"] * group
    add_history(out, f"summed frames into {n} fractions of {group}")
    return out


def apply_gain(movies: xr.DataArray, gain: str | os.PathLike[str] | np.ndarray, *, rotation: int = 0, flip: int = 0,
               gain_is_tiff: bool | None = None, storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Multiply every frame by a gain reference (float32, lazily), oriented as RELION/MotionCor2 would.

    ``rotation`` and ``flip`` are RELION's ``--gain_rot``/``--gain_flip`` (= MotionCor2 ``-RotGain``/``-FlipGain``;
    see :data:`~perc_platform.conventions.GAIN_ROTATIONS`); ``gain`` is an MRC or TIFF file (any format of the
    table, its first frame) or an array in file order (then say ``gain_is_tiff``).
    """
    if isinstance(gain, np.ndarray):
        values, name, tiff = gain, "the given gain array", bool(gain_is_tiff)
    else:
        file = open_image_file(os.fspath(gain), storage_options)
        values, name, tiff = StackArray([file])[0], os.fspath(gain), file.format == "tiff"
    # EER is a TIFF container and its frames are rendered in TIFF row order, so it orients like TIFF
    oriented = orient_gain(np.asarray(values, dtype=np.float32), rotation, flip, gain_is_tiff=tiff,
                           movie_is_tiff=movies.attrs.get("format") in ("tiff", "eer"))
    shape = (movies.sizes["y"], movies.sizes["x"])
    if oriented.shape != shape:
        hint = ""
        factor = movies.attrs.get("super_resolution")
        if factor and oriented.shape[0] * factor % shape[0] == 0 and oriented.shape[1] * factor % shape[1] == 0:
            match = oriented.shape[0] * factor // shape[0]
            if match in (1, 2, 4) and oriented.shape[1] * factor // shape[1] == match:
                hint = (f"; the EER movies are rendered at super_resolution={factor}, this gain fits "
                        f"super_resolution={match}")
        raise ParameterError(f"{name}: the gain is {oriented.shape[1]}x{oriented.shape[0]} after rotation={rotation} "
                             f"and flip={flip}, the movies are {shape[1]}x{shape[0]}{hint}; use the gain recorded with "
                             "these movies (at their rendered size), or the rotation that matches (odd rotations swap "
                             "width and height)")
    out = movies.astype(np.float32) * xr.DataArray(oriented, dims=("y", "x"))
    out.attrs = dict(movies.attrs)
    out.name = movies.name
    add_history(out, f"multiplied by gain {name} ({GAIN_ROTATIONS[rotation]}, {GAIN_FLIPS[flip]})")
    return out
