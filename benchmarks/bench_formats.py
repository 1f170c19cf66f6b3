"""TIFF and EER movies through the format layer: bytes moved for random frames over HTTP, and frames per second.

Usage: python benchmarks/bench_formats.py [--frames 1000] [--size 512] [--compression lzw] [--repeats 3]
                                          [--eer-frames 400] [--eer-size 512] [--eer-dose 0.02] [--eer-group 20]
                                          [--eer-super-resolution 1]

A movie stack (``--frames`` pages of ``--size`` x ``--size`` uint8 counting-mode-like Poisson counts, written
by tifffile with ``--compression``, 32 rows per strip) is served by the loopback server (real HTTP on
127.0.0.1, Range supported) and opened with ``open_particles`` (only the IFDs are read).

1. 1% of the frames at random, read with ``select_particles``: bytes the server sent for the data over the
   bytes of those frames' strips as tifffile lists them (``tiff_bytes_ratio``; opening is counted apart).
2. Every frame, locally and remotely (dask threads over the chunks): frames/s (``tiff_frames_s_local``,
   ``tiff_frames_s_remote``), against ``tifffile.imread`` of the local file whole (``tiff_ratio_vs_tifffile`` is
   our local frames/s over tifffile's). Best of ``--repeats`` each.

3. EER: a movie of ``--eer-frames`` raw frames on a ``--eer-size`` square sensor with ``--eer-dose`` electrons
   per pixel per raw frame (random positions and sub-pixels, written by ``perc_platform.testing.eer``), opened
   with ``--eer-group`` raw frames per fraction at ``--eer-super-resolution``. 10% of the fractions at random
   over HTTP: bytes sent over the bytes of their raw frames' strips (``eer_bytes_ratio``); every fraction,
   locally and remotely: raw frames rendered per second (``eer_frames_s_local``, ``eer_frames_s_remote``),
   against tifffile decoding every page of the local file (``eer_ratio_vs_tifffile``).

Last line: JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def generate(path: Path, frames: int, size: int, compression: str | None) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    counts = (rng.poisson(1.5, (size, size)).astype(np.uint8) for _ in range(frames))  # bounded memory
    tifffile.imwrite(path, counts, shape=(frames, size, size), dtype=np.uint8, photometric="minisblack",
                     compression=compression, rowsperstrip=32)


def full_pass(images) -> float:  # type: ignore[no-untyped-def]
    import dask

    started = time.perf_counter()
    sizes = images.data.map_blocks(lambda b: np.array([[[b.shape[0]]]]), chunks=(1, 1, 1), dtype=np.int64)
    (total,) = dask.compute(sizes.sum(), scheduler="threads")
    assert int(total) == images.shape[0]
    return time.perf_counter() - started


def eer_figures(args: argparse.Namespace, tmp: str) -> dict[str, float]:
    import tifffile

    from perc_platform.io import StackArray, open_image_file
    from perc_platform.storage import grant_host
    from perc_platform.testing import LoopbackServer
    from perc_platform.testing.eer import random_events, write_eer

    shape = (args.eer_size, args.eer_size)
    path = Path(tmp) / "movie.eer"
    started = time.perf_counter()
    per_frame = round(args.eer_dose * args.eer_size**2)
    write_eer(path, random_events(args.eer_frames, shape, per_frame, seed=2), shape)
    with tifffile.TiffFile(path) as tif:
        strip_bytes = np.array([int(np.sum(p.databytecounts)) for p in tif.pages])
    factor, group = args.eer_super_resolution, args.eer_group
    print(f"EER: {args.eer_frames} raw frames of {shape[1]}x{shape[0]}, {per_frame} events each, "
          f"{os.path.getsize(path) / 2**20:.1f} MB, written in {time.perf_counter() - started:.1f} s; rendered at "
          f"{factor}x in fractions of {group}; load average {os.getloadavg()[0]:.1f}")
    options = {"super_resolution": factor, "frames_per_fraction": group}
    local = StackArray([open_image_file(str(path), **options)])
    fractions = local.shape[0]
    used = fractions * group  # raw frames read (a remainder is dropped)
    with LoopbackServer(tmp) as server:
        url = f"{server.url}/movie.eer"
        grant_host(url)
        remote = StackArray([open_image_file(url, **options)])
        picks = np.sort(np.random.default_rng(3).choice(fractions, max(1, fractions // 10), replace=False))
        server.reset_counts()
        subset = remote.read_particles(picks)
        moved = server.bytes_sent
        needed = int(sum(strip_bytes[i * group:(i + 1) * group].sum() for i in picks))
        with tifffile.TiffFile(path, superres={1: 0, 2: 1, 4: 2}[factor]) as tif:
            check = np.stack([np.sum([tif.pages[j].asarray() for j in range(i * group, (i + 1) * group)], axis=0)
                              for i in picks[:2]])
        np.testing.assert_array_equal(subset[:2], check)
        times: dict[str, list[float]] = {"EER ours, local": [], "EER ours, remote": [], "EER tifffile pages": []}
        for _ in range(args.repeats):
            for name, array in (("EER ours, local", local), ("EER ours, remote", remote)):
                started = time.perf_counter()
                for first in range(0, fractions, 4):  # four fractions per read, as a dask chunk would
                    array.read_particles(np.arange(first, min(fractions, first + 4)))
                times[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            with tifffile.TiffFile(path, superres={1: 0, 2: 1, 4: 2}[factor]) as tif:
                for j in range(used):
                    tif.pages[j].asarray()
            times["EER tifffile pages"].append(time.perf_counter() - started)
    rates = {k: used / min(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:26s} {min(v):8.3f} {rates[k]:10.0f} raw frames/s")
    ratio = moved / needed
    print(f"EER 10% random ({picks.size} fractions, {needed / 2**20:.2f} MB of strips): moved "
          f"{moved / 2**20:.2f} MB = {ratio:.4f}x")
    return {"eer_bytes_ratio": round(ratio, 4), "eer_frames_s_local": round(rates["EER ours, local"], 1),
            "eer_frames_s_remote": round(rates["EER ours, remote"], 1),
            "eer_frames_s_tifffile": round(rates["EER tifffile pages"], 1),
            "eer_ratio_vs_tifffile": round(rates["EER ours, local"] / rates["EER tifffile pages"], 3),
            "eer_raw_frames": args.eer_frames, "eer_size": args.eer_size, "eer_events_per_frame": per_frame,
            "eer_frames_per_fraction": group, "eer_super_resolution": factor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--compression", default="lzw", help="lzw, zlib, zstd or none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eer-frames", type=int, default=400)
    parser.add_argument("--eer-size", type=int, default=512)
    parser.add_argument("--eer-dose", type=float, default=0.02, help="electrons per pixel per raw frame")
    parser.add_argument("--eer-group", type=int, default=20, help="raw frames per fraction")
    parser.add_argument("--eer-super-resolution", type=int, default=1, choices=(1, 2, 4))
    args = parser.parse_args()
    import tifffile

    from perc_platform import open_particles
    from perc_platform.datasets import select_particles
    from perc_platform.storage import grant_host
    from perc_platform.testing import LoopbackServer

    compression = None if args.compression == "none" else args.compression
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movie.tif"
        started = time.perf_counter()
        generate(path, args.frames, args.size, compression)
        with tifffile.TiffFile(path) as tif:
            strip_bytes = np.array([int(np.sum(p.databytecounts)) for p in tif.pages])
        print(f"stack: {args.frames} frames of {args.size}x{args.size} uint8, {compression or 'uncompressed'}, "
              f"{os.path.getsize(path) / 2**20:.1f} MB on disk, written in {time.perf_counter() - started:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
        with LoopbackServer(tmp) as server:
            url = f"{server.url}/movie.tif"
            grant_host(url)  # our own server: allowed by the network policy
            remote = open_particles(url)
            open_bytes = server.bytes_sent
            rng = np.random.default_rng(1)
            picks = np.sort(rng.choice(args.frames, max(1, args.frames // 100), replace=False))
            server.reset_counts()
            subset = select_particles(remote, picks).values
            moved = server.bytes_sent
            needed = int(strip_bytes[picks].sum())
            np.testing.assert_array_equal(subset, np.stack([tifffile.imread(path, key=int(i)) for i in picks]))
            ratio = moved / needed
            print(f"1% random ({picks.size} frames, {needed / 2**20:.2f} MB of strips): moved {moved / 2**20:.2f} MB "
                  f"= {ratio:.4f}x (+ {open_bytes / 2**10:.0f} KB of IFDs to open)")
            local = open_particles(str(path))
            times: dict[str, list[float]] = {"ours, local": [], "ours, remote": [], "tifffile.imread whole": []}
            for _ in range(args.repeats):
                times["ours, local"].append(full_pass(local))
                times["ours, remote"].append(full_pass(remote))
                started = time.perf_counter()
                tifffile.imread(path)
                times["tifffile.imread whole"].append(time.perf_counter() - started)
        rates = {k: args.frames / min(v) for k, v in times.items()}
        print(f"{'full pass':26s} {'best s':>8s} {'frames/s':>10s}")
        for k, v in times.items():
            print(f"{k:26s} {min(v):8.3f} {rates[k]:10.0f}")
        vs = rates["ours, local"] / rates["tifffile.imread whole"]
        print(f"bytes ratio {ratio:.4f} (target <= 1.05); ours/tifffile {vs:.2f}; "
              f"load average {os.getloadavg()[0]:.1f}")
        eer = eer_figures(args, tmp)
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(json.dumps({"tiff_bytes_ratio": round(ratio, 4), "tiff_frames_s_local": round(rates["ours, local"], 1),
                          "tiff_frames_s_remote": round(rates["ours, remote"], 1),
                          "tiff_frames_s_tifffile": round(rates["tifffile.imread whole"], 1),
                          "tiff_ratio_vs_tifffile": round(vs, 3), "open_bytes": open_bytes,
                          "frames": args.frames, "size": args.size, "compression": compression or "none", **eer}))


if __name__ == "__main__":
    main()
