"""Acceptance 4: a second fetch of the same id makes no request, and offline mode serves it from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perc_platform import archives
from perc_platform.archives import fetch_many, text_progress
from perc_platform.datasets.structures import open_structure_by_id
from perc_platform.errors import DataNotFoundError
from perc_platform.testing.archive import ArchiveServer

from .conftest import count_settled


@pytest.mark.parametrize(("query", "prefer", "clean"), [("P00698", "pdb", True), ("Q99J21", "alphafold", False),
                                                        ("1AKI", "pdb", False), ("Q99J21", "pdb", False)])
def test_second_fetch_is_a_cache_hit_and_offline_serves_it(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch,
                                                           query: str, prefer: str, clean: bool) -> None:
    first = open_structure_by_id(query, prefer=prefer, clean=clean)  # type: ignore[arg-type]
    assert count_settled(archive, "*") > 0
    archive.reset_counts()
    second = open_structure_by_id(query, prefer=prefer, clean=clean)  # type: ignore[arg-type]
    assert count_settled(archive, "*") == 0
    monkeypatch.setenv("PERC_OFFLINE", "1")
    offline = open_structure_by_id(query, prefer=prefer, clean=clean)  # type: ignore[arg-type]
    assert count_settled(archive, "*") == 0
    for ds in (second, offline):
        assert ds.attrs["source_id"] == first.attrs["source_id"]
        assert ds["position"].equals(first["position"])


def test_emdb_map_second_open_and_offline(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from perc_platform.datasets.emdb import open_emdb_map

    first = open_emdb_map("EMD-5168")
    archive.reset_counts()
    monkeypatch.setenv("PERC_OFFLINE", "1")
    again = open_emdb_map("emd_5168")
    assert count_settled(archive, "*") == 0
    assert float(again.sum()) == float(first.sum())


def test_offline_without_cache_says_so(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match=r"PDBe best_structures for P00698 is not in the cache .*PERC_OFFLINE"):
        archives.fetch_structure("P00698")
    assert archive.count() == 0


def test_manifest_lists_every_download(archive: ArchiveServer, isolated_cache: Path, shared: Path) -> None:
    archives.fetch_structure("P00698", clean=True)
    lines = [json.loads(line) for line in (isolated_cache / "manifest.jsonl").read_text().splitlines()]
    kinds = [line["kind"] for line in lines]
    assert kinds == ["pdbe-best-structures", "pdb", "uniprot-features", "cleaned"]
    pdb_line = lines[1]
    assert pdb_line["path"] == "archives/pdb/1AKI.cif" and pdb_line["url"].endswith("/rcsb/download/1AKI.cif")
    import hashlib

    assert pdb_line["sha256"] == hashlib.sha256((shared / "structures" / "1aki.cif").read_bytes()).hexdigest()


def test_fetch_many_is_bounded_ordered_and_reports_progress(archive: ArchiveServer) -> None:
    import io
    import threading
    import time

    out = io.StringIO()
    ids = ["1AKI", "P00698", "Q99J21", "P12345", "bad/id"]
    lock, running, peak = threading.Lock(), [0], [0]

    def fetch(query: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.05)
            return archives.fetch_structure(query).choice.source_id
        finally:
            with lock:
                running[0] -= 1

    outcomes = fetch_many(fetch, ids, max_workers=2, progress=text_progress(out))
    assert peak[0] == 2
    assert [o.key for o in outcomes] == ids
    assert [o.value for o in outcomes[:3]] == ["PDB:1AKI", "PDB:1AKI", "AFDB:AF-Q99J21-F1"]
    assert not outcomes[3].ok and isinstance(outcomes[3].error, DataNotFoundError)
    assert not outcomes[4].ok
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("[5/5]")


def test_a_cached_miss_is_asked_again_after_a_day(archive: ArchiveServer, isolated_cache: Path) -> None:
    import os
    import time

    from perc_platform.archives.sifts import best_structures

    assert best_structures("Q99J21") == []  # nothing maps: cached as a miss
    assert best_structures("Q99J21") == [] and count_settled(archive, "/pdbe/*") == 1
    cached = isolated_cache / "archives" / "pdbe" / "best_structures" / "Q99J21.json"
    day_ago = time.time() - 25 * 3600
    os.utime(cached, (day_ago, day_ago))
    best_structures("Q99J21")
    assert count_settled(archive, "/pdbe/*", expected=2) == 2
