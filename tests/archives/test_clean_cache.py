"""A cleaned structure is cached under everything that shapes it: two accessions that both map to 1AKI, with
different signal peptides, get different files and truthful reports (issue 15, "silent wrong data")."""

from __future__ import annotations

from pathlib import Path

import gemmi

from perc_platform import archives
from perc_platform.testing.archive import ArchiveServer

from .conftest import P00698_SIFTS, write_json


def _residues(path: Path) -> list[int]:
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    return [r.seqid.num for ch in st[0] for r in ch if r.entity_type == gemmi.EntityType.Polymer]


def test_two_accessions_on_one_entry_get_their_own_cleaned_files(archive: ArchiveServer, extra: Path,
                                                                  shared: Path) -> None:
    # P12345 is made up for this test: it maps to 1AKI like P00698 but declares a signal peptide 1-25, which
    # reaches 7 residues (1-7) into the chain; P00698's real signal 1-18 removes none.
    write_json(extra, "proteins_features_P12345.json", {"accession": "P12345", "features": [
        {"type": "SIGNAL", "category": "MOLECULE_PROCESSING", "begin": "1", "end": "25"}]})
    write_json(extra, "pdbe_best_structures_P12345.json", {"P12345": P00698_SIFTS["P00698"]})
    archive.index.add(extra / "proteins_features_P12345.json")
    archive.index.add(extra / "pdbe_best_structures_P12345.json")
    full = _residues(shared / "structures" / "1aki.cif")
    first = archives.fetch_structure("P12345", clean=True)
    assert first.choice.source_id == "PDB:1AKI"
    assert _residues(first.path) == [n for n in full if n > 7]
    assert first.clean_report is not None and first.clean_report.signal_residues == 7
    second = archives.fetch_structure("P00698", clean=True)
    assert second.path != first.path
    assert _residues(second.path) == full
    assert second.clean_report is not None and second.clean_report.signal_residues == 0
    again = archives.fetch_structure("P12345", clean=True)  # served from the cache: the same right file
    assert again.path == first.path and _residues(again.path) == [n for n in full if n > 7]
