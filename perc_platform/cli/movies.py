"""``perc movies describe|sum``: open movies lazily (any format of the table) and describe them or write frame sums."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("movies", help="describe movies (TIFF, MRC, .mrc.bz2, EER) or write their frame sums")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    describe = actions.add_parser("describe", help="shape, format, dose, pixel size and exposure of movies")
    total = actions.add_parser("sum", help="sum the frames of each movie (gain applied if given) into an .mrcs stack")
    total.add_argument("--out", required=True, help="output stack (.mrcs), one summed image per movie")
    for p in (describe, total):
        p.add_argument("paths", nargs="+", help="movie files, globs or URLs")
        p.add_argument("--mdoc", default=None, help="SerialEM .mdoc (default: <movie>.mdoc beside each movie)")
        p.add_argument("--dose-per-frame", type=float, default=None, help="e/A^2 per frame (beats the mdoc)")
        p.add_argument("--pixel-size", type=float, default=None, help="Angstrom per pixel (beats the files)")
        p.add_argument("--gain", default=None, help="gain reference (MRC or TIFF), multiplied in")
        p.add_argument("--gain-rot", type=int, default=0, help="RELION --gain_rot / MotionCor2 -RotGain (0-3)")
        p.add_argument("--gain-flip", type=int, default=0, help="RELION --gain_flip / MotionCor2 -FlipGain (0-2)")
        p.add_argument("--super-resolution", type=int, default=None, choices=(1, 2, 4),
                       help="EER: render events on the 1x (sensor), 2x or 4x grid (default 1)")
        p.add_argument("--frames-per-fraction", type=int, default=None,
                       help="EER: raw frames summed into each fraction (a frame of the result; default 1)")
        p.add_argument("--remainder", default=None, choices=("drop", "keep"),
                       help="EER: leave out a last, shorter group of raw frames (drop, default) or keep it")
        p.set_defaults(func=run)


def _summary(movies: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"dims": list(movies.dims), "shape": list(movies.shape), "dtype": str(movies.dtype)}
    keys = ("format", "pixel_size", "dose_per_frame", "super_resolution", "frames_per_fraction")
    out.update({k: movies.attrs[k] for k in keys if k in movies.attrs})
    if "raw_frames" in movies.coords:
        out["raw_frames"] = int(movies["raw_frames"].values[0].sum())
    out["files"] = [str(f) for f in movies["file"].values]
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from perc_platform.datasets.movies import apply_gain, open_movies, sum_frames

    movies = open_movies(args.paths, mdoc=args.mdoc, dose_per_frame=args.dose_per_frame, pixel_size=args.pixel_size,
                         super_resolution=args.super_resolution, frames_per_fraction=args.frames_per_fraction,
                         remainder=args.remainder)
    if args.gain:
        movies = apply_gain(movies, args.gain, rotation=args.gain_rot, flip=args.gain_flip)
    print(json.dumps(_summary(movies), indent=2, default=str))
    if args.action == "sum":
        from perc_platform.io.mrc_writer import MrcStackWriter

        sums = sum_frames(movies)
        with MrcStackWriter(args.out, (movies.sizes["y"], movies.sizes["x"]), "float32",
                            voxel_size=float(movies.attrs.get("pixel_size", 1.0))) as writer:
            for i in range(movies.sizes["movie"]):  # one movie in memory at a time
                writer.append(np.asarray(sums[i].values, dtype=np.float32))
        print(f"wrote {movies.sizes['movie']} frame sums to {args.out}")
    return 0
