"""``perc empiar info|search|download``: browse an EMPIAR entry, find files, download them (resumable)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("empiar", help="EMPIAR entries: imagesets, file search, downloads")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="an entry's title and imagesets")
    search = actions.add_parser("search", help="list an entry's files matching a glob and/or regex")
    download = actions.add_parser("download", help="download an entry's matching files (resumable)")
    for p in (info, search, download):
        p.add_argument("--entry", required=p is not download, help="EMPIAR id (EMPIAR-10934 or 10934)")
        p.add_argument("--refresh", action="store_true", help="ignore cached metadata and listings")
    for p in (search, download):
        p.add_argument("--dir", default="", help="folder inside the entry to search (e.g. an imageset directory)")
        p.add_argument("--select", default=None, help='glob on paths below --dir, or on names if it has no "/"')
        p.add_argument("--regex", default=None, help="regular expression searched in paths below --dir")
    search.add_argument("--output", type=Path, help="also write the URLs to this file (for `download --from`)")
    download.add_argument("--from", dest="from_file", type=Path, help="file of URLs written by `search --output`")
    download.add_argument("--dest", type=Path, default=Path("."), help="download folder (default: current)")
    download.add_argument("--checksums", type=Path, default=None,
                          help="md5sum/sha256sum-style file ('<hex>  <path>' lines, paths relative to the entry); "
                               "each file named there is checked before it is put in place")
    download.add_argument("-j", "--jobs", type=int, default=4, help="downloads run at once (default 4)")
    for p in (info, search, download):
        p.set_defaults(func=run)


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


class _Bar:
    """A one-line byte progress bar on stderr, redrawn at most 10 times a second (and at the end)."""

    def __init__(self, total_files: int) -> None:
        self.total_files, self.files = total_files, 0
        self.started = self.shown = time.perf_counter()
        self.lock = threading.Lock()
        self.done, self.total = 0, 0

    def bytes(self, done: int, total: int) -> None:
        with self.lock:
            self.done, self.total = done, total
            if time.perf_counter() - self.shown > 0.1:
                self._draw()

    def file(self, done: int, total: int, outcome: Any) -> None:
        with self.lock:
            self.files = done
            self._draw(end="\n" if done >= total else "")

    def _draw(self, end: str = "") -> None:
        self.shown = time.perf_counter()
        rate = self.done / max(self.shown - self.started, 1e-6)
        width = 30
        fill = int(width * self.done / self.total) if self.total else 0
        print(f"\r[{'#' * fill}{'.' * (width - fill)}] {_size(self.done)}/{_size(self.total or None)} "
              f"{self.files}/{self.total_files} files {_size(rate)}/s", end=end, file=sys.stderr, flush=True)


def _files(args: argparse.Namespace) -> list[Any]:
    from perc_platform.archives.empiar import DEFAULT_TTL, EmpiarFile, list_files
    from perc_platform.config import get_config
    from perc_platform.errors import ParameterError

    ttl = 0.0 if args.refresh else DEFAULT_TTL
    if getattr(args, "from_file", None) is not None:
        base = get_config().empiar_files_url + "/"
        try:
            urls = [u.strip() for u in args.from_file.read_text(encoding="utf-8").splitlines() if u.strip()]
        except FileNotFoundError:
            raise ParameterError(f"URL file {args.from_file} does not exist") from None
        outside = [u for u in urls if not u.startswith(base)]
        if outside:
            raise ParameterError(f"{outside[0]} is not under the EMPIAR files URL {base}; set PERC_EMPIAR_FILES_URL")
        # {files}/{N}/{path}: files land at --dest/{path}, as with --entry.
        return [EmpiarFile(path=u[len(base):].partition("/")[2], url=u) for u in urls]
    if not args.entry:
        raise ParameterError("give --entry (with --select/--regex) or --from a file of URLs")
    files = list_files(args.entry, args.dir, pattern=args.select, regex=args.regex, ttl=ttl)
    if not files:
        from perc_platform.errors import DataNotFoundError

        chosen = " and ".join(f"{k} {v!r}" for k, v in (("--select", args.select), ("--regex", args.regex)) if v)
        raise DataNotFoundError(f"no file of {args.entry} under {args.dir or '/'!r} matches "
                                f"{chosen or 'anything'}; check the pattern with `perc empiar search`")
    return files


def _checksums(path: Path, files: list[Any]) -> dict[str, str]:
    """``{entry path: "md5:<hex>"}`` from an md5sum/sha256sum file (32 hex digits: md5, 64: sha256)."""
    from perc_platform.errors import ParameterError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ParameterError(f"checksum file {path} does not exist") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*").removeprefix("./")
        kind = {32: "md5", 64: "sha256"}.get(len(digest))
        if kind is None or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ParameterError(f"{path}: line {number} is not '<md5 or sha256 hex>  <path>': {line[:80]!r}")
        listed[name] = f"{kind}:{digest.lower()}"
    out = {}
    for f in files:
        match = listed.get(f.path) or next((v for k, v in listed.items() if f.path.endswith("/" + k)), None)
        if match is not None:
            out[f.path] = match
    return out


def run(args: argparse.Namespace) -> int:
    from perc_platform.archives.empiar import DEFAULT_TTL, download_files, fetch_empiar_entry

    if args.action == "info":
        entry = fetch_empiar_entry(args.entry, ttl=0.0 if args.refresh else DEFAULT_TTL)
        print(f"{entry.empiar_id}\t{entry.title}")
        for key, s in entry.keyed_imagesets().items():
            print(f"{key}\t{s.directory}\t{s.category}\t{s.data_format}\t{s.num_images_or_tilt_series} images\t"
                  f"{s.image_width}x{s.image_height}\t{s.pixel_width} A/px\t{s.name}")
        return 0
    files = _files(args)
    if args.action == "search":
        for f in files:
            print(f"{f.url}\t{f.size if f.size is not None else '?'}")
        if args.output is not None:
            args.output.write_text("".join(f"{f.url}\n" for f in files), encoding="utf-8")
        print(f"{len(files)} file(s), {_size(sum(f.size or 0 for f in files))} listed", file=sys.stderr)
        return 0
    bar = _Bar(len(files))
    sums = _checksums(args.checksums, files) if args.checksums is not None else None
    outcomes = download_files(files, args.dest, jobs=args.jobs, progress=bar.bytes, on_file=bar.file,
                              checksums=sums)
    for outcome in outcomes:
        print(f"{outcome.value}" if outcome.ok else f"{outcome.key.url}\tFAILED\t{outcome.error}")
    failed = sum(not o.ok for o in outcomes)
    if failed:
        print(f"perc: {failed} of {len(outcomes)} download(s) failed; run the same command again to resume",
              file=sys.stderr)
    return 1 if failed else 0
