"""Benchmark of streaming 2-D classification (issue 9, acceptance 4).

Simulated particles (64 x 64, ``--views`` different projections of Gaussian-blob objects, random in-plane
turns and shifts, SNR 0.1) are written to an ``.mrcs`` stack in a temporary folder, opened lazily with
``open_particles`` and classified into 20 classes on the CPU by ``classify2d`` (batches from
``perc_platform.ml.ParticleLoader`` in stream mode). Reported: particles/s of the streaming phase, the share
of that time spent waiting for the next batch (the loader must not be the bottleneck), the loader alone
(particles/s, no classification), the time of the training phase (PCA basis and initial classes) and the
class purity against the ground-truth views. The last output line is JSON with ``particles_s``,
``data_wait_share`` and ``purity``.

    python benchmarks/bench_classify.py [--particles 6000] [--classes 20] [--batch 256] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import torch

from perc_platform.datasets import open_particles
from perc_platform.processing.classify2d import classify2d
from perc_platform.testing.views import make_views

BOX = 64
PIXEL = 2.0


def purity(classes: np.ndarray, truth: np.ndarray) -> float:
    done = classes >= 0
    return float(sum(np.bincount(truth[done][classes[done] == k]).max() for k in np.unique(classes[done]))
                 / max(1, done.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=6000)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--views", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--training", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    views = make_views(args.particles, box=BOX, views=args.views, snr=0.1, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Path(tmp) / "views.mrcs"
        with mrcfile.new(stack) as mrc:
            mrc.set_data(views.images)
            mrc.voxel_size = PIXEL
        images = open_particles(stack)
        images.attrs["pixel_size"] = PIXEL
        made = time.perf_counter() - t0

        from perc_platform.ml import ParticleLoader

        loader = ParticleLoader(images, args.batch, mode="stream", device="cpu", seed=0, metadata=[])
        t1 = time.perf_counter()
        count = sum(int(b["image"].shape[0]) for b in loader)
        loader_rate = count / (time.perf_counter() - t1)

        t2 = time.perf_counter()
        result = classify2d(images, args.classes, batch_size=args.batch, device="cpu", seed=0,
                            training_size=args.training)
        wall = time.perf_counter() - t2
    stats = result.stats
    score = purity(result.assignments["class"].values, views.view)
    rows = [
        ("particles", f"{args.particles} x {BOX}x{BOX} float32, {args.views} views, SNR 0.1"),
        ("classes / batch", f"{args.classes} / {args.batch}"),
        ("torch threads", str(torch.get_num_threads())),
        ("simulate + write stack", f"{made:.1f} s"),
        ("loader alone (stream mode)", f"{loader_rate:,.0f} particles/s"),
        ("training (PCA + initial classes)", f"{stats['init_seconds']:.1f} s on {args.training} particles"),
        ("streaming classification", f"{stats['particles_s']:,.1f} particles/s over {stats['seconds']:.1f} s"),
        ("waiting for data", f"{100 * stats['data_wait_share']:.2f}% of the streaming time"),
        ("whole run", f"{wall:.1f} s ({args.particles / wall:,.1f} particles/s including training)"),
        ("PCA", f"{result.classifier.basis.n_components if result.classifier.basis else 0} real components, "
                f"{100 * (result.classifier.basis.explained if result.classifier.basis else 0):.1f}% of variance"),
        ("purity (vs. ground-truth views)", f"{score:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"particles_s": round(stats["particles_s"], 1),
                      "data_wait_share": round(stats["data_wait_share"], 4), "purity": round(score, 4),
                      "loader_particles_s": round(loader_rate, 1), "init_seconds": round(stats["init_seconds"], 2),
                      "classes": args.classes, "box": BOX, "particles": args.particles,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
