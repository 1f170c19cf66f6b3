"""Remote particle stacks on the loopback EMPIAR: bytes moved for 1% random access, and sequential speed.

Usage: python benchmarks/bench_remote.py [--gb 1.0] [--box 128] [--repeats 5] [--dir DIR]

A ~1 GB stack (``--box`` x ``--box`` float32) is generated into a mini EMPIAR entry and served by the
loopback archive (real HTTP on 127.0.0.1, Range supported), then opened through the EMPIAR catalog code.

1. 1% of the particles at random, read with ``select_particles``: bytes the server sent for the data over
   the bytes of the particles asked for (``bytes_ratio``; the 1 KB header is counted apart). The same for
   10 random particles taken with plain ``images.isel(particle=[...])`` (``isel_bytes_ratio``). EMPIARreader's
   MRC source reads each file whole per partition: measured here by fetching every file the particles
   touch, whole, over the same server (``whole_file_bytes_ratio``).
2. A sequential pass over all chunks (dask threads) of the remote stack vs the same pass over the local
   file, alternating, page cache warm: ``remote_local_speed_ratio`` is remote speed / local speed, best of
   ``--repeats`` runs each; the median of the per-pair ratios is printed too (steadier on a busy machine).
   The generic fsspec/aiohttp read path (used when storage_options are given) is timed alongside.

3. Random access over the loopback server in its own process, opening included, median of ``--repeats``: 1%
   of the particles at random and one particle, read by ``select_particles`` in this (warm) process and in a
   fresh subprocess (``fresh_img_s``: open + read, imports not counted), against plain fsspec (header with
   ``cat_file``, then ``cat_ranges`` of the same particles) in the same run; ``open_s`` is ``open_particles``.

Last line: JSON with bytes_ratio, isel_bytes_ratio, whole_file_bytes_ratio, remote_local_speed_ratio, open_s,
fresh_img_s (and the raw figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUMBER = "10001"


def generate(path: Path, n: int, box: int) -> None:
    code = ("import sys; from perc_platform.testing import write_stack; "
            f"write_stack(sys.argv[1], {n}, ({box}, {box}), seed=0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def sequential_pass(images) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    import dask

    data = images.data
    started = time.perf_counter()
    # Each task reads one chunk and keeps only its size: the pass measures reading, not concatenation.
    sizes = data.map_blocks(lambda b: np.array([[[b.nbytes]]]), chunks=(1, 1, 1), dtype=np.int64)
    (total,) = dask.compute(sizes.sum(), scheduler="threads")
    return time.perf_counter() - started, int(total)


FRESH = """
import json, sys, time
import numpy as np
import perc_platform as pp
from perc_platform.datasets import select_particles
picks = np.array(json.loads(sys.argv[2]), dtype=np.int64)
t0 = time.perf_counter()
images = pp.open_particles(sys.argv[1])
t1 = time.perf_counter()
total = float(select_particles(images, picks).values.sum())
t2 = time.perf_counter()
print(json.dumps({"open_s": t1 - t0, "read_s": t2 - t1, "total": total}))
"""


def fsspec_read(url: str, picks: np.ndarray, image_bytes: int) -> float:
    """Plain fsspec, as the peer harness's ``fsspec_ranges``: the header, then ``cat_ranges`` of the picks."""
    import fsspec

    fs = fsspec.filesystem("http")
    header = fs.cat_file(url, start=0, end=1024)
    starts = [len(header) + int(i) * image_bytes for i in picks]
    blobs = fs.cat_ranges([url] * len(starts), starts, [s + image_bytes for s in starts])
    return float(sum(np.frombuffer(b, np.float32).sum(dtype=np.float64) for b in blobs))


def random_access(url: str, n: int, image_bytes: int, repeats: int) -> dict[str, float]:
    """1 % and one particle at random from ``url``: perc (warm, and a fresh process) against plain fsspec."""
    import perc_platform as pp
    from perc_platform.datasets import select_particles

    rng = np.random.default_rng(2)
    out: dict[str, list[float]] = {k: [] for k in ("open", "perc", "perc_1", "fsspec", "fsspec_1", "fresh_open",
                                                   "fresh")}
    for _ in range(repeats):
        picks = np.sort(rng.choice(n, n // 100, replace=False))
        one = rng.integers(n, size=1)
        for name, idx in (("perc", picks), ("perc_1", one)):
            started = time.perf_counter()
            images = pp.open_particles(url)
            opened = time.perf_counter()
            select_particles(images, idx).values.sum()
            out[name].append(time.perf_counter() - started)
            out["open"].append(opened - started)
        for name, idx in (("fsspec", picks), ("fsspec_1", one)):
            started = time.perf_counter()
            fsspec_read(url, idx, image_bytes)
            out[name].append(time.perf_counter() - started)
        fresh = subprocess.run([sys.executable, "-c", FRESH, url, json.dumps(picks.tolist())], check=True,
                               capture_output=True, text=True)
        figures = json.loads(fresh.stdout.strip().splitlines()[-1])
        out["fresh_open"].append(figures["open_s"])
        out["fresh"].append(figures["open_s"] + figures["read_s"])
    med = {k: float(np.median(v)) for k, v in out.items()}
    k = n // 100
    return {"open_s": med["open"], "img_s": k / med["perc"], "fsspec_img_s": k / med["fsspec"],
            "fresh_open_s": med["fresh_open"], "fresh_img_s": k / med["fresh"], "one_s": med["perc_1"],
            "fsspec_one_s": med["fsspec_1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    image_bytes = args.box * args.box * 4
    n = int(args.gb * 2**30 // image_bytes)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        os.environ["PERC_CACHE_DIR"] = str(Path(tmp) / "cache")
        folder = Path(tmp) / "empiar" / NUMBER / "data" / "particles"
        folder.mkdir(parents=True)
        stack = folder / "stack.mrcs"
        generate(stack, n, args.box)

        import fsspec

        import perc_platform as pp
        from perc_platform.datasets import select_particles
        from perc_platform.datasets.empiar import open_empiar_imageset
        from perc_platform.testing.empiar import empiar_archive

        with empiar_archive(Path(tmp) / "empiar") as server:
            images = open_empiar_imageset(NUMBER, "particles", pattern="*.mrcs")
            assert images.shape[0] == n

            # 1. one percent at random
            picks = np.random.default_rng(0).choice(n, n // 100, replace=False)
            server.reset_counts()
            opened = open_empiar_imageset(NUMBER, "particles", pattern="*.mrcs")  # listing/metadata are cached
            header_bytes = server.bytes_sent
            server.reset_counts()
            values = select_particles(opened, picks).values
            moved = server.bytes_sent
            needed = picks.size * image_bytes
            assert values.shape == (picks.size, args.box, args.box)
            # 1b. plain xarray indexing (no helper): 10 random particles with isel
            few = np.random.default_rng(1).choice(n, 10, replace=False)
            server.reset_counts()
            isel_values = opened.isel(particle=few).values
            isel_moved = server.bytes_sent
            assert isel_values.shape == (few.size, args.box, args.box)
            server.reset_counts()
            fs = fsspec.filesystem("http")
            for url in images.attrs["stack_files"]:  # EMPIARreader: each touched file, whole
                whole = fs.cat_file(url)
                assert len(whole) == stack.stat().st_size
                del whole
            whole_moved = server.bytes_sent

            # 2. sequential pass, remote vs local (page cache warm for both). "remote" is served by the loopback
            # server in its own process (as a real archive is); "in-process" by the one sharing our interpreter.
            served = subprocess.Popen([sys.executable, "-m", "perc_platform.testing.serve", str(folder)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert served.stdout is not None
            own_url = served.stdout.readline().strip()
            pp.storage.grant_host(own_url)  # a server we started ourselves: allow it (network policy)
            remote_images, local_images = pp.open_particles(f"{own_url}/{stack.name}"), pp.open_particles(stack)
            in_process = images
            # The generic fsspec/aiohttp path (taken when storage_options are given), for comparison.
            via_fsspec = pp.open_particles(images.attrs["stack_files"][0], storage_options={"client_kwargs": {}})
            random = random_access(f"{own_url}/{stack.name}", n, image_bytes, args.repeats)
            sequential_pass(local_images)
            remote_times, local_times, fsspec_times, in_process_times = [], [], [], []
            for _ in range(args.repeats):
                fsspec_times.append(sequential_pass(via_fsspec)[0])
                in_process_times.append(sequential_pass(in_process)[0])
                elapsed, total = sequential_pass(remote_images)
                assert total == n * image_bytes
                remote_times.append(elapsed)
                elapsed, total = sequential_pass(local_images)
                assert total == n * image_bytes
                local_times.append(elapsed)
            assert served.stdin is not None
            served.stdin.close()
            served.wait(timeout=30)
    size_mb = n * image_bytes / 2**20
    remote_mb_s, local_mb_s = size_mb / min(remote_times), size_mb / min(local_times)
    chunks = len(remote_images.data.chunks[0])
    print(f"stack: {n} particles of {args.box}x{args.box} float32 = {size_mb:.0f} MB in {chunks} chunks, "
          f"served on loopback; {os.cpu_count()} CPUs")
    print(f"1% random ({picks.size} particles, {needed / 2**20:.2f} MB needed): moved {moved / 2**20:.2f} MB "
          f"= {moved / needed:.4f}x (+ {header_bytes} header/listing bytes to open); "
          f"whole file per partition moved {whole_moved / 2**20:.0f} MB = {whole_moved / needed:.1f}x")
    print(f"isel of 10 random particles: moved {isel_moved / 2**10:.0f} KB = "
          f"{isel_moved / (few.size * image_bytes):.4f}x their bytes (target <= 1.05)")
    print(f"{'sequential pass':18s} {'best s':>8s} {'MB/s':>10s}")  # best of --repeats runs each
    print(f"{'remote (loopback)':18s} {min(remote_times):8.3f} {remote_mb_s:10.0f}   server in its own process")
    print(f"{'remote in-process':18s} {min(in_process_times):8.3f} {size_mb / min(in_process_times):10.0f}   "
          "server thread in this interpreter")
    print(f"{'remote via fsspec':18s} {min(fsspec_times):8.3f} {size_mb / min(fsspec_times):10.0f}")
    print(f"{'local file':18s} {min(local_times):8.3f} {local_mb_s:10.0f}")
    ratio = remote_mb_s / local_mb_s
    pairs = np.array(local_times) / np.array(remote_times)
    paired = float(np.median(pairs))
    print(f"per-pair remote/local ratios: {', '.join(f'{p:.2f}' for p in pairs)} (median {paired:.2f}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"bytes ratio {moved / needed:.4f} (target <= 1.05); remote/local speed {ratio:.2f} (target >= 0.5)")
    print(f"1% random over loopback, open included (median of {args.repeats}): perc {random['img_s']:.0f} img/s, "
          f"fsspec cat_ranges {random['fsspec_img_s']:.0f} img/s = {random['img_s'] / random['fsspec_img_s']:.2f}x; "
          f"fresh process {random['fresh_img_s']:.0f} img/s (open {1e3 * random['fresh_open_s']:.1f} ms, "
          f"warm {1e3 * random['open_s']:.1f} ms); one particle: perc {1e3 * random['one_s']:.1f} ms, fsspec "
          f"{1e3 * random['fsspec_one_s']:.1f} ms = {random['one_s'] / random['fsspec_one_s']:.2f}x")
    print(json.dumps({"bytes_ratio": round(moved / needed, 4),
                      "isel_bytes_ratio": round(isel_moved / (few.size * image_bytes), 4),
                      "whole_file_bytes_ratio": round(whole_moved / needed, 1),
                      "remote_local_speed_ratio": round(ratio, 3), "paired_median_ratio": round(paired, 3),
                      "header_bytes": header_bytes, "fsspec_mb_s": round(size_mb / min(fsspec_times), 1),
                      "remote_mb_s": round(remote_mb_s, 1), "local_mb_s": round(local_mb_s, 1),
                      "in_process_server_ratio": round(min(local_times) / min(in_process_times), 3),
                      "open_s": round(random["open_s"], 5), "fresh_open_s": round(random["fresh_open_s"], 5),
                      "fresh_img_s": round(random["fresh_img_s"], 1), "random_img_s": round(random["img_s"], 1),
                      "fsspec_random_img_s": round(random["fsspec_img_s"], 1),
                      "one_particle_s": round(random["one_s"], 5),
                      "fsspec_one_particle_s": round(random["fsspec_one_s"], 5),
                      "load_average": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
