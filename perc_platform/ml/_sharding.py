"""Who reads what: distributed ranks x DataLoader workers, and the deterministic epoch plans.

Every epoch has one global order (seeded by ``seed`` and ``epoch``); it is cut into ``world_size *
num_workers`` contiguous, balanced pieces (sizes differ by at most one particle), one per shard, so each
particle is seen once per epoch across all ranks and workers. The rank is captured in the main process when
the loader is built (DataLoader workers cannot ask ``torch.distributed``); the worker id is read inside the
worker at iteration time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from perc_platform.errors import ParameterError
from perc_platform.ml._reader import Segment

__all__ = ["Rank", "capture_rank", "cut_segments", "epoch_rng", "piece", "read_tasks", "segments_of", "worker_slot"]


@dataclasses.dataclass(frozen=True)
class Rank:
    """This process's place among distributed ranks."""

    rank: int = 0
    world_size: int = 1


def capture_rank(rank: int | None = None, world_size: int | None = None) -> Rank:
    """Rank and world size: given ones, else from an initialised ``torch.distributed``, else 0 of 1."""
    if rank is None or world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank() if rank is None else rank
            world_size = dist.get_world_size() if world_size is None else world_size
    rank, world_size = int(rank or 0), int(world_size or 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ParameterError(f"rank={rank} world_size={world_size}: need 0 <= rank < world_size")
    return Rank(rank, world_size)


def worker_slot() -> tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker, or (0, 1) outside workers."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return (0, 1) if info is None else (int(info.id), int(info.num_workers))


def piece(n: int, shard: int, num_shards: int) -> tuple[int, int]:
    """The balanced contiguous range ``[a, b)`` of ``n`` items that belongs to ``shard``."""
    return shard * n // num_shards, (shard + 1) * n // num_shards


def epoch_rng(seed: int, epoch: int, *more: int) -> np.random.Generator:
    """A generator that depends only on the seed, the epoch and ``more`` (no global state)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), *(int(m) for m in more)])


def segments_of(blocks: tuple[tuple[int, int], ...], selection: np.ndarray) -> list[Segment]:
    """The selected (sorted) particle positions grouped into one segment per block they fall in."""
    selection = np.sort(np.asarray(selection, dtype=np.int64))
    starts = np.array([a for a, _ in blocks], dtype=np.int64)
    block_of = np.searchsorted(starts, selection, side="right") - 1
    if selection.size == 0:
        return []
    cuts = (np.flatnonzero(np.diff(block_of)) + 1).tolist()
    bounds = zip([0, *cuts], [*cuts, selection.size], strict=True)
    blocks_of = block_of.tolist()
    return [Segment(blocks_of[a], selection[a:b]) for a, b in bounds]


def cut_segments(segments: list[Segment], a: int, b: int) -> list[Segment]:
    """Positions ``[a, b)`` of the concatenation of ``segments``, as (partial) segments."""
    out: list[Segment] = []
    offset = 0
    for seg in segments:
        lo, hi = offset, offset + len(seg)
        offset = hi
        if hi <= a or lo >= b:
            continue
        out.append(Segment(seg.block, seg.particles[max(a, lo) - lo: min(b, hi) - lo]))
    return out


#: Reads are split into (or merged up to) pieces of about this size, one per thread-pool task.
TASK_BYTES = 16 * 2**20


def read_tasks(segments: list[Segment], per_task: int) -> list[list[tuple[Segment, int]]]:
    """Segments split into (or merged up to) reads of about ``per_task`` particles, for a thread pool.

    Each task is a list of ``(segment piece, row)`` where ``row`` counts through ``segments`` in turn.
    """
    tasks: list[list[tuple[Segment, int]]] = []
    size, row = per_task, 0
    for seg in segments:
        for a in range(0, len(seg), per_task):
            part = Segment(seg.block, seg.particles[a:a + per_task])
            if size + len(part) > per_task:
                tasks.append([])
                size = 0
            tasks[-1].append((part, row + a))
            size += len(part)
        row += len(seg)
    return tasks
