"""``perc catalog list|describe``: browse a catalog (the shipped root catalog by default)."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("catalog", help="list or describe catalog entries")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (("list", "list the entries of a catalog"), ("describe", "describe one entry")):
        p = actions.add_parser(name, help=helptext)
        p.add_argument("--catalog", default=None, help="catalog path or URL (default: the shipped perc.yaml)")
        if name == "describe":
            p.add_argument("entry", help="entry name (nested entries with dots, e.g. demo.particles)")
        p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import intake

    from perc_platform.catalogs import catalog_path

    with warnings.catch_warnings():
        # intake 2.0 warns "Shell command not executed" for every string default it expands, shell or not
        # (intake/catalog/utils.py expand_defaults); our catalogs run no shell commands.
        warnings.filterwarnings("ignore", message="Shell command not executed due to getshell=False",
                                category=UserWarning, module=r"intake\.catalog\.utils")
        cat = intake.open_catalog(args.catalog or str(catalog_path()))
        if args.action == "list":
            for name in cat:
                print(f"{name:24s} {cat[name].describe().get('description') or ''}")
            return 0
        print(json.dumps(entry(cat, args.entry).describe(), indent=2, default=str))
    return 0


def entry(cat: Any, dotted: str) -> Any:
    """The catalog entry named ``dotted`` (``empiar_entries.10028``), or a DataNotFoundError saying how to list."""
    from perc_platform.errors import DataNotFoundError

    node = cat
    for part in dotted.split("."):
        if part not in node:
            raise DataNotFoundError(f"catalog has no entry {dotted!r}; `perc catalog list` shows the entries")
        node = node[part]
    return node
