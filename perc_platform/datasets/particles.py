"""Particle stacks as lazy ``image`` DataArrays ``(particle, y, x)``, joined to STAR metadata."""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS, SUBTOMOGRAM_DIMS, provenance
from perc_platform.datasets._image_names import image_names
from perc_platform.datasets.selection import lazy_particles
from perc_platform.errors import (
    CsFormatError,
    DataNotFoundError,
    FormatError,
    NetworkPolicyError,
    ParameterError,
    StarFormatError,
)
from perc_platform.io.cryosparc import cs_particle_metadata, read_cs
from perc_platform.io.formats import open_image_file, open_image_files
from perc_platform.io.layout import ImageFile
from perc_platform.io.stack_array import StackArray
from perc_platform.io.star import ParticleMetadata, particle_metadata, read_star
from perc_platform.storage._remote import filesystem
from perc_platform.storage.policy import check_url, derived, trusts_caller
from perc_platform.storage.ranges import is_remote, resolve_relative

__all__ = ["expand_sources", "open_particles", "particle_parts"]

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def expand_sources(source: Source, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Paths/URLs from one path, URL, glob or a list of them (globs sorted); error when nothing matches."""
    items = [os.fspath(source)] if isinstance(source, (str, os.PathLike)) else [os.fspath(s) for s in source]
    out: list[str] = []
    for item in items:
        if _glob.has_magic(item):
            if is_remote(item):
                fs, pattern = filesystem(item, storage_options)  # checked against the network policy
                protocol = item.split("://", 1)[0]
                found = sorted(derived(item, m if "://" in m else f"{protocol}://{m}") for m in fs.glob(pattern))
            else:
                found = sorted(_glob.glob(item))
            if not found:
                raise DataNotFoundError(f"{item}: the pattern matches no file; check the folder and the pattern")
            out.extend(found)
        else:
            out.append(item)
    if not out:
        raise ParameterError("no particle files given; pass a path, URL, glob or list of them")
    return out


def _stack_candidates(star: str, name: str, given: dict[str, str]) -> list[str]:
    """Where the stack ``name`` (as a STAR file writes it) may be: a file the caller gave, then beside ``star``.

    Names the STAR file makes up are checked against the network policy, and a STAR file read over the
    network may not send us to local files (``/etc/...``, ``file://``)."""
    base = os.path.basename(name)
    candidates = [given[base]] if base in given else []
    for candidate in [resolve_relative(star, name)] + ([resolve_relative(star, base)] if base != name else []):
        try:
            if is_remote(star) and not is_remote(candidate):
                raise NetworkPolicyError(f"{star} names the stack {name!r}, a local file; a STAR file read over "
                                         "the network may only name files on allowed hosts. Pass the stack "
                                         "yourself (source=...) if you mean it")
            candidates.append(check_url(candidate, what=f"stack {name!r} named in {star}"))
        except NetworkPolicyError:
            if not candidates:  # nothing the caller gave to fall back on
                raise
    return list(dict.fromkeys(candidates))


def _open_star_stacks(star: str, names: list[str], given: dict[str, str],
                      storage_options: dict[str, Any] | None) -> dict[str, ImageFile]:
    files: dict[str, ImageFile] = {}
    for name in dict.fromkeys(names):
        tried = _stack_candidates(star, name, given)
        for candidate in tried:
            try:
                files[name] = open_image_file(candidate, storage_options)
                break
            except DataNotFoundError:
                continue
        else:
            raise DataNotFoundError(f"{star} refers to stack {name!r}, which was not found (tried: "
                                    f"{', '.join(tried)}); put the stack beside the STAR file or pass its path")
    return files


Parts = tuple[StackArray, dict[str, Any], dict[str, Any]]


def _read_metadata(path: str, storage_options: dict[str, Any] | None) -> ParticleMetadata:
    """Per-particle metadata of a RELION STAR file or, by its ``.cs`` suffix, a cryoSPARC particle table."""
    if path.lower().split("?", 1)[0].endswith(".cs"):
        return cs_particle_metadata(read_cs(path, storage_options), path)
    return particle_metadata(read_star(path, storage_options))


def particle_parts(source: Source | None = None, star: str | os.PathLike[str] | None = None,
                   storage_options: dict[str, Any] | None = None, *, volumes: bool = False) -> Parts:
    """The lazy stack array, per-particle coords and attrs for stacks (optionally joined to a STAR file).

    With ``volumes``, a STAR file whose every row names a whole multi-section file (a RELION subtomogram STAR
    file) is accepted: the array then lists one file per particle, and ``attrs`` holds ``whole_volumes``.
    """
    if source is None and star is None:
        raise ParameterError("open_particles needs stack files, a STAR file, or both")
    given = expand_sources(source, storage_options) if source is not None else []
    coords: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    subtomograms = False
    if star is not None:
        star = os.fspath(star)
        meta = _read_metadata(star, storage_options)
        by_base = {os.path.basename(g.split("?", 1)[0]): g for g in given}
        opened = _open_star_stacks(star, meta.stack_names, by_base, storage_options)
        names = list(opened)
        files = [opened[n] for n in names]
        position = {n: i for i, n in enumerate(names)}
        file_ids = np.array([position[n] for n in meta.stack_names], dtype=np.int32)
        local = meta.image_index
        whole = meta.whole_file if meta.whole_file is not None else np.zeros(len(local), dtype=bool)
        subtomograms = volumes and bool(whole.all()) and any(f.shape[0] > 1 for f in files)
        for fid, f in enumerate(files):
            rows = local[file_ids == fid]
            if whole[file_ids == fid].any() and f.shape[0] != 1 and not subtomograms:
                raise StarFormatError(f"{star}: names the whole file {f.url} (no '@'), which holds {f.shape[0]} "
                                      "sections; a particle here is one 2-D image: write 000001@file to pick one; "
                                      "open_particles reads a STAR file whose every row names a subtomogram "
                                      "(a whole 3-D file) as (particle, z, y, x)")
            if rows.size and rows.max() >= f.shape[0]:
                error = CsFormatError if star.lower().endswith(".cs") else StarFormatError
                raise error(f"{star}: refers to image {rows.max() + 1} of {f.url}, which holds "
                            f"{f.shape[0]} images; the metadata file and the stack do not match")
        coords = meta.coords
        attrs.update(meta.attrs)
        uri = star
    else:
        files = open_image_files(given, storage_options)
        file_ids, local = None, None
        uri = given[0] if len(given) == 1 else f"{given[0]} (+{len(given) - 1} more)"
    first = files[0]
    for f in files[1:]:
        if subtomograms and f.shape[0] != first.shape[0]:
            raise FormatError(f"{f.url}: a subtomogram of {f.shape[0]} sections, but {first.url} has "
                              f"{first.shape[0]}; the subtomograms of one STAR file must share their box")
        if (f.shape[1:], f.dtype, f.format) != (first.shape[1:], first.dtype, first.format):
            raise FormatError(f"{f.url}: images are {f.format} {f.shape[2]}x{f.shape[1]} {f.dtype} but {first.url} "
                              f"has {first.format} {first.shape[2]}x{first.shape[1]} {first.dtype}; a stack set must "
                              "share format, shape and dtype")
    array = StackArray(files, file_ids, local)
    if "image_name" not in coords:
        coords["image_name"] = image_names(array.file_ids, array.local, [os.path.basename(f.url) for f in files])
    if "pixel_size" not in attrs and "pixel_size" not in coords and first.pixel_size > 0:
        attrs["pixel_size"] = first.pixel_size
    history = f"opened {len(files)} {first.format.upper()} stack(s) lazily" + (f" with {star}" if star else "")
    attrs.update(provenance(source_id=os.path.basename(uri), source_uri=uri, history=history))
    attrs["stack_files"] = [f.url for f in files]
    if star is not None and subtomograms:
        attrs["whole_volumes"] = True
    return array, coords, attrs


def _subtomogram_data(array: StackArray) -> da.Array:
    """``(particle, z, y, x)``: every particle is a whole file of sections, all of one shape (checked above)."""
    per_file = [lazy_particles(StackArray([f]), f.shape[0]) for f in array.files]
    return da.stack([per_file[fid] for fid in array.file_ids])


@trusts_caller("source", "star")
def open_particles(source: Source | None = None, star: str | os.PathLike[str] | None = None, *,
                   chunk_size: int | None = None, storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Open particle stacks lazily as an ``image`` DataArray ``(particle, y, x)`` backed by dask.

    Parameters
    ----------
    source
        A path, fsspec URL (http(s) included), glob, or list of them. With ``star`` it may be omitted, and
        stacks named by the STAR file are then found relative to it.
    star
        RELION STAR file, or cryoSPARC ``.cs`` particle table, whose rows become the particles (in row order)
        with their metadata as coords (``.cs`` poses, CTF and shifts in RELION conventions, see
        :mod:`perc_platform.io.cryosparc`).
    chunk_size
        Particles per dask chunk (default: about ``PERC_CHUNK_BYTES`` per chunk).

    Nothing is read but the headers (and the STAR file). A STAR file whose every ``rlnImageName`` names a whole
    3-D file (RELION's subtomogram STAR files) gives ``(particle, z, y, x)``, one subtomogram per row.
    """
    array, coords, attrs = particle_parts(source, star, storage_options, volumes=True)
    if attrs.pop("whole_volumes", False):  # a RELION subtomogram STAR file: one 3-D file per row
        return xr.DataArray(_subtomogram_data(array), dims=SUBTOMOGRAM_DIMS, name=IMAGE_NAME,
                            coords={k: ("particle", np.asarray(v)) for k, v in coords.items()}, attrs=attrs)
    return xr.DataArray(lazy_particles(array, chunk_size), dims=PARTICLE_DIMS, name=IMAGE_NAME,
                        coords={k: ("particle", np.asarray(v)) for k, v in coords.items()}, attrs=attrs)
