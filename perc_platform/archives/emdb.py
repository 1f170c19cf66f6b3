"""EMDB: maps by id (``emd_N.map.gz``, downloaded once into the cache) and entry metadata."""

from __future__ import annotations

import gzip
from pathlib import Path

from perc_platform.archives._fetch import archive_path, fetch_file, fetch_json
from perc_platform.archives._http import Progress, current_config
from perc_platform.archives._ids import emdb_number, validate_emdb_id
from perc_platform.archives._models import EmdbEntry
from perc_platform.errors import FormatError

__all__ = ["emdb_entry_url", "emdb_map_url", "fetch_emdb_entry", "fetch_emdb_map"]


def emdb_map_url(emdb_id: str | int) -> str:
    """``{emdb_files}/structures/EMD-N/map/emd_N.map.gz``."""
    eid, num = validate_emdb_id(emdb_id), emdb_number(emdb_id)
    return f"{current_config().emdb_files_url}/structures/{eid}/map/emd_{num}.map.gz"


def emdb_entry_url(emdb_id: str | int) -> str:
    return f"{current_config().emdb_api_url}/entry/{validate_emdb_id(emdb_id)}"


def _check_gzip(path: str) -> None:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic != b"\x1f\x8b":
        raise FormatError(f"not a gzip file (starts {magic!r})")
    # A cheap check that the stream really decodes (an HTML error page served as 200 does not); the
    # full CRC check runs when the map is first decompressed for reading.
    with gzip.open(path, "rb") as handle:
        handle.read(1024)


def fetch_emdb_map(emdb_id: str | int, *, progress: Progress | None = None, refresh: bool = False) -> Path:
    """Path of ``emd_N.map.gz`` in the cache, downloaded once."""
    eid, num = validate_emdb_id(emdb_id), emdb_number(emdb_id)
    return fetch_file(emdb_map_url(eid), archive_path("emdb", eid, f"emd_{num}.map.gz"), what=f"{eid} map",
                      kind="emdb-map", validate=_check_gzip, progress=progress, refresh=refresh)


def fetch_emdb_entry(emdb_id: str | int, *, refresh: bool = False) -> EmdbEntry:
    """The entry metadata of ``emdb_id`` (resolution, fitted PDB ids, contour level; cached)."""
    eid = validate_emdb_id(emdb_id)
    data = fetch_json(emdb_entry_url(eid), archive_path("emdb", eid, "entry.json"), what=f"{eid} entry metadata",
                      kind="emdb-entry", refresh=refresh)
    return EmdbEntry.model_validate(data)
