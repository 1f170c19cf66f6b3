"""Noise2Noise pairs and 1024 px / stride 512 patches from a TIFF movie stack larger than the process's memory limit.

Usage: python benchmarks/bench_movies.py [--movies 8] [--frames 64] [--size 2048] [--limit-gb 1.5]

The parent writes ``--movies`` TIFF movies (``--frames`` frames of ``--size``^2 uint8 counts each, uncompressed) to
a temp folder, then starts a child process that caps its own address space with ``resource.setrlimit``
(``RLIMIT_AS`` = ``--limit-gb``, less than the stack) and runs ``open_movies`` -> ``noise2noise_pairs`` ->
``extract_patches(pairs, 1024, 512)`` and streams every kept patch pair through a reduction (dask threads).
One patch is checked against NumPy on ``tifffile`` reads of its movie. The old ``extract_patches`` indexed a
sliding-window view and would have asked for ``2 x movies x 3 x (size - 1023) x 1024^2 x 4`` bytes.

Last line: JSON with stack_gb, limit_gb, peak_rss_mb, patches, seconds and the check.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(folder: Path, movies: int, frames: int, size: int) -> list[Path]:
    import tifffile

    paths = []
    for m in range(movies):
        rng = np.random.default_rng(m)
        path = folder / f"movie_{m:03d}.tif"
        counts = (rng.integers(0, 4, (size, size), dtype=np.uint8) for _ in range(frames))
        tifffile.imwrite(path, counts, shape=(frames, size, size), dtype=np.uint8, photometric="minisblack")
        paths.append(path)
    return paths


def child(folder: str, limit: int) -> None:
    import dask
    import tifffile

    from perc_platform import open_movies
    from perc_platform.processing import extract_patches, noise2noise_pairs

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    started = time.perf_counter()
    movies = open_movies(os.path.join(folder, "movie_*.tif"), mdoc=False)
    pairs = noise2noise_pairs(movies)
    patches = extract_patches(pairs, 1024, 512)
    n = patches.sizes["patch"]
    total = dask.array.stack([patches["input"].data.sum(axis=(1, 2)), patches["target"].data.sum(axis=(1, 2))])
    (sums,) = dask.compute(total, scheduler="threads", num_workers=2)
    seconds = time.perf_counter() - started
    k = n // 2  # one patch pair against NumPy on tifffile reads of its movie
    s, y, x = (int(patches[c].values[k]) for c in ("source", "y0", "x0"))
    path = os.path.join(folder, str(movies["file"].values[s]))
    frames = movies.sizes["frame"] // 2 * 2
    odd = np.mean([tifffile.imread(path, key=i)[y:y + 1024, x:x + 1024] for i in range(0, frames, 2)], axis=0)
    ok = bool(np.allclose(patches["input"].values[k], odd, rtol=1e-5))
    ok &= bool(np.isclose(sums[0][k], patches["input"].values[k].sum(dtype=np.float64), rtol=1e-4))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"patches": int(n), "seconds": round(seconds, 1), "peak_rss_mb": round(peak, 1),
                      "patch_equals_numpy": ok}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--limit-gb", type=float, default=1.5)
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = generate(Path(tmp), args.movies, args.frames, args.size)
        stack = sum(p.stat().st_size for p in paths)
        limit = int(args.limit_gb * 2**30)
        print(f"stack: {args.movies} TIFF movies of {args.frames} x {args.size}^2 uint8 = {stack / 2**30:.2f} GB, "
              f"written in {time.perf_counter() - started:.0f} s; child address-space limit {args.limit_gb} GB; "
              f"load average {os.getloadavg()[0]:.1f}")
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        run = subprocess.run([sys.executable, __file__, "--child", tmp, str(limit)], capture_output=True, text=True,
                             env=env)
        if run.returncode != 0:
            print(run.stdout, run.stderr[-3000:])
            raise SystemExit(f"the child failed (exit {run.returncode})")
        result = json.loads(run.stdout.strip().splitlines()[-1])
    old = 2 * args.movies * 3 * (args.size - 1023) * 1024**2 * 4
    print(f"{result['patches']} patch pairs of 1024^2 streamed in {result['seconds']} s; peak RSS "
          f"{result['peak_rss_mb']:.0f} MB under a {args.limit_gb} GB limit for a {stack / 2**30:.2f} GB stack; "
          f"patch equals NumPy: {result['patch_equals_numpy']}; the old sliding-window cut would ask for "
          f"{old / 2**30:.0f} GiB; load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({"stack_gb": round(stack / 2**30, 3), "limit_gb": args.limit_gb, **result,
                      "old_cut_gib": round(old / 2**30, 1), "stack_over_limit": stack > limit}))


if __name__ == "__main__":
    main()
