"""Subtomograms: cubes cut around picks in a tomogram, as a lazy ``image`` DataArray ``(particle, z, y, x)``.

Pick ``(x, y, z)`` becomes voxel index ``round((coord - origin) / voxel_size)`` for ``units="angstrom"``
(the volume's own Angstrom coords) or ``round(coord)`` for ``units="pixel"`` (0-based voxel indices). The
cube spans ``index - box // 2`` to ``index - box // 2 + box`` on each axis. Cubes that cross the border
are refused (``edge="refuse"``, the default, naming them) or filled with ``pad_value`` outside the volume
(``edge="pad"``).

From an MRC tomogram each cube is read with one ranged read per section it crosses (its rows, full
width), never the whole volume; from other volumes (OME-Zarr) it is a slice of the volume's dask array,
which reads the zarr chunks it touches. The particle axis is chunked, so the torch loader streams it like
a 2-D particle stack.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from perc_platform.config import get_config
from perc_platform.conventions import IMAGE_NAME, SUBTOMOGRAM_DIMS, add_history
from perc_platform.errors import ParameterError
from perc_platform.io.mrc_array import MrcFile
from perc_platform.io.picks import read_picks
from perc_platform.storage.policy import trusts_caller
from perc_platform.storage.ranges import read_ranges_into

__all__ = ["SubtomogramArray", "open_subtomograms", "pick_indices"]

Units = Literal["angstrom", "pixel"]


def pick_indices(xyz: np.ndarray, volume: xr.DataArray, units: Units) -> np.ndarray:
    """Voxel indices ``(n, 3)`` as ``(z, y, x)`` of pick centres ``(n, 3)`` given as ``(x, y, z)``."""
    if units not in ("angstrom", "pixel"):
        raise ParameterError(f"units={units!r}: say whether the picks are in 'angstrom' or 'pixel' (voxels)")
    zyx = np.asarray(xyz, dtype=np.float64)[:, ::-1]
    if units == "pixel":
        return np.rint(zyx).astype(np.int64)
    origin = np.array([float(volume.coords[d].values[0]) for d in ("z", "y", "x")])
    step = np.array([float(volume.coords[d].values[1] - volume.coords[d].values[0]) if volume.sizes[d] > 1
                     else 1.0 for d in ("z", "y", "x")])
    return np.rint((zyx - origin) / step).astype(np.int64)


class SubtomogramArray:
    """Lazy ``(particle, z, y, x)`` cubes of one MRC volume (axis order 1, 2, 3), read by section rows."""

    ndim = 4

    def __init__(self, file: MrcFile, starts: np.ndarray, box: int, pad_value: float = 0.0) -> None:
        head = file.header
        self.file = file
        self.starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
        self.box = int(box)
        self.pad_value = pad_value
        self._stored = head.dtype
        self.dtype = head.dtype.newbyteorder("=")
        self._volume = (head.nz, head.ny, head.nx)
        self.shape = (int(self.starts.shape[0]), self.box, self.box, self.box)

    def __repr__(self) -> str:
        return f"SubtomogramArray(shape={self.shape}, dtype={self.dtype}, url={self.file.url!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        picks = np.arange(self.shape[0])[key[0]]
        out = self.read(np.atleast_1d(picks))
        out = out[(slice(None), *key[1:])]
        return out[0] if np.ndim(picks) == 0 else out

    def read(self, picks: np.ndarray) -> np.ndarray:
        """The cubes of the given picks, in that order, with ``pad_value`` outside the volume."""
        b, head = self.box, self.file.header
        nz, ny, nx = self._volume
        row_bytes = nx * head.dtype.itemsize
        out = np.full((picks.size, b, b, b), self.pad_value, dtype=self.dtype)
        ranges: list[tuple[int, int]] = []
        buffers: list[np.ndarray] = []
        places: list[tuple[int, int, int, int, int, int]] = []
        for slot, pick in enumerate(picks.tolist()):
            z0, y0, x0 = self.starts[pick].tolist()
            ya, yb, xa, xb = max(y0, 0), min(y0 + b, ny), max(x0, 0), min(x0 + b, nx)
            if ya >= yb or xa >= xb:
                continue
            for z in range(max(z0, 0), min(z0 + b, nz)):
                buf = np.empty((yb - ya, nx), dtype=self._stored)
                ranges.append((head.data_offset + z * head.section_bytes + ya * row_bytes, (yb - ya) * row_bytes))
                buffers.append(buf)
                places.append((slot, z - z0, ya - y0, xa, xb, x0))
        if ranges:
            read_ranges_into(self.file.url, ranges, buffers, self.file.options)
        for buf, (slot, dz, dy, xa, xb, x0) in zip(buffers, places, strict=True):
            out[slot, dz, dy:dy + buf.shape[0], xa - x0:xb - x0] = buf[:, xa:xb]
        return out


def _check_edges(starts: np.ndarray, box: int, shape: tuple[int, ...], edge: str) -> None:
    if edge not in ("refuse", "pad"):
        raise ParameterError(f"edge={edge!r}: use 'refuse' (cubes must lie inside) or 'pad' (fill outside)")
    outside = ((starts < 0) | (starts + box > np.array(shape))).any(axis=1)
    if edge == "refuse" and outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise ParameterError(f"{int(outside.sum())} of {starts.shape[0]} picks (the first is pick {first}, cube "
                             f"from voxel (z, y, x) {starts[first].tolist()}) reach beyond the {shape} volume with "
                             f"box {box}; pass edge='pad' to fill outside, or drop those picks")


def _mrc_file_of(volume: xr.DataArray) -> MrcFile | None:
    """The MRC file behind a volume opened by ``open_volume``/``open_tomogram`` (standard axis order only)."""
    from perc_platform.io.mrc_array import MrcVolumeArray

    data = volume.data
    if not isinstance(data, da.Array):
        return None
    for layer in data.dask.layers.values():
        for value in layer.values():
            value = getattr(value, "value", value)
            if isinstance(value, MrcVolumeArray) and tuple(value.shape) == tuple(volume.shape):
                head = value.file.header
                return value.file if (head.mapc, head.mapr, head.maps) == (1, 2, 3) else None
    return None


def _sliced(volume: xr.DataArray, starts: np.ndarray, box: int, pad_value: float) -> da.Array:
    data = volume.data if isinstance(volume.data, da.Array) else da.from_array(volume.data)
    shape = np.array(volume.shape)
    cubes = []
    for start in starts:
        lo, hi = np.maximum(start, 0), np.minimum(start + box, shape)
        cube = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        pad = [(int(a - s), int(s + box - b)) for s, a, b in zip(start, lo, hi, strict=True)]
        if any(p != (0, 0) for p in pad):
            cube = da.pad(cube, pad, mode="constant", constant_values=pad_value)
        cubes.append(cube.rechunk((box, box, box)))  # one block per cube, so stacking multiplies no chunks
    return da.stack(cubes, axis=0)


@trusts_caller("picks")
def open_subtomograms(volume: xr.DataArray, picks: str | os.PathLike[str] | np.ndarray, *, box: int,
                      units: Units, edge: Literal["refuse", "pad"] = "refuse", pad_value: float = 0.0,
                      chunk_size: int | None = None, storage_options: dict[str, Any] | None = None) -> xr.DataArray:
    """Cut ``box``-voxel cubes around ``picks`` of ``volume``, lazily, as ``(particle, z, y, x)``.

    Parameters
    ----------
    volume
        A tomogram from :func:`open_tomogram`, :func:`open_volume` or :func:`open_ome_zarr`.
    picks
        A STAR (``rlnCoordinateX/Y/Z``) or CSV (``x, y, z``) file, or an ``(n, 3)`` array of ``(x, y, z)``.
    units
        Required: ``"angstrom"`` (in the volume's Angstrom coords) or ``"pixel"`` (0-based voxel indices).
    edge
        ``"refuse"`` cubes that cross the border (the default) or ``"pad"`` them with ``pad_value``.
    chunk_size
        Cubes per dask chunk (default: about ``PERC_CHUNK_BYTES`` of reads per chunk).
    """
    if tuple(volume.dims) != ("z", "y", "x"):
        raise ParameterError(f"volume has dims {volume.dims}; open a tomogram as (z, y, x) first")
    if not isinstance(box, (int, np.integer)) or box < 1:
        raise ParameterError(f"box={box!r}: give the cube edge in voxels, a positive integer")
    xyz = read_picks(picks, storage_options) if isinstance(picks, (str, os.PathLike)) else np.asarray(picks, float)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.isfinite(xyz).all():
        raise ParameterError(f"picks must be (n, 3) finite (x, y, z) coordinates; got shape {xyz.shape}")
    centres = pick_indices(xyz, volume, units)
    starts = centres - box // 2
    _check_edges(starts, box, tuple(volume.shape), edge)
    file = _mrc_file_of(volume)
    if file is not None:
        array = SubtomogramArray(file, starts, box, pad_value)
        per_pick = box * box * file.header.nx * file.header.dtype.itemsize
        per_chunk = chunk_size or max(1, get_config().chunk_bytes // max(1, per_pick))
        data = da.from_array(array, chunks=(per_chunk, box, box, box),
                             name="perc-read-subtomo-" + tokenize(file.url, starts, box, pad_value),
                             meta=np.empty((0, 0, 0, 0), dtype=array.dtype), asarray=False)
    else:
        data = _sliced(volume, starts, box, pad_value)
        data = data.rechunk((chunk_size or max(1, min(len(starts), 64)), box, box, box))
    coords = {"coordinate_x": ("particle", xyz[:, 0]), "coordinate_y": ("particle", xyz[:, 1]),
              "coordinate_z": ("particle", xyz[:, 2]),
              "voxel_z": ("particle", centres[:, 0]), "voxel_y": ("particle", centres[:, 1]),
              "voxel_x": ("particle", centres[:, 2])}
    attrs = {k: v for k, v in volume.attrs.items() if k not in ("history",)}
    attrs.update({"box": int(box), "edge": edge, "pick_units": units, "history": volume.attrs.get("history", "")})
    voxel = attrs.get("voxel_size")
    if voxel:
        attrs["pixel_size"] = float(voxel[0])
    out = xr.DataArray(data, dims=SUBTOMOGRAM_DIMS, coords=coords, name=IMAGE_NAME, attrs=attrs)
    add_history(out, f"cut {len(starts)} subtomograms of {box}^3 voxels around picks ({units}, edge={edge})")
    return out
