"""``perc preprocess``: window, Fourier-crop and normalise a particle stack into a Zarr store (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preprocess", help="window, downsample and normalise particles into a Zarr store")
    parser.add_argument("stack", nargs="?", default=None, help="particle stack(s): path, glob or URL")
    parser.add_argument("--star", default=None, help="RELION STAR file (its rows become the particles)")
    parser.add_argument("--out", type=Path, required=True, help="output Zarr store (a rerun resumes it)")
    parser.add_argument("--box", type=int, default=None, help="output size in pixels (Fourier crop)")
    parser.add_argument("--no-window", dest="window", action="store_false", help="skip the soft circular window")
    parser.add_argument("--normalise", default="background",
                        choices=["background", "standard", "percentile", "none"], help="per-image normalisation")
    parser.add_argument("--chunk-size", type=int, default=None, help="particles per chunk")
    parser.add_argument("--mrcs", type=Path, default=None, help="also write this .mrcs (+ .star)")
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    parser.add_argument("--random", type=int, default=None, metavar="N",
                        help="keep a random subset of N particles (seeded by --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perc_platform import open_particles
    from perc_platform.cli._progress import progress_printer
    from perc_platform.cluster import close_client, dashboard_url, get_client
    from perc_platform.processing import preprocess

    get_client()
    print(f"dashboard: {dashboard_url()}")
    try:
        images = open_particles(args.stack, star=args.star)
        result = preprocess(images, args.out, box=args.box, window=args.window,
                            normalise=None if args.normalise == "none" else args.normalise,
                            chunk_size=args.chunk_size, mrcs=args.mrcs, overwrite=args.overwrite,
                            progress=progress_printer("preprocess"), random=args.random, seed=args.seed)
    finally:
        close_client()
    print(f"wrote {args.out}: {result.sizes['particle']} particles of {result.sizes['x']} px at "
          f"{result.attrs.get('pixel_size', float('nan')):.4g} A/px")
    return 0
