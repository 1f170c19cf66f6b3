"""Benchmark of streaming 2-D classification (issues 9 and 20).

Two parts, each on simulated particles (``perc_platform.testing.views``: projections of Gaussian-blob
objects, 16 views by default, uniform in-plane turns, shifts up to 5% of the box, SNR 0.1) written to an
``.mrcs`` stack, opened lazily with ``open_particles`` and classified by ``classify2d`` on the CPU (batches
from ``perc_platform.ml.ParticleLoader`` in stream mode), mirror search and sub-pixel shifts on:

* **purity** at boxes 32, 64 and 128 (the same objects in Angstrom: the pixel size is 2 A x 64 / box),
  and its *true-pose upper bound*: the same particles brought onto their views with the drawn poses
  (``scipy.ndimage`` shift and rotation, not the code under test), low-passed and masked like the
  classifier does, then clustered by k-means (NumPy, k-means++ with restarts) on their leading principal
  components into as many classes. The gap is what the alignment costs;
* **speed** at 64 px and 20 classes: particles/s of the streaming phase, the share of it spent waiting for
  the next batch, the loader alone, and the time for a million particles at the measured rate; on CUDA too
  when a GPU is present (``particles_s_gpu``, else null).

The machine may be shared: the load average is printed with every figure, and ``--baseline DIR`` (another
checkout of this repository, e.g. ``git archive <old commit>`` unpacked) runs that code's classification of the
same stack *at the same moment* (both processes concurrently, ``--threads`` each) so the speed-up ratio does
not depend on what else the machine is doing.

The last output line is JSON: ``purity_16_views`` and ``purity_true_poses`` (per box), ``particles_s``,
``data_wait_fraction``, ``particles_s_gpu``, ``projected_1m_minutes``, the baseline's rate and the ratio
(null without ``--baseline``), the load averages, and the settings.

    python benchmarks/bench_classify.py [--particles 6000] [--purity-particles 1600] [--boxes 32 64 128]
                                        [--threads N] [--baseline DIR]
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

import mrcfile
import numpy as np
import torch
from scipy import ndimage

from perc_platform.datasets import open_particles
from perc_platform.processing.classify2d import classify2d
from perc_platform.testing.views import SyntheticViews, make_views

SPEED_BOX = 64
RESOLUTION = 8.0


def purity(classes: np.ndarray, truth: np.ndarray) -> float:
    done = classes >= 0
    return float(sum(np.bincount(truth[done][classes[done] == k]).max() for k in np.unique(classes[done]))
                 / max(1, done.sum()))


def _stack(views: SyntheticViews, folder: Path, pixel: float) -> object:
    path = folder / f"views_{views.images.shape[-1]}.mrcs"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(views.images)
        mrc.voxel_size = pixel
    images = open_particles(path)
    images.attrs["pixel_size"] = pixel
    return images


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, restarts: int = 8, rounds: int = 50) -> np.ndarray:
    best, labels_best = np.inf, np.zeros(len(x), int)
    for _ in range(restarts):
        centres = [x[rng.integers(len(x))]]
        for _ in range(1, k):  # k-means++
            d2 = np.min(((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
        c = np.array(centres)
        for _ in range(rounds):
            labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
            new = np.array([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
            if np.allclose(new, c):
                break
            c = new
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best:
            best, labels_best = inertia, labels
    return labels_best


def true_pose_purity(views: SyntheticViews, classes: int, pixel: float, seed: int = 0) -> float:
    """Purity of k-means on the particles aligned with their drawn poses (the upper bound, see the docstring)."""
    box = views.images.shape[-1]
    aligned = np.empty_like(views.images)
    centre = np.array([box // 2, box // 2], dtype=float)
    for i, image in enumerate(views.images):
        # particle(c + shift + R(t) q) = view(c + q); in (row, col) = (y, x) order R(t) is [[cos, sin], [-sin, cos]]
        t = np.deg2rad(views.rotation[i])
        turn = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        offset = centre + views.shift[i, ::-1] - turn @ centre
        aligned[i] = ndimage.affine_transform(image, turn, offset=offset, order=1, mode="constant")
    f = np.fft.fftfreq(box, d=pixel)
    s = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    lowpass = (s <= 1.0 / max(RESOLUTION, 2 * pixel)).astype(float)
    y, x = np.mgrid[:box, :box] - box // 2
    mask = np.exp(-0.5 * (x**2 + y**2) / (box / 3.0) ** 2)
    data = aligned - aligned.mean(axis=(1, 2), keepdims=True)
    data /= data.std(axis=(1, 2), keepdims=True)
    data = np.fft.ifft2(np.fft.fft2(data) * lowpass).real * mask
    flat = data.reshape(len(data), -1)
    flat -= flat.mean(0)
    u, sv, _ = np.linalg.svd(flat, full_matrices=False)
    comps = 30
    return purity(_kmeans(u[:, :comps] * sv[:comps], classes, np.random.default_rng(seed)), views.view)


def measure_purity(box: int, n: int, views_n: int, classes: int, training: int,
                   folder: Path) -> tuple[float, float, float]:
    pixel = 2.0 * 64 / box
    views = make_views(n, box=box, views=views_n, snr=0.1, seed=box)
    images = _stack(views, folder, pixel)
    t = time.perf_counter()
    result = classify2d(images, classes, batch_size=256, device="cpu", seed=0, training_size=training,
                        resolution=RESOLUTION)
    seconds = time.perf_counter() - t
    return purity(result.assignments["class"].values, views.view), true_pose_purity(views, classes, pixel), seconds


_SPEED_CODE = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[3]))
from perc_platform.datasets import open_particles
from perc_platform.processing.classify2d import classify2d
images = open_particles(sys.argv[1])
images.attrs["pixel_size"] = 2.0
r = classify2d(images, int(sys.argv[2]), batch_size=int(sys.argv[4]), device=sys.argv[5], seed=0,
               training_size=int(sys.argv[6]), resolution=8.0)
print(json.dumps({"particles_s": r.stats["particles_s"], "data_wait": r.stats["data_wait_share"],
                  "init_seconds": r.stats["init_seconds"], "classes": r.assignments["class"].values.tolist()}))
"""


def speed_run(path: Path, args: argparse.Namespace, device: str, root: Path | None = None) -> subprocess.Popen[str]:
    """The speed measurement in a subprocess (this checkout, or the one at ``root``): a Popen whose last output
    line is JSON."""
    env = dict(os.environ)
    if root is not None:  # that checkout's package ahead of this one's
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-c", _SPEED_CODE, str(path), str(args.classes), str(args.threads), str(args.batch),
               device, str(args.training)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=str(path.parent))


def _finish(run: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = run.communicate()
    if run.returncode != 0:
        raise RuntimeError(f"speed run failed with exit code {run.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=6000, help="particles of the speed run")
    parser.add_argument("--purity-particles", type=int, default=1600)
    parser.add_argument("--boxes", type=int, nargs="*", default=[32, 64, 128])
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--training", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the speed runs (default: torch's choice; 1 each with --baseline)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose classify2d runs the same speed stack at the same time")
    args = parser.parse_args()
    if args.threads is None:
        args.threads = 1 if args.baseline is not None else torch.get_num_threads()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        purities, bounds, rows = {}, {}, []
        for box in args.boxes:
            ours, bound, seconds = measure_purity(box, args.purity_particles, args.views, args.classes,
                                                  args.training, folder)
            purities[str(box)], bounds[str(box)] = round(ours, 4), round(bound, 4)
            rows.append((f"purity, box {box} ({args.views} views)", f"{ours:.3f} (true poses: {bound:.3f}, "
                         f"gap {bound - ours:+.3f}; {seconds:.0f} s)"))
        pixel = 2.0
        t0 = time.perf_counter()
        views = make_views(args.particles, box=SPEED_BOX, views=args.views, snr=0.1, seed=0)
        images = _stack(views, folder, pixel)
        made = time.perf_counter() - t0

        from perc_platform.ml import ParticleLoader

        loader = ParticleLoader(images, args.batch, mode="stream", device="cpu", seed=0, metadata=[])
        t1 = time.perf_counter()
        count = sum(int(b["image"].shape[0]) for b in loader)
        loader_rate = count / (time.perf_counter() - t1)
        path = folder / f"views_{SPEED_BOX}.mrcs"
        load_speed = os.getloadavg()[0]
        t2 = time.perf_counter()
        ours_run = speed_run(path, args, "cpu")
        base_run = speed_run(path, args, "cpu", args.baseline) if args.baseline is not None else None
        ours = _finish(ours_run)
        wall = time.perf_counter() - t2
        base = _finish(base_run) if base_run is not None else None
        load_after = os.getloadavg()[0]
        gpu = _finish(speed_run(path, args, "cuda")) if torch.cuda.is_available() else None
    rate = float(ours["particles_s"])  # type: ignore[arg-type]
    wait = float(ours["data_wait"])  # type: ignore[arg-type]
    base_rate = None if base is None else float(base["particles_s"])  # type: ignore[arg-type]
    gpu_rate = None if gpu is None else float(gpu["particles_s"])  # type: ignore[arg-type]
    speed_purity = purity(np.asarray(ours["classes"]), views.view)
    rows += [
        ("speed run", f"{args.particles} x {SPEED_BOX}x{SPEED_BOX} float32, {args.views} views, SNR 0.1, "
                      f"{args.classes} classes, batch {args.batch}, mirror + sub-pixel, {args.threads} thread(s)"),
        ("load average", f"{load:.2f} at start, {load_speed:.2f} at the speed run, {load_after:.2f} after it"),
        ("simulate + write stack", f"{made:.1f} s"),
        ("loader alone (stream mode)", f"{loader_rate:,.0f} particles/s"),
        ("training (PCA + initial classes)", f"{float(ours['init_seconds']):.1f} s on {args.training} particles"),  # type: ignore[arg-type]
        ("streaming classification", f"{rate:,.1f} particles/s"),
        ("waiting for data", f"{100 * wait:.2f}% of the streaming time"),
        ("whole speed run", f"{wall:.1f} s"),
        ("1M particles at this rate", f"{1e6 / rate / 60:.1f} min"),
        ("purity of the speed run", f"{speed_purity:.3f}"),
    ]
    if base_rate is not None:
        rows.append((f"baseline {args.baseline}", f"{base_rate:,.1f} particles/s at the same time: "
                                                  f"{rate / base_rate:.2f}x"))
    if gpu_rate is not None:
        rows.append(("streaming classification, CUDA", f"{gpu_rate:,.1f} particles/s"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"purity_16_views": purities, "purity_true_poses": bounds,
                      "particles_s": round(rate, 1), "data_wait_fraction": round(wait, 4),
                      "particles_s_gpu": None if gpu_rate is None else round(gpu_rate, 1),
                      "projected_1m_minutes": round(1e6 / rate / 60, 1),
                      "projected_1m_minutes_gpu": None if gpu_rate is None else round(1e6 / gpu_rate / 60, 2),
                      "baseline_particles_s": None if base_rate is None else round(base_rate, 1),
                      "speedup_vs_baseline": None if base_rate is None else round(rate / base_rate, 2),
                      "loader_particles_s": round(loader_rate, 1),
                      "init_seconds": round(float(ours["init_seconds"]), 2),  # type: ignore[arg-type]
                      "classes": args.classes, "views": args.views, "box": SPEED_BOX, "particles": args.particles,
                      "purity_particles": args.purity_particles, "mirror": True, "subpixel": True,
                      "threads": args.threads, "load_average": round(load, 2),
                      "load_average_speed_run": [round(load_speed, 2), round(load_after, 2)]}))


if __name__ == "__main__":
    main()
