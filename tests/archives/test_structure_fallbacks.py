"""Structures the way profet users expect: next SIFTS candidate on 404, pdb/cif fallback, save to a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import gemmi
import pytest

from perc_platform.archives import fetch_structure
from perc_platform.cli.main import main
from perc_platform.testing.archive import ArchiveServer

from .conftest import P00698_SIFTS, write_json


def _atoms(path: Path) -> int:
    structure = gemmi.read_structure(str(path))
    return sum(1 for _ in structure[0].all())


def test_a_missing_best_candidate_gives_the_next_one_before_alphafold(archive: ArchiveServer, extra: Path,
                                                                       shared: Path) -> None:
    best = dict(P00698_SIFTS["P00698"][0], pdb_id="9zzz", coverage=0.99)  # ranked first, absent from the archive
    write_json(extra, "pdbe_best_structures_P00698.json", {"P00698": [best, *P00698_SIFTS["P00698"]]})
    fetched = fetch_structure("P00698")
    assert fetched.choice.source == "pdb" and fetched.choice.pdb_id.upper() == "1AKI"
    assert "9ZZZ" in fetched.choice.reason.upper()
    assert archive.count("GET", "/rcsb/download/9ZZZ*") >= 1
    assert _atoms(fetched.path) == _atoms(shared / "structures" / "1aki.cif")


@pytest.fixture
def one_format_entries(extra: Path, shared: Path) -> None:
    """3AKI served only as mmCIF, 4AKI only in PDB format (copies of 1AKI); written before the server starts."""
    shutil.copy(shared / "structures" / "1aki.cif", extra / "3aki.cif")
    shutil.copy(shared / "structures" / "1aki.pdb", extra / "4aki.pdb")


def test_an_entry_without_the_asked_format_gives_the_other(one_format_entries: None, archive: ArchiveServer,
                                                           shared: Path) -> None:
    fetched = fetch_structure("3AKI", fmt="pdb")
    assert fetched.format == "cif" and fetched.path.suffix == ".cif"
    assert "no pdb file, cif fetched instead" in fetched.choice.reason
    assert _atoms(fetched.path) == _atoms(shared / "structures" / "1aki.cif")
    other = fetch_structure("4AKI", fmt="cif")  # and the other way round
    assert other.format == "pdb" and _atoms(other.path) == _atoms(shared / "structures" / "1aki.pdb")


def test_save_to_a_folder_and_perc_fetch_out(archive: ArchiveServer, shared: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fetched = fetch_structure("1AKI", save_to=tmp_path / "mine")
    assert fetched.path == tmp_path / "mine" / "1AKI.cif"
    assert _atoms(fetched.path) == _atoms(shared / "structures" / "1aki.cif")
    assert fetched.original != fetched.path and fetched.original.exists()  # the cache keeps its copy
    assert main(["fetch", "structure", "1AKI", "--format", "pdb", "--out", str(tmp_path / "cli")]) == 0
    saved = tmp_path / "cli" / "1AKI.pdb"
    assert str(saved) in capsys.readouterr().out
    assert _atoms(saved) == _atoms(shared / "structures" / "1aki.pdb")


def test_a_cached_alphafold_model_stays_readable_after_the_endpoint_changes(
        archive: ArchiveServer, shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = fetch_structure("Q99J21", prefer="alphafold", fmt="pdb")
    assert first.choice.source_id == "AFDB:AF-Q99J21-F1"
    # the lab moves to a mirror on another host (named localhost here, a closed port); the cached model opens
    from perc_platform.config import get_config

    for name in type(get_config()).model_fields:
        if name.endswith("_url"):
            monkeypatch.setenv(f"PERC_{name.upper()}", "http://localhost:9/mirror")
    archive.reset_counts()
    again = fetch_structure("Q99J21", prefer="alphafold", fmt="pdb")
    assert again.path == first.path and archive.requests == []
    assert _atoms(again.path) == _atoms(shared / "structures" / "AF-Q99J21-F1-model_v2.pdb")


def test_cached_sifts_and_alphafold_metadata_refresh_after_the_ttl(archive: ArchiveServer, extra: Path) -> None:
    import os

    from perc_platform.archives import _fetch, alphafold, sifts
    from perc_platform.archives._fetch import archive_path

    assert [m.pdb_id for m in sifts.best_structures("P00698")] == ["1aki"]
    newer = dict(P00698_SIFTS["P00698"][0], pdb_id="2aki")
    write_json(extra, "pdbe_best_structures_P00698.json", {"P00698": [newer, *P00698_SIFTS["P00698"]]})
    assert [m.pdb_id for m in sifts.best_structures("P00698")] == ["1aki"]  # within the TTL: the cached answer
    cached = archive_path("pdbe", "best_structures", "P00698.json")
    old = cached.stat().st_mtime - _fetch.METADATA_TTL - 60
    os.utime(cached, (old, old))
    assert [m.pdb_id for m in sifts.best_structures("P00698")] == ["2aki", "1aki"]
    alphafold.afdb_predictions("Q99J21")
    prediction = archive_path("afdb", "prediction", "Q99J21.json")
    os.utime(prediction, (old, old))
    archive.reset_counts()
    alphafold.afdb_predictions("Q99J21")
    assert archive.count("GET", "*prediction/Q99J21*") == 1


def _gemmi_counts(path: Path, chain: str) -> dict[str, int]:
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    st.remove_alternative_conformations()
    counts = {"entry": 0, "chain": 0, "ligands": 0}
    for ch in st[0]:
        for residue in ch:
            counts["entry"] += len(residue)
            if ch.name == chain and residue.entity_type == gemmi.EntityType.Polymer:
                counts["chain"] += len(residue)
            if ch.name == chain and residue.entity_type == gemmi.EntityType.NonPolymer:
                counts["ligands"] += len(residue)
    return counts


def test_a_uniprot_query_gives_the_mapped_chain_its_ligands_or_the_entry_on_request(
        archive: ArchiveServer, shared: Path) -> None:
    from perc_platform.datasets.structures import open_structure_by_id

    expected = _gemmi_counts(shared / "structures" / "1aki.cif", "A")
    chain = open_structure_by_id("P00698")
    assert chain.sizes["atom"] == expected["chain"] and set(chain["chain_id"].values) == {"A"}
    assert not chain["hetero"].values.any() and "HOH" not in set(chain["res_name"].values)
    with_ligands = open_structure_by_id("P00698", ligands=True)
    assert with_ligands.sizes["atom"] == expected["chain"] + expected["ligands"]
    entry = open_structure_by_id("P00698", select="entry")
    assert entry.sizes["atom"] == expected["entry"] > expected["chain"]  # 1AKI has waters
    assert entry.attrs["selection"] == "entry" and chain.attrs["selection"] == "chain A"
    assert open_structure_by_id("1AKI").sizes["atom"] == expected["entry"]  # a PDB id: the whole entry
