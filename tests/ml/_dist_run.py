"""One rank of the distributed test: ``python _dist_run.py RANK WORLD PORT SEED OUT``.

Joins a gloo process group on 127.0.0.1, iterates two epochs of stream and memory loaders with two DataLoader
workers, gathers every rank's batches with ``all_gather_object`` and (rank 0) writes them as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

import perc_platform
from perc_platform.ml import ParticleLoader

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "particles"


def main() -> None:
    rank, world, port, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    images = perc_platform.open_particles(star=SHARED / "sta_testing_bin8.star", chunk_size=16)
    result: dict[str, list[list[list[int]]]] = {}
    for mode in ("stream", "memory"):
        loader = ParticleLoader(images, 16, mode, device="cpu", seed=seed, num_workers=2,
                                buffer_bytes=2 * 16 * 64 * 64 * 4)
        assert loader.rank.rank == rank and loader.rank.world_size == world
        for epoch in range(2):
            mine = [b["index"].tolist() for b in loader]
            assert len(mine) == len(loader)
            gathered: list[list[list[int]] | None] = [None] * world
            dist.all_gather_object(gathered, mine)
            result[f"{mode}-{epoch}"] = gathered  # type: ignore[assignment]
    if rank == 0:
        Path(out).write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
