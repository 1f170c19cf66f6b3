"""``perc loader``: how fast the torch loader feeds particles of a catalog entry or stacks, per mode."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

MODES = ("stream", "memory", "auto")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("loader", help="throughput of the particle loader in stream / memory / auto mode")
    parser.add_argument("stacks", nargs="*", help="particle stacks (.mrcs paths, globs or URLs) instead of --entry")
    parser.add_argument("--entry", help="catalog entry with particles (nested with dots, e.g. demo.particles)")
    parser.add_argument("--catalog", default=None, help="catalog path or URL (default: the shipped perc.yaml)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="user parameter of the catalog entry (repeatable)")
    parser.add_argument("--star", default=None, help="STAR file with the particles' metadata (with stacks)")
    for mode in MODES:
        parser.add_argument(f"--{mode}", action="store_true", help=f"measure {mode} mode (default: all three)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per mode (default 1)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop each epoch after this many batches")
    parser.add_argument("--random", type=int, default=None, metavar="N", help="a seeded random subset of N particles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where batches go (cpu or cuda; default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="reading threads (default: one per core, <= 8)")
    parser.add_argument("--force", action="store_true",
                        help="memory mode even when the images take more than half of the available memory")
    parser.set_defaults(func=run)


def measure(images: Any, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Set-up time and epoch throughput of one mode."""
    from perc_platform.ml import ParticleLoader

    t0 = time.perf_counter()
    loader = ParticleLoader(images, args.batch_size, mode, device=args.device, seed=args.seed, metadata=[],
                            random=args.random, threads=args.threads)
    setup = time.perf_counter() - t0
    count = batches = 0
    t1 = time.perf_counter()
    for _ in range(args.epochs):
        for k, batch in enumerate(loader):
            count += int(batch["image"].shape[0])
            batches += 1
            if args.max_batches is not None and k + 1 >= args.max_batches:
                break
    seconds = time.perf_counter() - t1
    nbytes = count * int(images.shape[1]) * int(images.shape[2]) * 4
    return {"mode": mode, "chosen": loader.mode, "particles": count, "batches": batches,
            "setup_s": round(setup, 3), "seconds": round(seconds, 3),
            "particles_s": round(count / seconds, 1) if seconds > 0 else None,
            "mb_s": round(nbytes / 1e6 / seconds, 1) if seconds > 0 else None, "reason": loader.mode_reason}


def run(args: argparse.Namespace) -> int:
    from perc_platform.cli.classify2d import _open
    from perc_platform.errors import ParameterError
    from perc_platform.ml import choose_mode

    if args.batch_size < 1 or args.epochs < 1:
        raise ParameterError(f"--batch-size {args.batch_size}, --epochs {args.epochs}: give positive numbers")
    modes = [m for m in MODES if getattr(args, m)] or list(MODES)
    images = _open(args)
    n = int(images.shape[0]) if args.random is None else int(args.random)
    nbytes = n * int(images.shape[1]) * int(images.shape[2]) * 4
    if "memory" in modes and not args.force and choose_mode(nbytes)[0] != "memory":
        raise ParameterError(f"--memory: {choose_mode(nbytes)[1]}; pass --force to load them anyway, or drop "
                             "--memory (or take --random N particles)")
    print(f"loader: {n} particles of {images.shape[1]} x {images.shape[2]} px ({nbytes / 1e6:.1f} MB as float32), "
          f"batch {args.batch_size}, {args.epochs} epoch(s) on {args.device}", flush=True)
    rows = [measure(images, mode, args) for mode in modes]
    print(f"{'mode':<8} {'chosen':<8} {'particles':>10} {'set-up s':>9} {'epoch s':>9} {'particles/s':>12} "
          f"{'MB/s':>8}")
    for r in rows:
        print(f"{r['mode']:<8} {r['chosen']:<8} {r['particles']:>10} {r['setup_s']:>9.2f} {r['seconds']:>9.2f} "
              f"{r['particles_s'] or 0:>12,.0f} {r['mb_s'] or 0:>8,.1f}")
    for r in rows:
        if r["mode"] == "auto":
            print(f"auto: {r['reason']}")
    print(json.dumps({"particles": n, "box": int(images.shape[-1]), "batch_size": args.batch_size,
                      "epochs": args.epochs, "device": args.device, "random": args.random,
                      "modes": {r["mode"]: {k: v for k, v in r.items() if k != "mode"} for r in rows}}))
    return 0
