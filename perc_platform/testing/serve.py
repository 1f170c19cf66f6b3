"""Run the loopback file server in its own process: ``python -m perc_platform.testing.serve ROOT``.

Prints the server's URL as the first line of standard output and serves (files below ROOT, with Range) until
standard input closes or the process is stopped. Benchmarks use it so that the server does not share the
client's interpreter, as a real archive would not.
"""

from __future__ import annotations

import argparse
import sys

from perc_platform.testing.server import LoopbackServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder to serve")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    args = parser.parse_args()
    with LoopbackServer(args.root, latency=args.latency) as server:
        print(server.url, flush=True)
        sys.stdin.read()  # serve until the parent closes our standard input


if __name__ == "__main__":
    main()
