"""Lazy MRC arrays: shape, dtype and a picklable, thread-safe ``__getitem__`` (the xarray backend contract).

``MrcStackArray`` is ``(particle, y, x)`` over the images of one or many files; particle ``i`` is image
``local[i]`` of file ``file_ids[i]`` (the identity order when no STAR file reorders them). A read turns the
requested particles into runs of consecutive images per file, one byte range per run, all fetched in one
batch. ``MrcVolumeArray`` is ``(z, y, x)`` over one map, reading only the sections a key needs and
honouring MAPC/MAPR/MAPS.

Both hold only plain data (URLs, headers, index arrays): no open file, lock or memmap, so they pickle
small into a dask graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from perc_platform.io.mrc_header import MrcHeader
from perc_platform.storage.ranges import read_ranges_into

__all__ = ["MrcFile", "MrcStackArray", "MrcVolumeArray", "normalize_key"]

Key = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class MrcFile:
    """One MRC file: where it is, how to reach it, and its header."""

    url: str
    header: MrcHeader
    storage_options: tuple[tuple[str, Any], ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.storage_options)


def normalize_key(key: Any, ndim: int) -> Key:
    """Turn a NumPy-style key into a full tuple of int / slice / 1-D int array, one per axis."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (ndim - len(key) + 1) + key[i + 1:]
    key = key + (slice(None),) * (ndim - len(key))
    out: list[Any] = []
    for k in key:
        if isinstance(k, (list, np.ndarray)):
            arr = np.asarray(k)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            out.append(arr.astype(np.int64).reshape(-1))
        else:
            out.append(k)
    return tuple(out)


def _indices(k: Any, n: int) -> np.ndarray:
    if isinstance(k, slice):
        return np.arange(n, dtype=np.int64)[k]
    idx = k.copy() if isinstance(k, np.ndarray) else np.asarray([int(k)], dtype=np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"index out of range for axis of length {n}")
    idx[idx < 0] += n
    return idx


def _outer_index(array: np.ndarray, key: Key) -> np.ndarray:
    """Index one axis at a time, last axis first, so that array keys index orthogonally (outer indexing)."""
    out = array
    for axis in range(len(key) - 1, -1, -1):
        k = key[axis]
        if isinstance(k, slice) and k == slice(None):
            continue
        index: list[Any] = [slice(None)] * out.ndim
        index[axis] = k
        out = out[tuple(index)]
    return out


class MrcStackArray:
    """Lazy ``(particle, y, x)`` array over images of one or more MRC files with the same image shape."""

    ndim = 3

    def __init__(self, files: Sequence[MrcFile], file_ids: np.ndarray | None = None,
                 local: np.ndarray | None = None) -> None:
        self.files = tuple(files)
        first = self.files[0].header
        self._image_shape = (first.ny, first.nx)
        self._stored = first.dtype
        self.dtype = first.dtype.newbyteorder("=")
        if file_ids is None:
            counts = [f.header.nz for f in self.files]
            file_ids = np.repeat(np.arange(len(self.files), dtype=np.int32), counts)
            local = np.concatenate([np.arange(c, dtype=np.int64) for c in counts])
        self.file_ids = np.asarray(file_ids, dtype=np.int32)
        self.local = np.asarray(local, dtype=np.int64)
        self.shape = (int(self.file_ids.size), *self._image_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"MrcStackArray(shape={self.shape}, dtype={self.dtype}, files={len(self.files)})"

    def __getitem__(self, key: Any) -> np.ndarray:
        k0, k1, k2 = normalize_key(key, 3)
        particles = _indices(k0, self.shape[0])
        out = _outer_index(self.read_particles(particles), (slice(None), k1, k2))
        if not isinstance(k0, (slice, np.ndarray)):
            out = out[0]
        return out

    def read_particles(self, particles: np.ndarray) -> np.ndarray:
        """Images of the given particle positions, in that order, as a native-endian array."""
        ny, nx = self._image_shape
        out = np.empty((particles.size, ny, nx), dtype=self._stored)
        if particles.size == 0:
            return out.astype(self.dtype)
        fids, locs = self.file_ids[particles], self.local[particles]
        order = np.lexsort((locs, fids))
        sorted_f, sorted_l = fids[order], locs[order]
        # Runs of consecutive images in the same file; duplicates are read once and copied.
        unique = np.ones(order.size, dtype=bool)
        unique[1:] = (sorted_f[1:] != sorted_f[:-1]) | (sorted_l[1:] != sorted_l[:-1])
        uf, ul = sorted_f[unique], sorted_l[unique]
        breaks = np.flatnonzero((uf[1:] != uf[:-1]) | (ul[1:] != ul[:-1] + 1)) + 1
        run_starts = np.concatenate([[0], breaks])
        run_ends = np.concatenate([breaks, [uf.size]])
        in_order = bool(np.all(order == np.arange(order.size))) and bool(unique.all())
        target = out if in_order else np.empty((uf.size, ny, nx), dtype=self._stored)
        by_file: dict[int, tuple[list[tuple[int, int]], list[np.ndarray]]] = {}
        for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
            f = self.files[int(uf[a])]
            head = f.header
            ranges, bufs = by_file.setdefault(int(uf[a]), ([], []))
            ranges.append((head.data_offset + int(ul[a]) * head.section_bytes, (b - a) * head.section_bytes))
            bufs.append(target[a:b])
        for fid, (ranges, bufs) in by_file.items():
            f = self.files[fid]
            read_ranges_into(f.url, ranges, bufs, f.options)
        if not in_order:
            slot = np.cumsum(unique) - 1  # position in `target` of each sorted request
            out[order] = target[slot]
        return out if self._stored == self.dtype else out.astype(self.dtype)


class MrcVolumeArray:
    """Lazy ``(z, y, x)`` array over one MRC volume, honouring MAPC/MAPR/MAPS."""

    ndim = 3

    def __init__(self, file: MrcFile) -> None:
        self.file = file
        head = file.header
        self._stored = head.dtype
        self.dtype = head.dtype.newbyteorder("=")
        self._axes = head.zyx_axes
        self.shape = tuple(head.shape[a] for a in self._axes)
        self._section_axis = self._axes.index(0)  # output axis that runs along file sections

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"MrcVolumeArray(shape={self.shape}, dtype={self.dtype}, url={self.file.url!r})"

    def __getitem__(self, key: Any) -> np.ndarray:
        key = list(normalize_key(key, 3))
        s = self._section_axis
        wanted = _indices(key[s], self.shape[s])
        head = self.file.header
        lo, hi = (int(wanted.min()), int(wanted.max()) + 1) if wanted.size else (0, 0)
        block = np.empty((hi - lo, head.ny, head.nx), dtype=self._stored)
        if hi > lo:
            span = (head.data_offset + lo * head.section_bytes, (hi - lo) * head.section_bytes)
            read_ranges_into(self.file.url, [span], [block], self.file.options)
        zyx = block.transpose(self._axes)
        # Re-express the key along the section axis relative to the block that was read.
        k = key[s]
        if isinstance(k, (int, np.integer)):
            key[s] = int(wanted[0]) - lo
        elif isinstance(k, slice) and (k.step or 1) > 0:
            key[s] = slice(0, hi - lo, k.step)
        else:
            key[s] = wanted - lo
        out = _outer_index(zyx, tuple(key))
        return np.ascontiguousarray(out).astype(self.dtype, copy=False)
