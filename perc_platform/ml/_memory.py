"""Memory mode: the selected particles materialised once, then true random access per epoch.

On a GPU the materialised images can also live in device memory (``on_device``): each batch is then one
``index_select`` on the device, with no host gather, no pinned staging copy and no host-to-device transfer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from perc_platform.ml._batches import BatchIterable
from perc_platform.ml._sharding import epoch_rng, piece

__all__ = ["MemoryBatches"]


class MemoryBatches(BatchIterable):
    """Batches drawn from the materialised images: one seeded permutation per epoch, cut into shards.

    With ``on_device`` set, the images are read there once (``ParticleDataset.to_device``, with no host copy
    of the whole selection) and batches are gathered there; the other fields stay NumPy arrays and travel
    as usual.
    """

    def __init__(self, *args: Any, on_device: torch.device | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_device = on_device

    def _batches(self, shard: int, num_shards: int, start: int) -> Iterator[tuple[int, dict[str, Any]]]:
        dataset = self.dataset
        resident = dataset.to_device(self.on_device) if self.on_device is not None else None
        data = dataset.materialize().data if resident is None else None
        n = len(dataset)
        order = epoch_rng(self.seed, self.epoch).permutation(n) if self.shuffle else np.arange(n, dtype=np.int64)
        a, b = piece(n, shard, num_shards)
        mine = order[a:b]
        if resident is not None:
            rows_on_device = torch.from_numpy(mine).to(resident.device)
        for k in range(start, self.shard_batches(shard, num_shards)):
            p0, p1 = self.batch_bounds(mine.size, k)
            rows = mine[p0:p1]
            if resident is not None:
                images: np.ndarray | torch.Tensor = resident.index_select(0, rows_on_device[p0:p1])
            else:
                assert data is not None
                images = self._new_images(rows.size)
                np.take(data, rows, axis=0, out=images, mode="clip")
            yield k, {"image": images, **dataset.fields(dataset.indices[rows])}
