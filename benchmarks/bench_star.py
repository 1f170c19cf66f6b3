"""STAR parsing time against file size: wide files (many columns) and tall files (many rows), doubling.

Usage: python benchmarks/bench_star.py [--max-columns 100000] [--max-rows 400000]

Each file is parsed (``parse_star_text`` + ``particle_metadata``) three times and the best time kept. Parse
time should grow linearly with the file size: the ratio of times for a file twice as large should stay near
2 (the issue's bound: below 3). Before the fix a file of 10^5 columns took 33 s.
Last line: JSON with the times per size and the largest doubling ratio of each kind.
"""

from __future__ import annotations

import argparse
import json
import time


def _wide(columns: int) -> str:
    header = "".join(f"_rlnCol{i}\n" for i in range(columns))
    row = " ".join(f"{i}.5" for i in range(columns))
    return f"data_particles\nloop_\n_rlnImageName\n{header}000001@a.mrcs {row}\n000002@a.mrcs {row}\n"


def _tall(rows: int) -> str:
    optics = "data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n_rlnVoltage\n1 1.5 300\n2 2.5 300\n\n"
    head = "data_particles\nloop_\n_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n_rlnAnglePsi\n_rlnMicrographName\n"
    body = "".join(f"{i % 999 + 1:06d}@s{i // 999}.mrcs {1 + i % 2} {10000 + i}.5 {i % 360}.25 mic{i // 50}.mrc\n"
                   for i in range(rows))
    return optics + head + body


def _time(text: str) -> float:
    from perc_platform.io.star import parse_star_text, particle_metadata

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        particle_metadata(parse_star_text(text, "bench.star"))
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-columns", type=int, default=100_000)
    parser.add_argument("--max-rows", type=int, default=400_000)
    args = parser.parse_args()
    results: dict[str, dict[int, tuple[int, float]]] = {"wide": {}, "tall": {}}
    for kind, biggest, make in (("wide", args.max_columns, _wide), ("tall", args.max_rows, _tall)):
        size = max(1, biggest // 8)
        while size <= biggest:
            text = make(size)
            results[kind][size] = (len(text), _time(text))
            size *= 2
    print(f"{'kind':<6}{'size':>9}{'MB':>8}{'parse s':>10}{'x prev':>8}")
    worst: dict[str, float] = {}
    for kind, rows in results.items():
        previous = None
        for size, (nbytes, seconds) in rows.items():
            ratio = seconds / previous if previous else float("nan")
            if previous:
                worst[kind] = max(worst.get(kind, 0.0), ratio)
            print(f"{kind:<6}{size:>9}{nbytes / 1e6:>8.2f}{seconds:>10.3f}{ratio:>8.2f}")
            previous = seconds
    print(json.dumps({"wide_s": {k: round(v[1], 4) for k, v in results["wide"].items()},
                      "tall_s": {k: round(v[1], 4) for k, v in results["tall"].items()},
                      "worst_doubling_ratio_wide": round(worst.get("wide", float("nan")), 2),
                      "worst_doubling_ratio_tall": round(worst.get("tall", float("nan")), 2)}))


if __name__ == "__main__":
    main()
