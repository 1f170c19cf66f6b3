"""Chunk-by-chunk read of a ~1 GB MRC stack (128 x 128 float32) vs numpy.fromfile of the same bytes.

Usage: python benchmarks/bench_read.py [--gb 1.0] [--repeats 3] [--dir DIR]

The stack is generated in a subprocess (so its pages do not count against this process's RSS); both
readers then go over the same chunks, best of ``--repeats`` runs each, alternating. Peak RSS is this
process's maximum resident set size after our reader's runs (before numpy's).
Last line: JSON with ours_mb_s, raw_mb_s, ratio, peak_rss_mb.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BOX = 128


def generate(path: Path, n: int) -> None:
    code = ("import sys; from perc_platform.testing import write_stack; "
            f"write_stack(sys.argv[1], {n}, ({BOX}, {BOX}), seed=0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def read_ours(path: Path) -> tuple[float, int]:
    import perc_platform as pp

    images = pp.open_particles(path)
    started = time.perf_counter()
    total = 0
    # One dask task per chunk, computed as it comes (``blocks[i].compute()`` would add a concatenate copy).
    for chunk in images.data.to_delayed().ravel():
        block = chunk.compute(scheduler="sync")
        total += block.nbytes
    return time.perf_counter() - started, total


def read_raw(path: Path, chunk_particles: int, n: int) -> tuple[float, int]:
    image_bytes = BOX * BOX * 4
    started = time.perf_counter()
    total = 0
    for start in range(0, n, chunk_particles):
        count = min(chunk_particles, n - start)
        block = np.fromfile(path, dtype="<f4", count=count * BOX * BOX, offset=1024 + start * image_bytes)
        total += block.nbytes
    return time.perf_counter() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    n = int(args.gb * 2**30 // (BOX * BOX * 4))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "bench.mrcs"
        generate(path, n)
        import perc_platform as pp

        chunk_particles = pp.open_particles(path).data.chunks[0][0]
        size_mb = n * BOX * BOX * 4 / 2**20
        ours, raw = [], []
        read_raw(path, chunk_particles, n)  # warm the page cache once for both readers
        for _ in range(args.repeats):
            elapsed, total = read_ours(path)
            assert total == n * BOX * BOX * 4
            ours.append(elapsed)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for _ in range(args.repeats):
            raw.append(read_raw(path, chunk_particles, n)[0])
    ours_mb_s, raw_mb_s = size_mb / min(ours), size_mb / min(raw)
    print(f"stack: {n} particles of {BOX}x{BOX} float32 = {size_mb:.0f} MB, {chunk_particles} particles per chunk")
    print(f"{'reader':28s} {'best s':>8s} {'MB/s':>10s}")
    print(f"{'perc open_particles chunks':28s} {min(ours):8.3f} {ours_mb_s:10.0f}")
    print(f"{'numpy.fromfile chunks':28s} {min(raw):8.3f} {raw_mb_s:10.0f}")
    print(f"ratio ours/raw = {ours_mb_s / raw_mb_s:.2f} (target >= 0.7); peak RSS = {peak:.0f} MB (target < 400)")
    print(json.dumps({"ours_mb_s": round(ours_mb_s, 1), "raw_mb_s": round(raw_mb_s, 1),
                      "ratio": round(ours_mb_s / raw_mb_s, 3), "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main()
