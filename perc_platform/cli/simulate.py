"""``perc simulate map|particles``: density maps and particle stacks simulated from a structure."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("simulate", help="simulate a density map or particle stack from a structure")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    m = kinds.add_parser("map", help="molmap-style density map (.mrc)")
    m.add_argument("structure", help="PDB/mmCIF path or URL, or a PDB id / UniProt accession")
    m.add_argument("--resolution", type=float, required=True, help="resolution (Angstrom)")
    m.add_argument("--voxel-size", type=float, default=None, help="voxel size (Angstrom); default resolution / 3")
    m.add_argument("--box", type=int, default=None, help="voxels per side, centred on the model")
    m.add_argument("--like", default=None, help="write the map on the grid of this map")
    m.add_argument("--out", type=Path, required=True, help="output map (.mrc)")
    m.set_defaults(func=run)
    p = kinds.add_parser("particles", help="particle stack (.mrcs + RELION 3.1 .star) with ground truth")
    p.add_argument("structure", help="PDB/mmCIF path or URL, or a PDB id / UniProt accession")
    p.add_argument("-n", "--n", type=int, required=True, help="number of particles")
    p.add_argument("--box", type=int, required=True, help="image side (pixels)")
    p.add_argument("--pixel-size", type=float, required=True, help="pixel size (Angstrom)")
    p.add_argument("--snr", type=float, default=0.1, help="signal-to-noise ratio (default 0.1)")
    p.add_argument("--defocus-range", type=float, nargs=2, default=(10000.0, 25000.0), metavar=("LOW", "HIGH"),
                   help="defocus U range (Angstrom)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=None, help="particles per chunk")
    p.add_argument("--out", type=Path, required=True, help="output stack (.mrcs); the STAR file goes beside it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perc_platform import simulate
    from perc_platform.cli._progress import progress_printer
    from perc_platform.cluster import close_client, dashboard_url, get_client

    if args.kind == "map":
        from perc_platform.datasets.volumes import open_volume
        from perc_platform.io.mrc_writer import write_volume

        like = open_volume(args.like) if args.like else None
        density = simulate.density_map(args.structure, args.voxel_size, args.resolution, args.box, like=like)
        write_volume(args.out, density.values, voxel_size=density.attrs["voxel_size"],
                     origin=density.attrs["origin"])
        print(f"wrote {args.out} ({'x'.join(map(str, density.shape[::-1]))} voxels)")
        return 0
    get_client()
    print(f"dashboard: {dashboard_url()}")
    try:
        images = simulate.particles(args.structure, args.n, args.box, args.pixel_size, args.snr,
                                    tuple(args.defocus_range), args.seed, chunk_size=args.chunk_size)
        stack, star = simulate.write_particles(images, args.out, progress=progress_printer("simulate"))
    finally:
        close_client()
    print(f"wrote {stack} and {star}")
    return 0
