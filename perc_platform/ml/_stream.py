"""Stream mode: bounded memory, whole-chunk reads, chunk-aware shuffling and read-ahead threads.

Per epoch the chunks (blocks) are put in a seeded random order and the resulting particle sequence is cut
into balanced shards (ranks x workers). A shard's chunks are grouped into *buffers* of about
``buffer_bytes`` (never less than one chunk); the particles of each buffer are shuffled together (cryoDRGN's
shuffler idea) and batches are taken from the shuffled buffers in order.

Reading scatters: each chunk is read whole and in order, but every image lands straight in its shuffled slot
of the (pinned, on CUDA) batch array it belongs to, so an image is copied once on its way from the file to
the batch -- as in memory mode, where it is copied once from the materialised array. While the current
buffer's batches are handed out, the next ``prefetch`` buffers are read by a small thread pool through the
dataset's chunk reader; held memory stays near ``(1 + prefetch) * buffer_bytes`` plus the batches the caller
keeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from perc_platform.errors import ParameterError
from perc_platform.ml._batches import BatchIterable
from perc_platform.ml._dataset import ParticleDataset
from perc_platform.ml._device import default_threads
from perc_platform.ml._reader import Segment, read_into
from perc_platform.ml._sharding import TASK_BYTES, Rank, cut_segments, epoch_rng, piece, read_tasks, segments_of

__all__ = ["DEFAULT_BUFFER_BYTES", "TASK_BYTES", "StreamBatches"]

DEFAULT_BUFFER_BYTES = 64 * 2**20


@dataclasses.dataclass
class _Buffer:
    segments: list[Segment]
    start: int  # first shard position the buffer covers
    position: np.ndarray  # shard position of each buffer row (rows count through the segments in turn)

    @property
    def stop(self) -> int:
        return self.start + self.position.size


class StreamBatches(BatchIterable):
    """Batches read chunk by chunk with bounded memory (see the module docstring)."""

    def __init__(self, dataset: ParticleDataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, rank: Rank | None = None, pin: bool = False,
                 buffer_bytes: int | None = None, prefetch: int = 1, threads: int | None = None) -> None:
        super().__init__(dataset, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last, rank=rank, pin=pin)
        threads = default_threads() if threads is None else threads
        if prefetch < 0 or threads < 1:
            raise ParameterError(f"prefetch={prefetch} threads={threads}: need prefetch >= 0 and threads >= 1")
        self.buffer_bytes = int(buffer_bytes or DEFAULT_BUFFER_BYTES)
        self.prefetch = int(prefetch)
        self.threads = int(threads)

    def plan(self, shard: int, num_shards: int) -> list[_Buffer]:
        """The buffers of one shard for the current epoch (deterministic in seed and epoch)."""
        dataset = self.dataset
        segments = segments_of(dataset.reader.blocks, dataset.indices)
        if self.shuffle:
            segments = [segments[i] for i in epoch_rng(self.seed, self.epoch).permutation(len(segments))]
        a, b = piece(len(dataset), shard, num_shards)
        groups: list[list[Segment]] = []
        size = 0
        for seg in cut_segments(segments, a, b):
            if not groups or size + len(seg) * self.dataset.image_nbytes > self.buffer_bytes:
                groups.append([])
                size = 0
            groups[-1].append(seg)
            size += len(seg) * self.dataset.image_nbytes
        buffers, start = [], 0
        for i, group in enumerate(groups):
            n = sum(len(s) for s in group)
            order = (epoch_rng(self.seed, self.epoch, shard, i).permutation(n) if self.shuffle
                     else np.arange(n, dtype=np.int64))
            position = np.empty(n, dtype=np.int64)
            position[order] = start + np.arange(n, dtype=np.int64)  # row order[q] goes to position start + q
            buffers.append(_Buffer(group, start, position))
            start += n
        return buffers

    def _batches(self, shard: int, num_shards: int, start: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        size = self.shard_size(shard, num_shards)
        n_batches = self.shard_batches(shard, num_shards)
        if start >= n_batches:
            return
        bs = self.batch_size
        lo, hi = start * bs, min(n_batches * bs, size)
        buffers = self.plan(shard, num_shards)
        particle_at = np.empty(size, dtype=np.int64)
        for buf in buffers:
            rows = np.concatenate([s.particles for s in buf.segments])
            particle_at[buf.position] = rows
        stops = np.array([buf.stop for buf in buffers], dtype=np.int64)
        reader = self.dataset.reader
        hint = getattr(reader, "prefetch", None)
        per_task = max(1, TASK_BYTES // self.dataset.image_nbytes)
        arrays: dict[int, np.ndarray] = {}
        pending: dict[int, list[Future[None]]] = {}
        submitted = int(np.searchsorted(stops, lo, side="right"))  # next buffer to read

        def run(buf: _Buffer, task: list[tuple[Segment, int]]) -> None:
            for seg, row in task:
                positions = buf.position[row:row + len(seg)]
                keep = (positions >= lo) & (positions < hi)
                if not keep.any():
                    continue
                targets = [arrays[p // bs][p % bs] for p in positions[keep].tolist()]
                read_into(reader, Segment(seg.block, seg.particles[keep]), targets)

        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="perc-stream")
        try:
            for k in range(start, n_batches):
                p0, p1 = self.batch_bounds(size, k)
                b1 = int(np.searchsorted(stops, p1 - 1, side="right"))
                while submitted < len(buffers) and submitted <= b1 + self.prefetch:
                    buf = buffers[submitted]
                    for j in range(max(buf.start, lo) // bs, (min(buf.stop, hi) - 1) // bs + 1):
                        if j not in arrays and j < n_batches:
                            arrays[j] = self._new_images(self.batch_bounds(size, j)[1] - j * bs)
                    pending[submitted] = [pool.submit(run, buf, t) for t in read_tasks(buf.segments, per_task)]
                    if hint is not None and submitted + 1 < len(buffers):
                        hint(buffers[submitted + 1].segments)
                    submitted += 1
                for i in sorted(i for i in pending if i <= b1):
                    for future in pending.pop(i):
                        future.result()
                yield k, {"image": arrays.pop(k), **self.dataset.fields(particle_at[p0:p1])}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            arrays.clear()
