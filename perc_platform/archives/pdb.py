"""The RCSB PDB file service: entries by id as mmCIF or PDB files, cached."""

from __future__ import annotations

from pathlib import Path

from perc_platform.archives._fetch import archive_path, fetch_file
from perc_platform.archives._formats import check_structure_file, normalise_format
from perc_platform.archives._http import Progress, current_config
from perc_platform.archives._ids import validate_pdb_id

__all__ = ["fetch_pdb_file", "pdb_cache_path", "pdb_file_url"]


def pdb_file_url(pdb_id: str, fmt: str = "cif") -> str:
    """``{rcsb_files}/download/{ID}.{cif|pdb}``."""
    return f"{current_config().rcsb_files_url}/download/{validate_pdb_id(pdb_id)}.{normalise_format(fmt)}"


def pdb_cache_path(pdb_id: str, fmt: str = "cif") -> Path:
    return archive_path("pdb", f"{validate_pdb_id(pdb_id)}.{normalise_format(fmt)}")


def fetch_pdb_file(pdb_id: str, fmt: str = "cif", *, progress: Progress | None = None,
                   refresh: bool = False) -> Path:
    """Path of PDB entry ``pdb_id`` in the cache, downloaded once (checked to parse before it is cached).

    Large entries have no PDB-format file; the 404 error then says so and suggests mmCIF.
    """
    pid, ext = validate_pdb_id(pdb_id), normalise_format(fmt)
    what = f"PDB entry {pid} ({'mmCIF' if ext == 'cif' else 'PDB format; large entries exist only as mmCIF'})"
    return fetch_file(pdb_file_url(pid, ext), pdb_cache_path(pid, ext), what=what, kind="pdb",
                      validate=lambda path: check_structure_file(path, ext), progress=progress, refresh=refresh)
