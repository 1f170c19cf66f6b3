"""Prefetch for trainers: upcoming chunks are computed as futures on the cluster, N ahead, read in order.

:class:`ClusterChunkReader` is a chunk reader for the torch adapters (``ParticleLoader(..., reader=...)``,
see ``perc_platform.ml._reader``): ``read(segment)`` returns the images of one segment (a block index and
the sorted particle positions wanted from it) and ``prefetch(segments)`` is the loader's hint of the
segments it will read next, in order. The reader keeps up to ``ahead`` of those segments in flight as
futures on the cluster, so the cluster reads (and, for persisted or published datasets, serves from its
memory) while the trainer consumes the current batch. The client holds only what it is reading: a
prefetched chunk stays on its worker until it is asked for, and is released once read.

Tasks are named ``perc-fetch-<token>`` so the dashboard shows what they are. For stacks opened by
``open_particles`` a task reads its particles straight from the files (one coalesced ranged read per
file); for any other dask-backed array it computes the block. Tasks carry everything they need, so a
worker that dies mid-read is replaced by a recomputation elsewhere.

:func:`prefetch_chunks` is the same machinery as a plain iterator over whole blocks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from distributed import Client, Future, futures_of

from perc_platform.cluster import _client as _client_module
from perc_platform.cluster._client import scheduler_address
from perc_platform.datasets.selection import stack_source
from perc_platform.errors import InputError, ParameterError
from perc_platform.io.stack_array import StackArray

__all__ = ["FETCH_PREFIX", "ChunkSegment", "ClusterChunkReader", "prefetch_chunks"]

#: Key prefix of prefetch tasks (the name the dashboard shows).
FETCH_PREFIX = "perc-fetch-"


class ChunkSegment(NamedTuple):
    """Particles to read from one block (same fields as ``perc_platform.ml.Segment``)."""

    block: int
    particles: np.ndarray


def _read_stack(array: StackArray) -> np.ndarray:
    return array.read_particles(np.arange(array.shape[0], dtype=np.int64))


def _take_rows(block: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return np.asarray(block) if rows is None else np.asarray(block)[rows]


class ClusterChunkReader:
    """Chunk reader that reads segments on a Dask cluster and keeps ``ahead`` of them in flight.

    Parameters
    ----------
    images
        Particle DataArray ``(particle, y, x)`` or dask array, lazy (``open_particles``), persisted or
        attached from a published dataset.
    ahead
        Segments kept in flight on the cluster; the client never holds more than the one being read per
        reading thread.
    client
        Default: ``perc_platform.cluster.get_client()``. A copy sent to another process (DataLoader
        workers) connects to the same scheduler.
    """

    def __init__(self, images: xr.DataArray | da.Array, *, ahead: int = 8, client: Client | None = None) -> None:
        data = images.data if isinstance(images, xr.DataArray) else images
        if not isinstance(data, da.Array) or data.ndim != 3:
            raise InputError(f"ClusterChunkReader needs a dask-backed 3-D particle array, got "
                             f"{type(data).__name__}; open the stack with open_particles (or .chunk() it)")
        if ahead < 1:
            raise ParameterError(f"ahead={ahead}: keep at least one segment in flight")
        self.source = stack_source(images) if isinstance(images, xr.DataArray) else None
        if any(len(c) != 1 for c in data.chunks[1:]):
            data = data.rechunk({1: -1, 2: -1})
        self.data = data
        ends = np.cumsum(np.asarray(data.chunks[0], dtype=np.int64))
        self.blocks: tuple[tuple[int, int], ...] = tuple(zip((ends - np.asarray(data.chunks[0])).tolist(),
                                                             ends.tolist(), strict=True))
        self.ahead = int(ahead)
        self._client = client
        self._address = scheduler_address(self._get_client())
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._inflight: OrderedDict[str, tuple[Future, int]] = OrderedDict()  # key -> (future, reads then)
        self._queue: OrderedDict[str, Any] = OrderedDict()  # hinted segments not yet submitted, in order
        self._reads = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "data": self.data, "blocks": self.blocks, "ahead": self.ahead,
                "_address": self._address}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = None
        self._init_state()

    def __repr__(self) -> str:
        return (f"ClusterChunkReader(blocks={len(self.blocks)}, ahead={self.ahead}, scheduler={self._address!r}, "
                f"in_flight={len(self._inflight)})")

    # -- cluster ------------------------------------------------------------------------------------------
    def _get_client(self) -> Client:
        client = self._client
        if client is not None and client.status == "running":
            return client
        address = getattr(self, "_address", None)
        platform = _client_module._client
        if address is None:
            client = _client_module.get_client()
        elif platform is not None and platform.status == "running" and scheduler_address(platform) == address:
            client = platform
        else:  # a copy in another process (a DataLoader worker): connect to the same scheduler
            client = Client(address, set_as_default=False)
        self._client = client
        return client

    def _key(self, segment: Any) -> str:
        particles = np.ascontiguousarray(segment.particles, dtype=np.int64)
        return FETCH_PREFIX + tokenize(self.data.name, int(segment.block), particles.tobytes())

    def _submit(self, key: str, segment: Any) -> Future:
        client = self._get_client()
        particles = np.asarray(segment.particles, dtype=np.int64)
        if self.source is not None:
            return client.submit(_read_stack, self.source.subset(particles), key=key, retries=1)
        start, stop = self.blocks[int(segment.block)]
        rows = particles - start
        whole = rows.size == stop - start and bool(np.all(rows == np.arange(rows.size)))
        block = self.data.blocks[int(segment.block)]
        task = block.map_blocks(_take_rows, rows=None if whole else rows, name=key, dtype=block.dtype,
                                chunks=((rows.size,), *block.chunks[1:]), meta=block._meta)
        (future,) = futures_of(client.persist(task, retries=1))
        return future

    def _top_up(self) -> None:
        """Submit hinted segments until ``ahead`` are in flight (call with the lock held).

        A prefetched segment that is still unread ``4 * ahead`` reads later was abandoned (an epoch cut
        short): it is released so that it does not hold a slot and worker memory for good.
        """
        while self._inflight:
            key, (future, since) = next(iter(self._inflight.items()))
            if self._reads - since <= 4 * self.ahead:
                break
            del self._inflight[key]
            future.release()
        while self._queue and len(self._inflight) < self.ahead:
            key, segment = self._queue.popitem(last=False)
            self._inflight[key] = (self._submit(key, segment), self._reads)

    # -- the chunk-reader interface -----------------------------------------------------------------------
    def prefetch(self, segments: Sequence[Any]) -> None:
        """Hint: these segments are read next, in this order, after those hinted before and not yet read."""
        with self._lock:
            for segment in segments:
                key = self._key(segment)
                if key not in self._inflight:
                    self._queue[key] = segment
            self._top_up()

    def read(self, segment: Any) -> np.ndarray:
        """Images of ``segment.particles`` in that order, ``(n, y, x)``."""
        key = self._key(segment)
        with self._lock:
            self._reads += 1
            self._queue.pop(key, None)
            entry = self._inflight.pop(key, None)
            future = entry[0] if entry is not None else self._submit(key, segment)
            self._top_up()
        try:
            return np.asarray(future.result())
        finally:
            future.release()

    def read_indices(self, particles: np.ndarray) -> np.ndarray:
        """Images of arbitrary particle positions, in the given order (segments read in parallel)."""
        particles = np.asarray(particles, dtype=np.int64)
        starts = np.array([a for a, _ in self.blocks], dtype=np.int64)
        order = np.argsort(particles, kind="stable")
        ordered = particles[order]
        block_of = np.searchsorted(starts, ordered, side="right") - 1
        bounds = np.flatnonzero(np.diff(block_of)) + 1
        segments = [ChunkSegment(int(b[0]), p) for b, p in zip(np.split(block_of, bounds),
                                                                 np.split(ordered, bounds), strict=True) if p.size]
        if not segments:
            return np.empty((0, *self.data.shape[1:]), dtype=self.data.dtype)
        self.prefetch(segments)
        parts = [self.read(s) for s in segments]
        out = np.empty((particles.size, *parts[0].shape[1:]), dtype=parts[0].dtype)
        out[order] = np.concatenate(parts)
        return out

    def clear(self) -> None:
        """Forget the hint and release every prefetched chunk on the cluster."""
        with self._lock:
            for future, _ in self._inflight.values():
                future.release()
            self._inflight.clear()
            self._queue.clear()

    @property
    def in_flight(self) -> int:
        """Segments prefetched and not yet read."""
        return len(self._inflight)


def prefetch_chunks(images: xr.DataArray | da.Array, order: Sequence[int] | None = None, *, ahead: int = 4,
                    client: Client | None = None) -> Iterator[np.ndarray]:
    """Whole blocks of ``images`` as NumPy arrays in ``order`` (default: block order), ``ahead`` in flight.

    The blocks are read on the cluster while the caller consumes earlier ones; at most ``ahead`` wait on the
    cluster and one is held here at a time.
    """
    reader = ClusterChunkReader(images, ahead=ahead, client=client)
    blocks = range(len(reader.blocks)) if order is None else [int(b) for b in order]
    segments = [ChunkSegment(b, np.arange(*reader.blocks[b], dtype=np.int64)) for b in blocks]
    reader.prefetch(segments)
    try:
        for segment in segments:
            yield reader.read(segment)
    finally:
        reader.clear()
