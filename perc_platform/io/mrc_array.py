"""MRC files for the format layer, and lazy MRC volumes (the xarray backend contract).

``MrcFile`` is the format layer's description of one MRC file (see :mod:`perc_platform.io.layout`): its
frames are the sections, stored raw one after another. Stacks of them are read by
:class:`~perc_platform.io.stack_array.StackArray` (``MrcStackArray`` is that class, under its old name).
``MrcVolumeArray`` is ``(z, y, x)`` over one map, reading only the sections a key needs and honouring
MAPC/MAPR/MAPS. Both hold only plain data (URLs, headers): no open file, lock or memmap, so they pickle
small into a dask graph.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from perc_platform.io._keys import indices, normalize_key, outer_index
from perc_platform.io.layout import RawLayout
from perc_platform.io.mrc_header import MrcHeader
from perc_platform.io.stack_array import StackArray
from perc_platform.storage.ranges import read_ranges_into

__all__ = ["MrcFile", "MrcStackArray", "MrcVolumeArray", "normalize_key"]

#: The stack array under its MRC-only name.
MrcStackArray = StackArray


class MrcHeaderFacts:
    """What an MRC file (plain or compressed) tells from its header; needs ``header`` and ``storage_options``."""

    header: MrcHeader
    storage_options: tuple[tuple[str, Any], ...]
    format: ClassVar[str] = "mrc"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.storage_options)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(sections, rows, columns)`` as stored."""
        return self.header.shape

    @property
    def dtype(self) -> np.dtype:
        return self.header.dtype

    @property
    def pixel_size(self) -> float:
        """Pixel size along x (Angstrom), 0.0 where the header leaves it unset."""
        return self.header.voxel_size[0]


@dataclasses.dataclass(frozen=True)
class MrcFile(MrcHeaderFacts):
    """One MRC file: where it is, how to reach it, and its header."""

    url: str
    header: MrcHeader
    storage_options: tuple[tuple[str, Any], ...] = ()

    @property
    def layout(self) -> RawLayout:
        """Sections stored raw after the header (and extended header)."""
        return RawLayout(self.header.data_offset, self.header.section_bytes)


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
        wanted = indices(key[s], self.shape[s])
        head = self.file.header
        lo, hi = (int(wanted.min()), int(wanted.max()) + 1) if wanted.size else (0, 0)
        block = np.empty((hi - lo, head.ny, head.nx), dtype=self._stored)
        if hi > lo:
            span = self.file.layout.byte_range(lo, hi - lo)
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
        out = outer_index(zyx, tuple(key))
        return np.ascontiguousarray(out).astype(self.dtype, copy=False)
