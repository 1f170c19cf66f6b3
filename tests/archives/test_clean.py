"""Acceptance 2: cleaning is residue-exact, checked against independent counts made with gemmi.

Data: hen lysozyme P00698 (signal peptide 1-18) and PDB 1AKI (residues 1-129 = UniProt 19-147): the
features and SIFTS answers are written by conftest.py from the facts stated in ../shared/data/api/SHAPES.md
(no saved sample exists). For the AlphaFold case the real model AF-Q99J21-F1 (../shared/data/structures)
is used with a features answer WRITTEN BY THIS TEST that declares a signal peptide at 1-18 for Q99J21:
that feature is not a claim about the real protein (mouse TRPML1), only a known range to remove from a
model numbered like UniProt. The AlphaFold model for P00698 itself is not in ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import pytest

from perc_platform import archives
from perc_platform.archives._clean import CleanOptions, map_signal_identity, map_signal_sifts
from perc_platform.archives._models import SiftsMapping
from perc_platform.datasets.structures import open_structure_by_id
from perc_platform.testing.archive import ArchiveServer

from .conftest import write_json

SIGNAL = (1, 18)


def census(path: Path) -> dict[str, object]:
    """Independent counts from gemmi: polymer residues (by number), waters, other hetero residues, H atoms."""
    st = gemmi.read_structure(str(path))
    st.setup_entities()
    polymer, waters, hetero, hydrogens, atoms = [], 0, 0, 0, 0
    for chain in st[0]:
        for res in chain:
            atoms += len(res)
            hydrogens += sum(a.is_hydrogen() for a in res)
            if res.is_water():
                waters += 1
            elif res.entity_type == gemmi.EntityType.Polymer:
                polymer.append((chain.name, res.seqid.num, res.name))
            elif res.het_flag == "H":
                hetero += 1
    return {"polymer": polymer, "waters": waters, "hetero": hetero, "hydrogens": hydrogens, "atoms": atoms}


@pytest.mark.parametrize("fmt", ["cif", "pdb"])
def test_1aki_keeps_every_protein_residue_and_loses_waters_and_hetero(archive: ArchiveServer, shared: Path,
                                                                      fmt: str) -> None:
    fetched = archives.fetch_structure("P00698", prefer="pdb", fmt=fmt, clean=True)
    assert fetched.choice.source_id == "PDB:1AKI"
    before, after = census(shared / "structures" / f"1aki.{fmt}"), census(fetched.path)
    assert len(before["polymer"]) == 129 and before["waters"] == 78  # MANIFEST facts
    # the signal peptide (UniProt 1-18) lies before the mature chain (UniProt 19-147 = residues 1-129)
    assert after["polymer"] == before["polymer"]
    assert after["waters"] == 0 and after["hetero"] == 0 and after["hydrogens"] == 0
    report = fetched.clean_report
    assert report is not None
    assert report.signal_residues == 0 and report.signal_ranges == {}
    assert report.water_residues == before["waters"] and report.hetero_residues == before["hetero"]
    assert report.atoms_after == after["atoms"] == before["atoms"] - 78


def test_signal_mapping_through_sifts_offsets() -> None:
    seg = SiftsMapping(pdb_id="1aki", chain_id="A", start=1, end=129, unp_start=19, unp_end=147)
    assert map_signal_sifts([SIGNAL], [seg]) == {}
    # a (hypothetical) longer signal 1-25 reaches 7 residues into the mature chain: residues 1-7
    assert map_signal_sifts([(1, 25)], [seg]) == {"A": [(1, 7)]}
    # segments with an offset in the other direction (8GG0 chain D of P07550: 25-48 <- UniProt 1-24)
    seg2 = SiftsMapping(pdb_id="8gg0", chain_id="D", start=25, end=48, unp_start=1, unp_end=24)
    assert map_signal_sifts([SIGNAL], [seg2]) == {"D": [(25, 42)]}
    assert map_signal_identity([SIGNAL], ["A"]) == {"A": [(1, 18)]}
    assert map_signal_identity([SIGNAL], ["A"], uniprot_start=11) == {"A": [(1, 8)]}


def test_alphafold_signal_peptide_residues_are_removed_exactly(archive: ArchiveServer, extra: Path,
                                                             shared: Path) -> None:
    write_json(extra, "proteins_features_Q99J21.json", {
        "accession": "Q99J21",
        "features": [{"type": "SIGNAL", "category": "MOLECULE_PROCESSING", "begin": "1", "end": "18"}],
    })
    archive.index.add(extra / "proteins_features_Q99J21.json")
    options = CleanOptions(signal=True, hydrogens=False, waters=False, hetero=False)
    fetched = archives.fetch_structure("Q99J21", prefer="alphafold", fmt="pdb", clean=options)
    before, after = census(shared / "structures" / "AF-Q99J21-F1-model_v2.pdb"), census(fetched.path)
    removed = [r for r in before["polymer"] if SIGNAL[0] <= r[1] <= SIGNAL[1]]
    assert len(removed) == 18
    assert after["polymer"] == [r for r in before["polymer"] if r not in removed]
    assert fetched.clean_report is not None and fetched.clean_report.signal_residues == 18
    st = gemmi.read_structure(str(shared / "structures" / "AF-Q99J21-F1-model_v2.pdb"))
    atoms_in_signal = sum(len(res) for res in st[0]["A"] if res.seqid.num <= 18)
    assert after["atoms"] == before["atoms"] - atoms_in_signal
    # the dataset of the cleaned model keeps pLDDT in `plddt` and starts at residue 19
    ds = open_structure_by_id("Q99J21", prefer="alphafold", fmt="pdb", clean=True)
    assert int(ds["res_id"].min()) == 19 and "plddt" in ds
    assert "removed 18 signal-peptide residue(s) (A:1-18)" in ds.attrs["history"]


def test_cleaning_a_bare_pdb_id_skips_the_signal_step(archive: ArchiveServer) -> None:
    fetched = archives.fetch_structure("1AKI", clean=True)
    assert fetched.clean_report is not None and fetched.clean_report.water_residues == 78
    assert fetched.path.name.startswith("1AKI.clean-hydrogens-waters-hetero.") and fetched.path.suffix == ".cif"


def test_hydrogens_are_removed(archive: ArchiveServer, shared: Path, tmp_path: Path) -> None:
    # 3J6B chain 9 (ATOM records only) holds 1437 hydrogens (MANIFEST); clean it as a local file
    from perc_platform.archives._clean import clean_structure, read_for_cleaning

    st = read_for_cleaning(shared / "structures" / "3J6B_chain9.pdb")
    report = clean_structure(st, CleanOptions(signal=False))
    assert report.hydrogen_atoms == 1437 and report.atoms_after == 2865 - 1437
