"""``perc demo``: the end-to-end demo on the embedded default (local cluster, generated data)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="run the demo on generated data and the embedded Dask cluster")
    parser.add_argument("--out", type=Path, default=Path("perc-output"), help="output folder (default perc-output)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perc_platform.cluster import close_client
    from perc_platform.demo import run_demo

    try:
        run_demo(args.out)
    finally:
        close_client()
    return 0
