"""Fixtures: the loopback archive over ../shared/data plus a folder the test may add archive files to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from perc_platform.testing.archive import ArchiveServer, archive_server

# Facts stated in ../shared/data/api/SHAPES.md (no saved sample exists for them): hen egg-white lysozyme,
# UniProt P00698, has a signal peptide at 1-18, and PDB 1AKI numbers its residues 1-129 for UniProt 19-147.
P00698_FEATURES = {
    "accession": "P00698",
    "entryName": "LYSC_CHICK",
    "features": [
        {"type": "SIGNAL", "category": "MOLECULE_PROCESSING", "begin": "1", "end": "18"},
        {"type": "CHAIN", "category": "MOLECULE_PROCESSING", "begin": "19", "end": "147",
         "description": "Lysozyme C"},
    ],
}
P00698_SIFTS = {"P00698": [{"pdb_id": "1aki", "chain_id": "A", "entity_id": 1, "start": 1, "end": 129,
                            "unp_start": 19, "unp_end": 147, "coverage": 0.878, "resolution": 1.5,
                            "experimental_method": "X-ray diffraction", "tax_id": 9031,
                            "preferred_assembly_id": 1}]}


def write_json(folder: Path, name: str, data: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    """A folder for archive files a test writes itself (served alongside ../shared/data)."""
    folder = tmp_path / "archive-extra"
    folder.mkdir()
    write_json(folder, "proteins_features_P00698.json", P00698_FEATURES)
    write_json(folder, "pdbe_best_structures_P00698.json", P00698_SIFTS)
    return folder


@pytest.fixture
def archive(shared: Path, extra: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArchiveServer]:
    """The loopback archive, with quick retries so fault tests run fast."""
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    monkeypatch.setenv("PERC_RETRIES", "3")
    monkeypatch.setenv("PERC_READ_TIMEOUT", "5")
    with archive_server(shared, extra) as server:
        yield server


def cache_files(cache: Path) -> list[Path]:
    """Every file under the cache except the zero-byte entry lock files."""
    return sorted(p for p in cache.rglob("*") if p.is_file() and not (p.suffix == ".lock" and p.stat().st_size == 0))


def count_settled(server: ArchiveServer, pattern: str, method: str | None = None, expected: int | None = None,
                  timeout: float = 2.0) -> int:
    """Request count for ``pattern`` once the server has logged what it sent (it logs after the body)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        n = server.count(method, pattern)
        if (expected is not None and n >= expected) or time.monotonic() > deadline:
            return n
        if expected is None:
            time.sleep(0.1)
            return server.count(method, pattern)
        time.sleep(0.02)
