"""Preprocess a generated ~1 GB particle stack (128 -> 64 px) on a local cluster vs an in-memory approach.

Usage: python benchmarks/bench_preprocess.py [--gb 1.0] [--box 128] [--out-box 64] [--dir DIR]

1. A stack of simulated particles (a synthetic helix bundle, random poses, CTF, noise) is generated on the
   cluster's workers straight into an ``.mrcs`` with its STAR file.
2. ``perc_platform.processing.preprocess`` windows, Fourier-crops and normalises it chunk-parallel on a
   LocalCluster (2 worker processes, 1 thread each) into a Zarr store. Peak RSS is this (client) process's
   lifetime maximum (``ru_maxrss``) after this step.
3. The in-memory approach, in a fresh subprocess: read the whole stack into a NumPy array, process it
   with the same kernel, keep the result in memory; its peak RSS is that subprocess's ``ru_maxrss``.
4. A subset of the Zarr result is checked against the in-memory result.

Last line: JSON with img_s, peak_rss_mb, inmemory_peak_rss_mb (and more).
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

INMEMORY = """
import json, resource, sys, time
import mrcfile, numpy as np
from perc_platform.processing._images import preprocess_block
path, out, box = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
with mrcfile.open(path, permissive=True) as mrc:
    images = np.array(mrc.data)                          # the whole stack in memory
result = preprocess_block(images, box, (0.85, 0.99), "background")
elapsed = time.perf_counter() - started
np.save(out, result)
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--out-box", type=int, default=64)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    n = int(args.gb * 2**30 // (args.box * args.box * 4))

    from distributed import Client, LocalCluster

    from perc_platform import open_particles, open_structure
    from perc_platform.processing import preprocess
    from perc_platform.simulate import particles, write_particles
    from perc_platform.testing.structures import helix_bundle

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, cluster, Client(cluster):
        folder = Path(tmp)
        structure = open_structure(helix_bundle(folder / "bundle.pdb", n_helices=6, residues_per_helix=30))
        started = time.perf_counter()
        simulated = particles(structure, n, args.box, 1.5, snr=0.1, seed=0, chunk_size=512)
        write_particles(simulated, folder / "stack.mrcs")
        generate_s = time.perf_counter() - started
        size_mb = (folder / "stack.mrcs").stat().st_size / 2**20

        images = open_particles(folder / "stack.mrcs", star=folder / "stack.star")
        started = time.perf_counter()
        result = preprocess(images, folder / "out.zarr", box=args.out_box)
        elapsed = time.perf_counter() - started
        ours_peak = peak_rss_mb()

        run = subprocess.run([sys.executable, "-c", INMEMORY, str(folder / "stack.mrcs"), str(folder / "mem.npy"),
                              str(args.out_box)], check=True, capture_output=True, text=True)
        inmemory = json.loads(run.stdout.strip().splitlines()[-1])
        reference = np.load(folder / "mem.npy", mmap_mode="r")
        subset = np.linspace(0, n - 1, 64).astype(int)
        max_diff = float(np.abs(result.values[subset] - reference[subset]).max())

    img_s = n / elapsed
    inmemory_img_s = n / inmemory["seconds"]
    rows = [("stack", f"{n} x {args.box}^2 float32 = {size_mb:.0f} MB, simulated on the cluster in {generate_s:.0f} s"),
            ("chunked on the cluster", f"{elapsed:.1f} s, {img_s:.0f} img/s, client peak RSS {ours_peak:.0f} MB"),
            ("in memory (NumPy)", f"{inmemory['seconds']:.1f} s, {inmemory_img_s:.0f} img/s, "
                                  f"peak RSS {inmemory['peak_rss_mb']:.0f} MB"),
            ("max |difference| on 64 images", f"{max_diff:.2e}")]
    for name, value in rows:
        print(f"{name:32s} {value}")
    print(json.dumps({"img_s": round(img_s, 1), "peak_rss_mb": round(ours_peak, 1),
                      "inmemory_peak_rss_mb": round(inmemory["peak_rss_mb"], 1),
                      "inmemory_img_s": round(inmemory_img_s, 1), "n": n, "stack_mb": round(size_mb, 1),
                      "max_abs_diff": max_diff}))


if __name__ == "__main__":
    main()
