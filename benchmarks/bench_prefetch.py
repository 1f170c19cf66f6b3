"""ParticleLoader throughput on a remote stack (20 ms per request): cluster prefetch vs the loader's own reads.

Usage: python benchmarks/bench_prefetch.py [--images 4096] [--box 64] [--chunk 16] [--latency 0.02]
                                           [--workers 2] [--threads 4] [--ahead 16] [--buffer-chunks 8]

A stack is generated and served by the loopback HTTP server in a separate process, with ``--latency``
seconds added to every request; every chunk is one ranged request. Both runs stream one epoch with the same
loader settings (batch 256, ``--buffer-chunks`` chunks per shuffle buffer, its 4 read-ahead threads):
*without* reads chunks in this process through the default reader; *with* passes ``ClusterChunkReader``
so upcoming chunks are read as futures on an embedded cluster (``--workers`` processes x ``--threads``),
``--ahead`` in flight. One untimed chunk warms each path up (HTTP sessions, the cluster's first task).
For reference, the table also times ``prefetch_chunks`` alone (every chunk in order, ``--ahead`` in
flight, no loader). Last line: JSON with with_prefetch_img_s, without_img_s, ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def epoch(images: Any, reader: Any, buffer_bytes: int) -> tuple[float, int]:
    from perc_platform.ml import ParticleLoader

    loader = ParticleLoader(images, batch_size=256, mode="stream", device="cpu", seed=0, reader=reader,
                            buffer_bytes=buffer_bytes)
    started = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += int(batch["image"].shape[0])
    return time.perf_counter() - started, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=16, help="particles per chunk (one request each)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added to every request")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per cluster worker")
    parser.add_argument("--ahead", type=int, default=16, help="chunks kept in flight on the cluster")
    parser.add_argument("--buffer-chunks", type=int, default=8, help="chunks per shuffle buffer")
    args = parser.parse_args()

    import numpy as np

    import perc_platform as pp
    from perc_platform.cluster import ClusterChunkReader, close_client, get_client, prefetch_chunks
    from perc_platform.datasets import stack_source
    from perc_platform.testing import write_stack

    with tempfile.TemporaryDirectory(prefix="perc-bench-prefetch-") as tmp:
        write_stack(Path(tmp) / "stack.mrcs", args.images, (args.box, args.box), seed=0)
        server = subprocess.Popen([sys.executable, "-m", "perc_platform.testing.serve", tmp,
                                   "--latency", str(args.latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip() + "/stack.mrcs"
            pp.storage.grant_host(url)  # our own server: allowed by the network policy (workers are told too)
            images = pp.open_particles(url, chunk_size=args.chunk)
            chunk_bytes = args.chunk * args.box * args.box * 4
            source = stack_source(images)
            assert source is not None
            source.read_particles(np.arange(args.chunk))  # warm-up: this process's HTTP session

            client = get_client(n_workers=args.workers, threads_per_worker=args.threads, memory_limit="2GiB")
            reader = ClusterChunkReader(images, ahead=args.ahead, client=client)
            client.submit(lambda: source.read_particles(np.arange(args.chunk)), pure=False).result()  # warm-up

            buffer_bytes = args.buffer_chunks * chunk_bytes
            without_s, n_without = epoch(images, None, buffer_bytes)
            with_s, n_with = epoch(images, reader, buffer_bytes)
            started = time.perf_counter()
            n_chunks = sum(1 for _ in prefetch_chunks(images, ahead=args.ahead, client=client))
            chunks_s = time.perf_counter() - started
        finally:
            close_client()
            if server.stdin is not None:
                server.stdin.close()
            server.wait(10)
    assert n_with == n_without == args.images and n_chunks == len(images.data.chunks[0])
    without_img_s, with_img_s = n_without / without_s, n_with / with_s
    print(f"remote stack: {args.images} images of {args.box}x{args.box} float32, {args.chunk} per chunk "
          f"({chunk_bytes / 2**20:.2f} MiB, one request each), {args.latency * 1000:.0f} ms added per request")
    print(f"{'reader':<44} {'seconds':>8} {'images/s':>10}")
    print(f"{'without prefetch (loader threads, in process)':<44} {without_s:>8.2f} {without_img_s:>10.0f}")
    label = f"cluster prefetch ({args.workers}x{args.threads} threads, {args.ahead} ahead)"
    print(f"{label:<44} {with_s:>8.2f} {with_img_s:>10.0f}")
    print(f"{'(prefetch_chunks alone, in order, no loader)':<44} {chunks_s:>8.2f} {args.images / chunks_s:>10.0f}")
    print(f"ratio (with / without): {with_img_s / without_img_s:.2f}x")
    print(json.dumps({"with_prefetch_img_s": round(with_img_s, 1), "without_img_s": round(without_img_s, 1),
                      "ratio": round(with_img_s / without_img_s, 3)}))


if __name__ == "__main__":
    main()
