"""Identifiers are validated and normalised before any request is made or any file is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from perc_platform import archives
from perc_platform.archives._ids import (
    emdb_number,
    empiar_number,
    structure_id_kind,
    validate_emdb_id,
    validate_empiar_id,
    validate_pdb_id,
    validate_uniprot,
)
from perc_platform.errors import IdentifierError
from perc_platform.testing.archive import ArchiveServer

from .conftest import cache_files


@pytest.mark.parametrize(("raw", "canonical"), [("P00698", "P00698"), (" p07550 ", "P07550"),
                                                ("A0A023GPI8", "A0A023GPI8"), ("Q99J21", "Q99J21")])
def test_uniprot_accessions(raw: str, canonical: str) -> None:
    assert validate_uniprot(raw) == canonical


@pytest.mark.parametrize(("raw", "canonical"), [("1aki", "1AKI"), ("8GG0", "8GG0"), ("pdb_00001aki", "PDB_00001AKI")])
def test_pdb_ids(raw: str, canonical: str) -> None:
    assert validate_pdb_id(raw) == canonical


@pytest.mark.parametrize("raw", ["EMD-5168", "emd_5168", "5168", 5168, "EMD5168"])
def test_emdb_ids(raw: object) -> None:
    assert validate_emdb_id(raw) == "EMD-5168"
    assert emdb_number(raw) == "5168"


@pytest.mark.parametrize("raw", ["EMPIAR-10025", "empiar_10025", "10025", 10025])
def test_empiar_ids(raw: object) -> None:
    assert validate_empiar_id(raw) == "EMPIAR-10025"
    assert empiar_number(raw) == "10025"


def test_structure_kind() -> None:
    assert structure_id_kind("1AKI") == "pdb"
    assert structure_id_kind("P00698") == "uniprot"


BAD = ["", "   ", "../etc/passwd", "../../etc/passwd", "..", "P00698/../x", "a/b", "1AKI\\x", "P0069 8", "x" * 200,
       "P00698\x00", "1AK", "P00698-2", "ZZZZZZZZ"]


@pytest.mark.parametrize("bad", BAD)
def test_bad_ids_are_refused_before_any_request_or_write(bad: str, archive: ArchiveServer,
                                                         isolated_cache: Path) -> None:
    calls = [
        lambda: archives.fetch_structure(bad),
        lambda: archives.fetch_pdb_file(bad),
        lambda: archives.fetch_afdb_file(bad),
        lambda: archives.best_structures(bad),
        lambda: archives.fetch_features(bad),
        lambda: archives.fetch_emdb_map(bad),
        lambda: archives.fetch_emdb_entry(bad),
    ]
    for call in calls:
        with pytest.raises(IdentifierError) as info:
            call()
        assert "\n" not in str(info.value)
    assert archive.count() == 0
    assert cache_files(isolated_cache) == []


@pytest.mark.parametrize("bad", [None, 3.5, ["P00698"]])
def test_non_strings_are_refused(bad: object) -> None:
    with pytest.raises(IdentifierError, match="must be a string"):
        validate_uniprot(bad)


@pytest.mark.parametrize("raw", ["EMPIAR-01234", "empiar_01234", "01234", "010025", "EMPIAR-123456", "EMD-0001",
                                 "emd_01234", "1aki", "pdb_00001aki", "p00698", " P00698 "])
def test_a_canonical_id_validates_to_itself(raw: str) -> None:
    for validate in (validate_empiar_id, validate_emdb_id, validate_pdb_id, validate_uniprot):
        try:
            canonical = validate(raw)
        except IdentifierError:
            continue
        assert validate(canonical) == canonical, (validate.__name__, raw, canonical)
    assert validate_empiar_id("EMPIAR-01234") == "EMPIAR-01234" and validate_empiar_id("010025") == "EMPIAR-10025"
