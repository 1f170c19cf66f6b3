"""Density maps as lazy ``density`` DataArrays ``(z, y, x)`` with absolute Angstrom coords."""

from __future__ import annotations

import os
import re
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from perc_platform.config import get_config
from perc_platform.conventions import DENSITY_NAME, VOLUME_DIMS, provenance
from perc_platform.io.mrc_array import MrcFile, MrcVolumeArray
from perc_platform.io.mrc_file import open_mrc_file
from perc_platform.storage.policy import trusts_caller

__all__ = ["emdb_id_of", "open_volume", "volume_parts"]

_EMD = re.compile(r"EMD[-_](\d{4,6})", re.IGNORECASE)


def emdb_id_of(name: str, labels: tuple[str, ...] = ()) -> str | None:
    """``EMD-NNNN`` from an EMDB label or file name, if there is one."""
    for text in (*labels, os.path.basename(name)):
        match = _EMD.search(text)
        if match:
            return f"EMD-{match.group(1)}"
    return None


def volume_parts(file: MrcFile) -> tuple[MrcVolumeArray, dict[str, Any], dict[str, Any]]:
    """The lazy volume array, its Angstrom coords and attrs."""
    head = file.header
    array = MrcVolumeArray(file)
    voxel = tuple(v if v > 0 else 1.0 for v in head.voxel_size)
    origin = head.placement
    nz, ny, nx = array.shape
    coords = {
        "z": origin[2] + np.arange(nz) * voxel[2],
        "y": origin[1] + np.arange(ny) * voxel[1],
        "x": origin[0] + np.arange(nx) * voxel[0],
    }
    source_id = emdb_id_of(file.url, head.labels) or os.path.basename(file.url)
    attrs: dict[str, Any] = {
        "voxel_size": list(voxel),
        "origin": list(origin),
        "voxel_size_in_header": all(v > 0 for v in head.voxel_size),
        "mrc_mode": head.mode,
        "mrc_ispg": head.ispg,
        "mrc_axis_order": [head.mapc, head.mapr, head.maps],
        "mrc_start": list(head.start),
        "mrc_origin_field": list(head.origin),
        "mrc_cell_angles": list(head.cellb),
    }
    attrs.update(provenance(source_id=source_id, source_uri=file.url, history="opened MRC volume lazily"))
    return array, coords, attrs


@trusts_caller("path_or_url")
def open_volume(path_or_url: str | os.PathLike[str], *, chunks: int | None = None,
                storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Open an MRC/CCP4 map lazily as a ``density`` DataArray ``(z, y, x)`` in Angstrom coords.

    Voxel (i, j, k) sits at ``origin + index * voxel_size``, where the origin is the ORIGIN field when it
    is non-zero, else NXSTART/NYSTART/NZSTART times the voxel size; MAPC/MAPR/MAPS are honoured.
    ``.gz``/``.bz2`` maps are decompressed once into the cache. Only the header is read here.
    """
    file = open_mrc_file(os.fspath(path_or_url), storage_options)
    array, coords, attrs = volume_parts(file)
    axis = array._section_axis
    per_section = array.size // array.shape[axis] * array.dtype.itemsize
    step = chunks or max(1, get_config().chunk_bytes // max(1, per_section))
    chunk_spec: list[Any] = list(array.shape)
    chunk_spec[axis] = step
    name = "perc-read-mrc-" + tokenize(file.url, file.header)
    data = da.from_array(array, chunks=tuple(chunk_spec), name=name,
                         meta=np.empty((0, 0, 0), dtype=array.dtype), asarray=False, fancy=True)
    return xr.DataArray(data, dims=VOLUME_DIMS, coords=coords, name=DENSITY_NAME, attrs=attrs)
