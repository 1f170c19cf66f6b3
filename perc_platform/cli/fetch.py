"""``perc fetch structure|map``: fetch structures (PDB / AlphaFold DB) or EMDB maps into the cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("fetch", help="fetch structures or EMDB maps into the cache")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    structure = kinds.add_parser("structure", help="structures by UniProt accession or PDB id")
    structure.add_argument("ids", nargs="*", help="UniProt accessions or PDB ids (e.g. P00698 1AKI)")
    structure.add_argument("--prefer", choices=["pdb", "alphafold"], default="pdb",
                           help="archive tried first; the other is the fallback (default pdb)")
    structure.add_argument("--format", choices=["cif", "pdb"], default="cif", help="file format (default cif)")
    structure.add_argument("--clean", action="store_true",
                           help="remove signal peptides, hydrogens, waters and hetero groups")
    structure.add_argument("--out", type=Path, default=None, metavar="DIR",
                           help="also save each structure file into DIR (e.g. 1AKI.cif); the cache keeps its copy")
    emdb = kinds.add_parser("map", help="EMDB maps by id (e.g. EMD-5168)")
    emdb.add_argument("ids", nargs="*", help="EMDB ids")
    for p in (structure, emdb):
        p.add_argument("-f", "--file", type=Path, help="file with one id per line (# starts a comment)")
        p.add_argument("-j", "--jobs", type=int, default=8, help="fetches run at once (default 8)")
        p.add_argument("--offline", action="store_true", help="use only the cache (no network)")
        p.set_defaults(func=run)


def _ids(args: argparse.Namespace) -> list[str]:
    from perc_platform.errors import ParameterError

    ids = list(args.ids)
    if args.file is not None:
        try:
            lines = args.file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ParameterError(f"id file {args.file} does not exist") from None
        ids += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not ids:
        raise ParameterError("no ids given: pass them as arguments or with -f ids.txt")
    return ids


def run(args: argparse.Namespace) -> int:
    from perc_platform.config import override

    ids = _ids(args)
    with override(**({"offline": True} if args.offline else {})):
        return _fetch_all(args, ids)


def _fetch_all(args: argparse.Namespace, ids: list[str]) -> int:
    from perc_platform.archives import fetch_emdb_map, fetch_many, fetch_structure, text_progress

    def one(query: str) -> str:
        if args.kind == "map":
            return str(fetch_emdb_map(query))
        fetched = fetch_structure(query, prefer=args.prefer, fmt=args.format, clean=args.clean,
                                  save_to=args.out)
        return f"{fetched.choice.source_id}\t{fetched.path}"

    if len(ids) == 1:
        print(f"{ids[0]}\t{one(ids[0])}")
        return 0
    outcomes = fetch_many(one, ids, max_workers=args.jobs, progress=text_progress(sys.stderr))
    for outcome in outcomes:
        print(f"{outcome.key}\t{outcome.value}" if outcome.ok else f"{outcome.key}\tFAILED\t{outcome.error}")
    failed = sum(not o.ok for o in outcomes)
    if failed:
        print(f"perc: {failed} of {len(outcomes)} fetch(es) failed", file=sys.stderr)
    return 1 if failed else 0
