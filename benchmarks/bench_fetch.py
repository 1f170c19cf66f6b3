"""Fetching 50 structures from the loopback archive with 50 ms latency: sequential vs concurrent, cold vs warm.

Usage: python benchmarks/bench_fetch.py [--n 50] [--latency 0.05] [--workers 8] [--data ../shared/data]

The archive serves ``--n`` PDB entries over real HTTP on 127.0.0.1, every request delayed by
``--latency`` seconds. The entries are synthetic ids (9B00, 9B01, ...) that all serve the real 1AKI
mmCIF from ../shared/data (the benchmark measures fetching, not content). Each phase starts from an
empty cache except ``warm``:

* sequential: ``fetch_pdb_file`` for one id after the other (cold cache);
* concurrent (= cold): ``fetch_many(fetch_pdb_file, ids, max_workers)`` on an empty cache;
* warm: the same concurrent fetch again on the cache the cold run filled (no request is made).

Every download is checked (gemmi parses it) before it is cached, in all phases.
Last line: JSON with sequential_s, concurrent_s, speedup, cold_s, warm_s (and request counts).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of structures (default 50)")
    parser.add_argument("--latency", type=float, default=0.05, help="injected latency per request in s")
    parser.add_argument("--workers", type=int, default=8, help="concurrent fetches (default 8)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="the shared data folder (default ../shared/data)")
    args = parser.parse_args()

    from perc_platform.archives import fetch_many, fetch_pdb_file
    from perc_platform.testing.archive import archive_server

    source = args.data / "structures" / "1aki.cif"
    if not source.exists():
        raise SystemExit(f"{source} not found; pass --data pointing at the shared data folder")
    ids = [f"9B{i:02d}" for i in range(args.n)] if args.n <= 100 else [f"9{i:03d}" for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="perc-bench-fetch-") as tmp:
        entries = Path(tmp, "entries")
        entries.mkdir()
        for pdb_id in ids:
            (entries / f"{pdb_id.lower()}.cif").symlink_to(source)

        def fresh_cache(name: str) -> None:
            os.environ["PERC_CACHE_DIR"] = str(Path(tmp, name))

        with archive_server(entries, latency=args.latency) as server:
            fresh_cache("cache-sequential")
            server.reset_counts()
            start = time.perf_counter()
            for pdb_id in ids:
                fetch_pdb_file(pdb_id)
            sequential = time.perf_counter() - start
            seq_requests = server.count()

            fresh_cache("cache-concurrent")
            server.reset_counts()
            start = time.perf_counter()
            outcomes = fetch_many(fetch_pdb_file, ids, max_workers=args.workers)
            cold = time.perf_counter() - start
            cold_requests = server.count()
            failed = [o for o in outcomes if not o.ok]
            if failed:
                raise SystemExit(f"{len(failed)} fetches failed, e.g. {failed[0].key}: {failed[0].error}")

            server.reset_counts()
            start = time.perf_counter()
            fetch_many(fetch_pdb_file, ids, max_workers=args.workers)
            warm = time.perf_counter() - start
            time.sleep(0.1)  # let the server log anything it answered
            warm_requests = server.count()

    floor = args.n * args.latency
    print(f"{args.n} structures, {args.latency * 1000:.0f} ms latency per request, {args.workers} workers")
    print(f"{'phase':24s} {'seconds':>8s} {'requests':>9s}")
    print(f"{'sequential (cold)':24s} {sequential:8.3f} {seq_requests:9d}   (latency floor {floor:.2f} s)")
    print(f"{'concurrent (cold)':24s} {cold:8.3f} {cold_requests:9d}")
    print(f"{'concurrent (warm)':24s} {warm:8.3f} {warm_requests:9d}")
    print(f"speedup sequential/concurrent = {sequential / cold:.1f}x; cold/warm = {cold / warm:.0f}x")
    print(json.dumps({"sequential_s": round(sequential, 4), "concurrent_s": round(cold, 4),
                      "speedup": round(sequential / cold, 2), "cold_s": round(cold, 4), "warm_s": round(warm, 4),
                      "cold_over_warm": round(cold / warm, 1), "n": args.n, "latency_s": args.latency,
                      "workers": args.workers, "requests_sequential": seq_requests,
                      "requests_cold": cold_requests, "requests_warm": warm_requests}))


if __name__ == "__main__":
    main()
