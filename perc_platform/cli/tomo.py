"""``perc tomo tilt-series|tomogram|subtomograms``: open tomography data lazily and describe it (or write cubes)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tomo", help="describe tilt series and tomograms; cut subtomograms around picks")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    series = actions.add_parser("tilt-series", help="describe a tilt series (.st, .ali, .mrc) and its angles")
    series.add_argument("path", help="the stack: path or URL")
    series.add_argument("--angles", default=None, help=".tlt/.rawtlt/.mdoc file (default: the one beside it)")
    tomogram = actions.add_parser("tomogram", help="describe a tomogram (.rec, .mrc, OME-Zarr .zarr)")
    tomogram.add_argument("path", help="the tomogram: path or URL")
    cubes = actions.add_parser("subtomograms", help="cut cubes around picks; describe them or write them to Zarr")
    cubes.add_argument("path", help="the tomogram: path or URL (.rec, .mrc, .zarr)")
    cubes.add_argument("picks", help="picks: RELION STAR (rlnCoordinateX/Y/Z) or CSV with x, y, z columns")
    cubes.add_argument("--box", type=int, required=True, help="cube edge in voxels")
    cubes.add_argument("--units", choices=["angstrom", "pixel"], required=True, help="unit of the pick coordinates")
    cubes.add_argument("--edge", choices=["refuse", "pad"], default="refuse", help="cubes crossing the border")
    cubes.add_argument("--out", default=None, help="write the cubes to this Zarr store")
    for p in (tomogram, cubes):
        p.add_argument("--level", type=int, default=0, help="OME-Zarr scale level (0: full resolution)")
    for p in (series, tomogram, cubes):
        p.set_defaults(func=run)


def _summary(array: Any) -> dict[str, Any]:
    keep = ("pixel_size", "voxel_size", "origin", "ome_zarr_levels", "tilt_angles_from", "box", "edge", "pick_units")
    out: dict[str, Any] = {"dims": list(array.dims), "shape": list(array.shape), "dtype": str(array.dtype)}
    out.update({k: array.attrs[k] for k in keep if k in array.attrs})
    if "tilt_angle" in array.coords:
        angles = array["tilt_angle"].values
        out["tilt_angles"] = {"n": int(angles.size), "min": float(angles.min()), "max": float(angles.max())}
    return out


def run(args: argparse.Namespace) -> int:
    import perc_platform as pp

    if args.action == "tilt-series":
        array = pp.open_tilt_series(args.path, args.angles)
    elif args.action == "tomogram":
        array = pp.open_tomogram(args.path, level=args.level)
    else:
        volume = pp.open_tomogram(args.path, level=args.level)
        array = pp.open_subtomograms(volume, args.picks, box=args.box, units=args.units, edge=args.edge)
        if args.out:
            array.to_dataset(promote_attrs=True).to_zarr(args.out, mode="w-", zarr_format=2, consolidated=True)
    print(json.dumps(_summary(array), indent=2, default=str))
    if args.action == "subtomograms" and args.out:
        print(f"wrote {array.sizes['particle']} subtomograms of {args.box}^3 voxels to {args.out}")
    return 0
