"""EMPIAR: entry metadata (imagesets) from the EMPIAR API, file discovery from directory listings, downloads.

* :func:`fetch_empiar_entry` turns ``{empiar_api}/entry/{N}/`` into an :class:`EmpiarEntry` whose
  :class:`EmpiarImageset` s carry name, directory, category, data format, counts, image size and pixel size.
* :func:`list_files` walks the Apache-style HTML listings under ``{empiar_files}/{N}/`` (recursively, a
  level at a time with bounded concurrency) and selects files by glob (:func:`fnmatch.fnmatchcase`, on
  the path relative to the folder listed, or on the file name when the pattern has no ``/``) or by regex
  (:func:`re.search` on that relative path).
* Entry metadata and listings are cached in the platform cache with a time-to-live (``ttl`` seconds); a
  stale or missing record is fetched again, and with ``PERC_OFFLINE`` the cached record is used however old.
* Downloads (:func:`download_files`) are resumable: see :mod:`perc_platform.archives._resume`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import html
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field, field_validator

from perc_platform.archives import _http
from perc_platform.archives._fetch import (
    DEFAULT_CONCURRENCY,
    FetchOutcome,
    ManyProgress,
    archive_path,
    fetch_many,
)
from perc_platform.archives._ids import empiar_number, validate_empiar_id
from perc_platform.archives._models import _Answer
from perc_platform.archives._resume import download_resumable
from perc_platform.config import get_config
from perc_platform.errors import DataNotFoundError, ParameterError, RemoteError
from perc_platform.storage.cache import atomic_file, entry_lock, record

__all__ = [
    "DEFAULT_TTL",
    "EmpiarEntry",
    "EmpiarFile",
    "EmpiarImageset",
    "download_files",
    "empiar_entry_url",
    "empiar_files_url",
    "entry_from_xml",
    "fetch_empiar_entry",
    "list_files",
    "parse_listing",
    "select_files",
]

#: Default time-to-live (seconds) of cached entry metadata and directory listings.
DEFAULT_TTL = 24 * 3600.0
#: Folders deeper than this below the listed one are not walked (real entries are a few levels deep).
MAX_DEPTH = 12
#: Directory listings fetched at once while walking a tree.
LISTING_CONCURRENCY = 8

ImagesetKind = Literal["particles", "micrographs", "movies", "tilt_series", "tomograms", "subtomograms", "other"]


class EmpiarImageset(_Answer):
    """One imageset of an EMPIAR entry (the fields of the API's ``imagesets`` list that we use)."""

    name: str = ""
    directory: str = ""
    category: str = ""
    header_format: str = ""
    data_format: str = ""
    num_images_or_tilt_series: int | None = None
    frames_per_image: int | None = None
    voxel_type: str = ""
    pixel_width: float | None = None
    pixel_height: float | None = None
    image_width: int | None = None
    image_height: int | None = None
    details: str = ""
    micrographs_file_pattern: str = ""

    @field_validator("num_images_or_tilt_series", "frames_per_image", "image_width", "image_height",
                     "pixel_width", "pixel_height", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # The API serves some numbers as strings, and "" or null when unknown.
        return None if value in ("", None) else value

    @field_validator("name", "category", "header_format", "data_format", "voxel_type", "details",
                     "micrographs_file_pattern", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("directory", mode="after")
    @classmethod
    def _relative(cls, value: str) -> str:
        # The XML writes "/data/...", the JSON "data/..."; both are relative to the entry's folder.
        clean = value.strip().strip("/")
        if ".." in clean.split("/"):
            raise ValueError(f"imageset directory {value!r} climbs out of the entry")
        return clean

    @property
    def kind(self) -> ImagesetKind:
        """What the images are, from the category (and frame count): decides the dataset's dims."""
        category = self.category.lower()
        if "particle" in category or "class average" in category:
            return "particles"
        if "micrograph" in category:
            multi = "multiframe" in category or "multi-frame" in category or (self.frames_per_image or 1) > 1
            return "movies" if multi else "micrographs"
        if "tilt series" in category or "tilt-series" in category:
            return "tilt_series"
        if "subtomogram" in category:
            return "subtomograms"
        if "tomogram" in category or "reconstructed volume" in category:
            return "tomograms"
        return "other"


class EmpiarEntry(_Answer):
    """An EMPIAR entry: id, title, imagesets and related EMDB ids."""

    empiar_id: str
    title: str = ""
    imagesets: list[EmpiarImageset] = Field(default_factory=list)
    emdb_ids: list[str] = Field(default_factory=list)
    dataset_size: str = ""

    def keyed_imagesets(self) -> dict[str, EmpiarImageset]:
        """Imagesets by catalog key: the kind (``particles``...) when unique, else ``<kind>_<folder>``."""
        kinds = [s.kind for s in self.imagesets]
        keys: dict[str, EmpiarImageset] = {}
        for imageset in self.imagesets:
            key: str = imageset.kind
            if kinds.count(imageset.kind) > 1:
                folder = re.sub(r"\W+", "_", imageset.directory.rsplit("/", 1)[-1]).strip("_").lower()
                key = folder if folder.startswith(key) else f"{key}_{folder}" if folder else key
            base, n = key, 2
            while key in keys:
                key, n = f"{base}_{n}", n + 1
            keys[key] = imageset
        return keys

    def imageset(self, key: str) -> EmpiarImageset:
        """The imageset with catalog key, name or directory ``key``."""
        keyed = self.keyed_imagesets()
        if key in keyed:
            return keyed[key]
        for imageset in self.imagesets:
            if key in (imageset.name, imageset.directory):
                return imageset
        raise DataNotFoundError(f"{self.empiar_id} has no imageset {key!r}; it has {', '.join(keyed) or 'none'}")


def entry_from_json(empiar_id: str, data: Any) -> EmpiarEntry:
    """Parse the API answer ``{"EMPIAR-N": {...}}`` (or the inner object) into an :class:`EmpiarEntry`."""
    body = data.get(empiar_id, data) if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise RemoteError(f"{empiar_id} entry metadata is not a JSON object (got {type(data).__name__})")
    refs = body.get("cross_references") or []
    emdb = [str(r.get("name")) for r in refs if isinstance(r, dict) and str(r.get("name", "")).startswith("EMD-")]
    return EmpiarEntry(empiar_id=empiar_id, title=body.get("title") or "", imagesets=body.get("imagesets") or [],
                       emdb_ids=emdb, dataset_size=str(body.get("dataset_size") or ""))


_XML_FIELDS = {"name": "name", "directory": "directory", "category": "category", "headerFormat": "header_format",
               "dataFormat": "data_format", "numImagesOrTiltSeries": "num_images_or_tilt_series",
               "framesPerImage": "frames_per_image", "voxelType": "voxel_type", "imageWidth": "image_width",
               "imageHeight": "image_height", "pixelWidth": "pixel_width", "pixelHeight": "pixel_height",
               "details": "details", "micrographsFilePattern": "micrographs_file_pattern"}


def entry_from_xml(text: str | bytes) -> dict[str, Any]:
    """The API's JSON shape (``{"EMPIAR-N": {...}}``) from an entry XML (``{empiar_files}/{N}/{N}.xml``)."""
    root = ET.fromstring(text)

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    empiar_id = validate_empiar_id(root.get("accessionCode", ""))
    title = next((el.text or "" for el in root.iter() if local(el.tag) == "title"), "")
    imagesets = []
    for node in (el for el in root if local(el.tag) == "imageSet"):
        fields = {_XML_FIELDS[local(el.tag)]: (el.text or "").strip() for el in node.iter()
                  if local(el.tag) in _XML_FIELDS}
        imagesets.append(fields)
    emdb = [{"name": (el.text or "").strip()} for el in root.iter() if local(el.tag) == "emdbEntry"]
    return {empiar_id: {"title": title, "imagesets": imagesets, "cross_references": emdb}}


def empiar_entry_url(empiar_id: str | int) -> str:
    """``{empiar_api}/entry/{N}/``."""
    return f"{get_config().empiar_api_url}/entry/{empiar_number(empiar_id)}/"


def empiar_files_url(empiar_id: str | int, path: str = "") -> str:
    """``{empiar_files}/{N}/{path}`` (``path`` relative to the entry's folder)."""
    return f"{get_config().empiar_files_url}/{empiar_number(empiar_id)}/{path.lstrip('/')}"


def _fresh(path: Path, ttl: float) -> bool:
    if not path.exists():
        return False
    return get_config().offline or time.time() - path.stat().st_mtime < ttl


def _cached_json(path: Path, ttl: float, fetch: Callable[[], Any], kind: str, key: str) -> Any:
    """``fetch()`` cached as JSON in ``path`` for ``ttl`` seconds (written atomically, locked per entry)."""
    if _fresh(path, ttl):
        return json.loads(path.read_text(encoding="utf-8"))
    with entry_lock(path):
        if _fresh(path, ttl):
            return json.loads(path.read_text(encoding="utf-8"))
        if get_config().offline:
            raise DataNotFoundError(f"{key} is not in the cache and PERC_OFFLINE is set; look it up once online")
        data = fetch()
        with atomic_file(path) as (handle, _):
            handle.write(json.dumps(data).encode())
        record(kind, key, path)
    return data


def fetch_empiar_entry(empiar_id: str | int, *, ttl: float = DEFAULT_TTL) -> EmpiarEntry:
    """Metadata of an EMPIAR entry (``EMPIAR-10934``, ``10934``), cached for ``ttl`` seconds."""
    eid = validate_empiar_id(empiar_id)
    url = empiar_entry_url(eid)
    data = _cached_json(archive_path("empiar", eid, "entry.json"), ttl,
                        lambda: _http.get_json(url, what=f"{eid} entry metadata"), "empiar-entry", eid)
    return entry_from_json(eid, data)


class EmpiarFile(_Answer):
    """A file of an entry: its path relative to the entry's folder, URL, and size when the listing says."""

    path: str
    url: str
    size: int | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


_ANCHOR = re.compile(r"<a\s[^>]*?href\s*=\s*[\"']([^\"']+)[\"'][^>]*>.*?</a>(.*?)(?=<a\s|</table|</pre|$)",
                     re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SIZE = re.compile(r"^\d+(?:\.\d+)?[KMGTP]?$", re.IGNORECASE)


def parse_listing(text: str) -> list[tuple[str, int | None]]:
    """``(name, size)`` for each child of an Apache/nginx-style HTML listing; folders end in ``/``.

    Parent, sort (``?C=N;O=D``), absolute and off-site links are skipped; a size is kept only when the
    listing gives it in bytes (``1.2G`` is not exact enough to check a download against).
    """
    out: list[tuple[str, int | None]] = []
    seen: set[str] = set()
    for href, tail in _ANCHOR.findall(text):
        name = unquote(html.unescape(href))
        if name.startswith(("?", "#", "/", ".")) or "://" in name or "/" in name.rstrip("/") or name in seen:
            continue
        seen.add(name)
        tokens = html.unescape(_TAG.sub(" ", tail)).split()
        sizes = [t for t in tokens if _SIZE.match(t)]
        size = int(sizes[-1]) if sizes and sizes[-1].isdigit() and not name.endswith("/") else None
        out.append((name, size))
    return out


def _listing(eid: str, folder: str, ttl: float) -> list[tuple[str, int | None]]:
    url = empiar_files_url(eid, folder.rstrip("/") + "/" if folder else "")
    key = hashlib.sha256(url.encode()).hexdigest()[:20]

    def fetch() -> list[tuple[str, int | None]]:
        body = _http.get_bytes(url, what=f"{eid} folder listing {folder or '/'}")
        return parse_listing(body.decode("utf-8", errors="replace"))

    rows = _cached_json(archive_path("empiar", eid, "listings", f"{key}.json"), ttl, fetch, "empiar-listing", url)
    return [(str(name), None if size is None else int(size)) for name, size in rows]


def _start_folder(pattern: str | None) -> tuple[str, str | None]:
    """Split a glob's literal leading folders off, so that only the folders it can match are walked."""
    if not pattern or "/" not in pattern:
        return "", pattern
    parts = pattern.split("/")
    literal: list[str] = []
    while len(parts) > 1 and not any(c in parts[0] for c in "*?["):
        literal.append(parts.pop(0))
    return "/".join(literal), "/".join(parts)


def select_files(files: Sequence[EmpiarFile], base: str = "", pattern: str | None = None,
                 regex: str | None = None) -> list[EmpiarFile]:
    """Files whose path below ``base`` matches the glob ``pattern`` and the regex ``regex`` (both optional)."""
    try:
        compiled = re.compile(regex) if regex else None
    except re.error as exc:
        raise ParameterError(f"regex {regex!r} is not a valid regular expression: {exc}") from None
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    chosen = []
    for f in files:
        rel = f.path[len(prefix):] if f.path.startswith(prefix) else f.path
        if pattern and not fnmatch.fnmatchcase(rel if "/" in pattern else f.name, pattern):
            continue
        if compiled is not None and not compiled.search(rel):
            continue
        chosen.append(f)
    return chosen


def list_files(empiar_id: str | int, directory: str = "", *, pattern: str | None = None, regex: str | None = None,
               recursive: bool = True, ttl: float = DEFAULT_TTL) -> list[EmpiarFile]:
    """Files under ``directory`` of an entry (sorted by path), selected by glob ``pattern`` and/or ``regex``.

    ``directory`` is relative to the entry's folder (e.g. an imageset's ``directory``); patterns and regexes
    apply to paths relative to it. Listings are fetched a level at a time, several at once, and cached.
    """
    eid = validate_empiar_id(empiar_id)
    base = directory.strip("/")
    start, rest = _start_folder(pattern)
    top = "/".join(p for p in (base, start) if p)
    if ".." in top.split("/"):
        raise ParameterError(f"directory {directory!r} / pattern {pattern!r} climbs out of the entry; give a path "
                             "inside it")
    level = [top]
    found: list[EmpiarFile] = []
    with ThreadPoolExecutor(max_workers=LISTING_CONCURRENCY, thread_name_prefix="perc-empiar-list") as pool:
        for depth in range(MAX_DEPTH + 1):
            if not level:
                break
            following: list[str] = []
            for folder, rows in zip(level, pool.map(lambda d: _listing(eid, d, ttl), level), strict=True):
                for name, size in rows:
                    path = f"{folder}/{name}" if folder else name
                    if name.endswith("/"):
                        if recursive and depth < MAX_DEPTH:
                            following.append(path.rstrip("/"))
                    else:
                        found.append(EmpiarFile(path=path, url=empiar_files_url(eid, path), size=size))
            level = following
    found.sort(key=lambda f: f.path)
    return select_files(select_files(found, top, rest), base, regex=regex)


def _inside(root: Path, f: EmpiarFile) -> Path:
    """Where ``f`` goes below ``root``; a path that would leave it (``..``, absolute, empty parts) is refused."""
    parts = f.path.split("/")
    decoded = unquote(f.path).replace("\\", "/")  # what a server or a later tool may make of it
    if not f.path or decoded.startswith("/") or any(p in ("", ".", "..") or "\x00" in p
                                                      for p in (*parts, *decoded.split("/"))):
        raise ParameterError(f"{f.url}: its path {f.path!r} would be written outside the download folder {root} "
                             "(an empty, '.' or '..' part, or an absolute path); refusing to download it")
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise ParameterError(f"{f.url}: {target} resolves outside the download folder {root} (a symbolic link?); "
                             "refusing to download it")
    return target


def download_files(files: Sequence[EmpiarFile], dest: str | Path, *, jobs: int = 4,
                   progress: Callable[[int, int], None] | None = None, on_file: ManyProgress | None = None,
                   checksums: dict[str, str] | None = None) -> list[FetchOutcome[EmpiarFile, Path]]:
    """Download ``files`` below ``dest`` (keeping their entry-relative paths), ``jobs`` at a time.

    Each file is written to ``.<name>.part`` beside its target and renamed into place only when its size
    (and, when ``checksums`` maps its path to ``"sha256:<hex>"`` or ``"md5:<hex>"``, its checksum) is right;
    an interrupted file is resumed by Range on the next try or run. Files already present with the right
    size are skipped. ``progress(done_bytes, total_bytes)`` covers all files; ``on_file`` is called as each
    file ends. One failing file does not stop the others: its outcome carries the error.
    """
    if jobs < 1 or jobs > 4 * DEFAULT_CONCURRENCY:
        raise ParameterError(f"jobs={jobs}: give 1 to {4 * DEFAULT_CONCURRENCY} downloads at once")
    root = Path(dest)
    targets = {f.path: _inside(root, f) for f in files}  # every path checked before anything is written
    done: dict[str, int] = {}
    sizes = {f.path: f.size or 0 for f in files}  # completed as the servers tell sizes the listings did not
    lock = threading.Lock()

    for f in files:  # files already in place count as done, so the totals cover the whole selection
        have = targets[f.path]
        if have.exists() and (f.size is None or have.stat().st_size == f.size):
            done[f.path] = sizes[f.path] = have.stat().st_size
    if done and progress is not None:
        progress(sum(done.values()), max(sum(done.values()), sum(sizes.values())))

    def one(f: EmpiarFile) -> Path:
        def moved(n: int, size: int | None) -> None:
            with lock:
                done[f.path], sizes[f.path] = n, size or sizes[f.path]
                now, total = sum(done.values()), sum(sizes.values())
            if progress is not None:
                progress(now, max(now, total))

        return download_resumable(f.url, targets[f.path], what=f"EMPIAR file {f.path}",
                                  size=f.size, checksum=(checksums or {}).get(f.path), progress=moved)

    return fetch_many(one, files, max_workers=jobs, progress=on_file)
