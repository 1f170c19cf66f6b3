"""Memory mode: the selected particles materialised once, then true random access per epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from perc_platform.ml._batches import BatchIterable
from perc_platform.ml._sharding import epoch_rng, piece

__all__ = ["MemoryBatches"]


class MemoryBatches(BatchIterable):
    """Batches drawn from the materialised images: one seeded permutation per epoch, cut into shards."""

    def _batches(self, shard: int, num_shards: int, start: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        dataset = self.dataset.materialize()
        data = dataset.data
        n = len(dataset)
        order = epoch_rng(self.seed, self.epoch).permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        a, b = piece(n, shard, num_shards)
        mine = order[a:b]
        for k in range(start, self.shard_batches(shard, num_shards)):
            p0, p1 = self.batch_bounds(mine.size, k)
            rows = mine[p0:p1]
            images = self._new_images(rows.size)
            np.take(data, rows, axis=0, out=images, mode="clip")
            yield k, {"image": images, **dataset.fields(dataset.indices[rows])}
