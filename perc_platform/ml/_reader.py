"""Chunk readers: the one seam through which the torch adapters read particle images.

A *chunk reader* knows the particle ranges of the blocks (chunks) of a stack and turns a
:class:`Segment` -- one block index plus the sorted particle positions wanted from it -- into a NumPy array
``(len(particles), y, x)``. Stream mode reads whole blocks (or the part of a block that falls in one shard);
memory mode reads every block once; map-style access reads single particles.

Three readers ship here, chosen by :func:`chunk_reader_for`:

* :class:`MrcChunkReader` for stacks opened by ``open_particles`` (any format of the format table): it reaches
  the ``StackArray`` behind the dask graph and calls ``read_particles`` directly, so a chunk is one batch of
  coalesced ranged reads per file with no dask scheduler in the way;
* :class:`DaskChunkReader` for any other dask-backed array: ``data.blocks[i]`` computed with the synchronous
  scheduler (the loaders bring their own read-ahead threads);
* :class:`NumpyChunkReader` for in-memory arrays, cut into blocks of about ``PERC_CHUNK_BYTES``.

Plugging in another reader (for example one that prefetches upcoming chunks as futures on a Dask cluster)
needs only an object with ``blocks``, ``read(segment)`` and, optionally, ``read_into(segment, targets)`` (fill
given per-particle arrays, saving a copy) and ``prefetch(segments)`` -- a hint called with segments that will
be read soon, in order -- passed as ``reader=`` to ``ParticleLoader`` or
``ParticleDataset``. Readers must pickle (DataLoader workers receive a copy) and be thread-safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import dask
import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.config import get_config
from perc_platform.datasets.selection import stack_source
from perc_platform.io.layout import RawLayout
from perc_platform.io.stack_array import StackArray
from perc_platform.storage.ranges import read_consecutive_into

__all__ = [
    "ChunkReader",
    "DaskChunkReader",
    "MrcChunkReader",
    "NumpyChunkReader",
    "Segment",
    "chunk_reader_for",
    "read_indices",
    "read_into",
]


@dataclasses.dataclass(frozen=True)
class Segment:
    """Particles to read from one block: ``particles`` are sorted global positions inside ``block``."""

    block: int
    particles: np.ndarray

    def __len__(self) -> int:
        return int(self.particles.size)


@runtime_checkable
class ChunkReader(Protocol):
    """What the loaders need from a reader (see the module docstring)."""

    blocks: tuple[tuple[int, int], ...]

    def read(self, segment: Segment) -> np.ndarray:
        """Images of ``segment.particles`` in that order, ``(n, y, x)``."""
        ...


def _block_ranges(sizes: Sequence[int]) -> tuple[tuple[int, int], ...]:
    ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
    starts = ends - np.asarray(sizes, dtype=np.int64)
    return tuple(zip(starts.tolist(), ends.tolist(), strict=True))


def _read_grouped(reader: ChunkReader, particles: np.ndarray) -> np.ndarray:
    particles = np.asarray(particles, dtype=np.int64)
    starts = np.array([a for a, _ in reader.blocks], dtype=np.int64)
    block_of = np.searchsorted(starts, particles, side="right") - 1
    order = np.argsort(particles, kind="stable")
    parts = [reader.read(Segment(b, particles[order[block_of[order] == b]])) for b in np.unique(block_of).tolist()]
    if not parts:
        return reader.read(Segment(0, particles))
    sorted_images = np.concatenate(parts) if len(parts) > 1 else parts[0]
    out = np.empty_like(sorted_images)
    out[order] = sorted_images
    return out


def read_indices(reader: ChunkReader, particles: np.ndarray) -> np.ndarray:
    """Images of arbitrary particle positions, in the given order, through any chunk reader."""
    own = getattr(reader, "read_indices", None)
    return np.asarray(own(particles)) if own is not None else _read_grouped(reader, particles)


def read_into(reader: ChunkReader, segment: Segment, targets: Sequence[np.ndarray]) -> None:
    """Fill ``targets[i]`` with the image of ``segment.particles[i]`` through any chunk reader."""
    own = getattr(reader, "read_into", None)
    if own is not None:
        own(segment, targets)
    else:
        _scatter(reader.read(segment), targets)


class _ReaderBase:
    blocks: tuple[tuple[int, int], ...]

    def read(self, segment: Segment) -> np.ndarray:
        raise NotImplementedError

    def read_indices(self, particles: np.ndarray) -> np.ndarray:
        """Images of arbitrary particle positions, in the given order (random access)."""
        return _read_grouped(self, particles)


class MrcChunkReader(_ReaderBase):
    """Reads segments straight from the ``StackArray`` behind an ``open_particles`` stack.

    For raw-stored frames (MRC), :meth:`read_into` reads each run of consecutive images of one file (its byte
    range from the file's layout) with
    :func:`~perc_platform.storage.ranges.read_consecutive_into`, which scatters local bytes straight into the
    caller's arrays (e.g. shuffled slots of pinned batches): a chunk is read whole and in order, and each image
    is copied once.
    """

    def __init__(self, array: StackArray, block_sizes: Sequence[int]) -> None:
        self.array = array
        self.blocks = _block_ranges(block_sizes)
        self._native = array.raw_native

    def read(self, segment: Segment) -> np.ndarray:
        return self.array.read_particles(np.asarray(segment.particles, dtype=np.int64))

    def read_indices(self, particles: np.ndarray) -> np.ndarray:
        return self.array.read_particles(np.asarray(particles, dtype=np.int64))

    def read_into(self, segment: Segment, targets: Sequence[np.ndarray]) -> None:
        """Fill ``targets[i]`` (C-contiguous ``(y, x)`` arrays) with the image of ``segment.particles[i]``."""
        array = self.array
        particles = segment.particles
        if not self._native or not all(t.dtype == array.dtype and t.flags.c_contiguous for t in targets):
            _scatter(self.read(segment), targets)
            return
        fids = array.file_ids[particles].tolist()
        locs = array.local[particles].tolist()
        a, n = 0, len(fids)
        while a < n:
            f, b = fids[a], a + 1
            while b < n and fids[b] == f and locs[b] == locs[b - 1] + 1:
                b += 1
            file = array.files[f]
            layout = file.layout
            assert isinstance(layout, RawLayout)  # raw_native said so
            read_consecutive_into(file.url, layout.byte_range(locs[a], b - a)[0], targets[a:b], file.options)
            a = b


def _scatter(images: np.ndarray, targets: Sequence[np.ndarray]) -> None:
    for image, target in zip(images, targets, strict=True):
        target[...] = image


class DaskChunkReader(_ReaderBase):
    """Reads a segment by computing its dask block (synchronously, in the calling thread)."""

    def __init__(self, data: da.Array) -> None:
        self.data = data
        self.blocks = _block_ranges(data.chunks[0])
        if any(len(c) != 1 for c in data.chunks[1:]):
            self.data = data.rechunk({1: -1, 2: -1})

    def read(self, segment: Segment) -> np.ndarray:
        start, stop = self.blocks[segment.block]
        (block,) = dask.compute(self.data.blocks[segment.block], scheduler="synchronous")
        block = np.asarray(block)
        rows = np.asarray(segment.particles, dtype=np.int64) - start
        if rows.size == stop - start and rows.size and rows[0] == 0 and rows[-1] == rows.size - 1:
            return block
        return block[rows]


class NumpyChunkReader(_ReaderBase):
    """Segments of an in-memory array, in blocks of about ``chunk_bytes``."""

    def __init__(self, array: np.ndarray, chunk_bytes: int | None = None) -> None:
        self.array = array
        per = max(1, (chunk_bytes or get_config().chunk_bytes) // max(1, array[0:1].nbytes))
        n = array.shape[0]
        self.blocks = tuple((a, min(a + per, n)) for a in range(0, n, per)) or ((0, 0),)

    def read(self, segment: Segment) -> np.ndarray:
        return np.take(self.array, np.asarray(segment.particles, dtype=np.int64), axis=0)

    def read_indices(self, particles: np.ndarray) -> np.ndarray:
        return np.take(self.array, np.asarray(particles, dtype=np.int64), axis=0)

    def read_into(self, segment: Segment, targets: Sequence[np.ndarray]) -> None:
        for particle, target in zip(segment.particles.tolist(), targets, strict=True):
            target[...] = self.array[particle]


def chunk_reader_for(images: xr.DataArray | Any) -> MrcChunkReader | DaskChunkReader | NumpyChunkReader:
    """The fastest reader for ``images``: MRC direct reads, dask blocks, or an in-memory array."""
    data = images.data if isinstance(images, xr.DataArray) else images
    if isinstance(data, da.Array):
        if isinstance(images, xr.DataArray):
            source = stack_source(images)
            if source is not None:
                return MrcChunkReader(source, data.chunks[0])
        return DaskChunkReader(data)
    return NumpyChunkReader(np.asarray(data))
