"""``perc demo``: the end-to-end demo on the embedded default (local cluster, generated data)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the demo on generated data and the embedded Dask cluster")
    parser.add_argument("--out", type=Path, default=Path("perc-output"), help="output folder (default perc-output)")
    parser.add_argument("--real-data", type=Path, default=None, metavar="DIR",
                        help="run on a folder of real files (a map with its own model, paired by EMDB/PDB ids from an "
                             "emdb_entry_EMD-N.json, a MANIFEST.md pairs table or map names emd_N_<PDBID>..., and "
                             "a STAR file beside its .mrcs stacks), e.g. ../shared/data")
    parser.add_argument("--particles", type=int, default=1200, help="simulated particles (default 1200)")
    parser.add_argument("--fit-steps", type=int, default=None,
                        help="step cap of each neural-map region's SIREN residual (default: FitSettings, 300)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perc_platform.cluster import close_client
    from perc_platform.demo import run_demo

    try:
        run_demo(args.out, real_data=args.real_data, n_particles=args.particles, fit_steps=args.fit_steps)
    finally:
        close_client()
    return 0
