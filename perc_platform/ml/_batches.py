"""The shared frame of the two batch iterables: sharding, epochs, resume offsets, batch assembly."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from perc_platform.errors import ParameterError
from perc_platform.ml._dataset import ParticleDataset
from perc_platform.ml._device import empty_batch_array, to_tensors
from perc_platform.ml._sharding import Rank, piece, worker_slot

__all__ = ["ArrayPool", "BatchIterable"]


class ArrayPool:
    """Host batch arrays handed out again once nothing refers to them any more.

    A batch's image array lives as long as the tensor wrapping it (``torch.from_numpy`` keeps a reference), so
    an array whose only references are the pool's own is free to refill. Reusing arrays spares the page faults
    of fresh allocations, which dominate the cost of moving images on many machines. Pinned arrays are not
    pooled: torch's caching host allocator already reuses them, and only it knows when their copies are done.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._arrays: list[np.ndarray] = []

    def get(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        arrays = self._arrays
        for i in range(len(arrays)):
            array = arrays[i]
            # References: the list, `array` and getrefcount's argument; any more means someone holds it.
            if array.shape == shape and array.dtype == dtype and sys.getrefcount(array) <= 3:
                return array
        array = np.empty(shape, dtype=dtype)
        if len(arrays) < self.limit:
            arrays.append(array)
        return array


class BatchIterable(IterableDataset):  # type: ignore[type-arg]
    """Yields ``(shard, k, batch)``: batch ``k`` of this process's shard as a dict of CPU tensors.

    Subclasses give :meth:`_batches`, the NumPy batches of one shard from batch ``start`` on. Use it inside a
    ``torch.utils.data.DataLoader(..., batch_size=None)`` for worker processes, or iterate it directly.
    """

    def __init__(self, dataset: ParticleDataset, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, rank: Rank | None = None, pin: bool = False) -> None:
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size} must be at least 1")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank or Rank()
        self.pin = pin
        self.epoch = 0
        self.skip: dict[int, int] = {}
        self._pool: ArrayPool | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}  # DataLoader workers start their own pool

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shard_size(self, shard: int, num_shards: int) -> int:
        a, b = piece(len(self.dataset), shard, num_shards)
        return b - a

    def shard_batches(self, shard: int, num_shards: int) -> int:
        size = self.shard_size(shard, num_shards)
        return size // self.batch_size if self.drop_last else -(-size // self.batch_size)

    def batch_bounds(self, size: int, k: int) -> tuple[int, int]:
        return k * self.batch_size, min((k + 1) * self.batch_size, size)

    def _new_images(self, n: int) -> np.ndarray:
        # Page-locked only in the main process: a worker's pinned pages do not survive the trip to it.
        shape = (n, *self.dataset.image_shape)
        if self.pin and get_worker_info() is None:
            return empty_batch_array(shape, self.dataset.dtype, pinned=True)
        if self._pool is None:
            self._pool = ArrayPool()
        return self._pool.get(shape, self.dataset.dtype)

    def _batches(self, shard: int, num_shards: int, start: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[tuple[int, int, dict[str, torch.Tensor] | None]]:
        worker, workers = worker_slot()
        shard = self.rank.rank * workers + worker
        num_shards = self.rank.world_size * workers
        start = self.skip.get(shard, 0)
        if workers > 1:
            # On resume, stand-ins for the batches already handed out keep the DataLoader's round robin over
            # workers exactly as it was, so the rest of the epoch comes in the original order. They cost no read;
            # ParticleLoader drops them.
            for k in range(start):
                yield shard, k, None
        for k, batch in self._batches(shard, num_shards, start):
            yield shard, k, to_tensors(batch)
