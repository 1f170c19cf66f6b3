"""``StackArray``: a lazy ``(frame, y, x)`` array over the frames of one or many image files of any format.

Frame ``i`` is frame ``local[i]`` of file ``file_ids[i]`` (the identity order when no STAR file reorders
them). A read asks each file's layout (the format layer, :mod:`perc_platform.io.layout`) for byte ranges:
runs of consecutive frames of a raw file (MRC) become one range each, a coded frame (TIFF strips or tiles)
its spans of contiguous segments; every range of one file is fetched in one batch (by ``storage``, or by the
layout itself when it reads through a decompressor: compressed MRC), then coded frames are decoded. The
array holds only plain data (URLs, layouts, index arrays), so it pickles small into a dask graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from perc_platform.io._keys import indices, normalize_key, outer_index
from perc_platform.io.layout import ImageFile, RawLayout, SegmentLayout
from perc_platform.storage.ranges import read_ranges_into

__all__ = ["StackArray"]


class StackArray:
    """Lazy ``(particle, y, x)`` array over the frames of image files that share frame shape and dtype."""

    ndim = 3

    def __init__(self, files: Sequence[ImageFile], file_ids: np.ndarray | None = None,
                 local: np.ndarray | None = None) -> None:
        self.files = tuple(files)
        first = self.files[0]
        self._image_shape = first.shape[1:]
        self._stored = np.dtype(first.dtype)
        self.dtype = self._stored.newbyteorder("=")
        if file_ids is None:
            counts = np.array([f.shape[0] for f in self.files], dtype=np.int64)
            file_ids = np.repeat(np.arange(len(self.files), dtype=np.int32), counts)
            starts = np.cumsum(counts) - counts  # each file's first frame, repeated over its frames
            local = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
        self.file_ids = np.asarray(file_ids, dtype=np.int32)
        self.local = np.asarray(local, dtype=np.int64)
        self.shape = (int(self.file_ids.size), *self._image_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def format(self) -> str:
        """Format name of the files (``mrc``, ``tiff``...)."""
        return self.files[0].format

    @property
    def frame_bytes(self) -> int:
        """Bytes of one decoded frame in memory."""
        return int(np.prod(self._image_shape)) * self.dtype.itemsize

    @property
    def raw_native(self) -> bool:
        """True when every frame is stored as raw, native-endian bytes (readable straight into buffers)."""
        return self._stored == self.dtype and all(type(f.layout) is RawLayout for f in self.files)

    def __repr__(self) -> str:
        return f"StackArray(shape={self.shape}, dtype={self.dtype}, format={self.format}, files={len(self.files)})"

    def subset(self, positions: np.ndarray) -> StackArray:
        """A lazy array over the frames at ``positions`` (in that order)."""
        return StackArray(self.files, self.file_ids[positions], self.local[positions])

    def __getitem__(self, key: Any) -> np.ndarray:
        k0, k1, k2 = normalize_key(key, 3)
        particles = indices(k0, self.shape[0])
        out = outer_index(self.read_particles(particles), (slice(None), k1, k2))
        if not isinstance(k0, (slice, np.ndarray)):
            out = out[0]
        return out

    def read_particles(self, particles: np.ndarray) -> np.ndarray:
        """Frames at the given positions, in that order, as a native-endian array."""
        ny, nx = self._image_shape
        out = np.empty((particles.size, ny, nx), dtype=self._stored)
        if particles.size == 0:
            return out.astype(self.dtype)
        fids, locs = self.file_ids[particles], self.local[particles]
        order = np.lexsort((locs, fids))
        sorted_f, sorted_l = fids[order], locs[order]
        # Runs of consecutive frames in the same file; duplicates are read once and copied.
        unique = np.ones(order.size, dtype=bool)
        unique[1:] = (sorted_f[1:] != sorted_f[:-1]) | (sorted_l[1:] != sorted_l[:-1])
        uf, ul = sorted_f[unique], sorted_l[unique]
        breaks = np.flatnonzero((uf[1:] != uf[:-1]) | (ul[1:] != ul[:-1] + 1)) + 1
        run_starts = np.concatenate([[0], breaks])
        run_ends = np.concatenate([breaks, [uf.size]])
        in_order = bool(np.all(order == np.arange(order.size))) and bool(unique.all())
        target = out if in_order else np.empty((uf.size, ny, nx), dtype=self._stored)
        by_file: dict[int, tuple[list[tuple[int, int]], list[np.ndarray]]] = {}
        coded: list[tuple[SegmentLayout, int, int, list[np.ndarray]]] = []  # layout, slot, frame, span buffers
        for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
            fid = int(uf[a])
            layout = self.files[fid].layout
            ranges, bufs = by_file.setdefault(fid, ([], []))
            if not isinstance(layout, SegmentLayout):  # raw frames: a run is one range
                ranges.append(layout.byte_range(int(ul[a]), b - a))
                bufs.append(target[a:b])
                continue
            for slot in range(a, b):
                frame = int(ul[slot])
                blobs = [np.empty(length, np.uint8) for _, length, _, _ in layout.frame_spans(frame)]
                ranges.extend((start, length) for start, length, _, _ in layout.frame_spans(frame))
                bufs.extend(blobs)
                coded.append((layout, slot, frame, blobs))
        for fid, (ranges, bufs) in by_file.items():
            f = self.files[fid]
            read = getattr(f.layout, "read_ranges_into", read_ranges_into)  # a layout may read for itself
            read(f.url, ranges, bufs, f.options)
        for layout, slot, frame, blobs in coded:
            layout.decode(frame, blobs, target[slot])
        if not in_order:
            slot_of = np.cumsum(unique) - 1  # position in `target` of each sorted request
            out[order] = target[slot_of]
        return out if self._stored == self.dtype else out.astype(self.dtype)
