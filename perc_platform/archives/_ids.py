"""Archive identifiers: validated and normalised before any request is made or any file is written.

Every public ``validate_*`` returns the canonical form (``P00698``, ``1AKI``, ``EMD-5168``,
``EMPIAR-10025``) or raises :class:`~perc_platform.errors.IdentifierError` naming the input and the form
expected. Path-like input (``../``, ``/``, ``\\``), empty strings, control characters and over-long strings are
refused first, so an identifier can be used safely in a URL path and a cache file name.
"""

from __future__ import annotations

import re
from typing import Literal

from perc_platform.errors import IdentifierError

__all__ = [
    "MAX_ID_LENGTH",
    "emdb_number",
    "empiar_number",
    "structure_id_kind",
    "validate_emdb_id",
    "validate_empiar_id",
    "validate_pdb_id",
    "validate_uniprot",
]

#: No archive identifier is longer than this; anything longer is refused before it is used.
MAX_ID_LENGTH = 32

# UniProt's published accession pattern (https://www.uniprot.org/help/accession_numbers).
_UNIPROT = re.compile(r"[OPQ][0-9][A-Z0-9]{3}[0-9]|[A-NR-Z][0-9](?:[A-Z][A-Z0-9]{2}[0-9]){1,2}")
# Classic 4-character PDB ids and the extended form pdb_0000xxxx announced by wwPDB.
_PDB = re.compile(r"[0-9][A-Z0-9]{3}|PDB_[0-9]{4}[0-9][A-Z0-9]{3}")
_EMDB = re.compile(r"(?:EMD[-_]?)?([0-9]{4,6})")
_EMPIAR = re.compile(r"(?:EMPIAR[-_]?)?([0-9]{5,6})")
_UNSAFE = re.compile(r"[/\\\s\x00-\x1f\x7f]|\.\.")


def _clean(value: object, what: str, example: str) -> str:
    if not isinstance(value, str):
        raise IdentifierError(f"{what} must be a string like {example!r}, got {type(value).__name__} {value!r}")
    text = value.strip()
    if not text:
        raise IdentifierError(f"empty {what}; give one like {example!r}")
    if len(text) > MAX_ID_LENGTH:
        raise IdentifierError(f"{what} {text[:40]!r}... is {len(text)} characters long; identifiers have at "
                              f"most {MAX_ID_LENGTH} (e.g. {example!r})")
    if _UNSAFE.search(text):
        raise IdentifierError(f"{what} {text!r} contains a path separator, '..', whitespace or a control "
                              f"character; give a bare identifier like {example!r}")
    return text.upper()


def validate_uniprot(accession: object) -> str:
    """Canonical UniProt accession (upper case, isoform suffix refused), e.g. ``P00698``."""
    text = _clean(accession, "UniProt accession", "P00698")
    if not _UNIPROT.fullmatch(text):
        raise IdentifierError(f"{accession!r} is not a UniProt accession (6 or 10 characters such as 'P00698' "
                              "or 'A0A023GPI8'); isoform suffixes like '-2' are not supported")
    return text


def validate_pdb_id(pdb_id: object) -> str:
    """Canonical PDB id (upper case), e.g. ``1AKI``; the extended ``PDB_00001AKI`` form is accepted too."""
    text = _clean(pdb_id, "PDB id", "1AKI")
    if not _PDB.fullmatch(text):
        raise IdentifierError(f"{pdb_id!r} is not a PDB id (4 characters starting with a digit, e.g. '1AKI', "
                              "or the extended form 'pdb_00001aki')")
    return text


def _numbered(value: object, what: str, pattern: re.Pattern[str], example: str, forms: str, canonical: str) -> str:
    """A numbered archive id (EMDB, EMPIAR) from its text or int forms, as ``canonical.format(number)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _clean(value, what, example)
    match = pattern.fullmatch(text)
    if not match:
        raise IdentifierError(f"{value!r} is not an {what} (e.g. {forms})")
    return canonical.format(int(match.group(1)))


def validate_emdb_id(emdb_id: object) -> str:
    """Canonical EMDB id ``EMD-<N>`` from ``EMD-5168``, ``emd_5168``, ``5168`` or the int 5168."""
    return _numbered(emdb_id, "EMDB id", _EMDB, "EMD-5168", "'EMD-5168', 'emd_5168' or 5168", "EMD-{:04d}")


def emdb_number(emdb_id: object) -> str:
    """The number part of an EMDB id as used in file names (``emd_5168.map.gz``): ``"5168"``."""
    return validate_emdb_id(emdb_id).split("-", 1)[1]


def validate_empiar_id(empiar_id: object) -> str:
    """Canonical EMPIAR id ``EMPIAR-<N>`` from ``EMPIAR-10025``, ``10025`` or the int 10025."""
    return _numbered(empiar_id, "EMPIAR id", _EMPIAR, "EMPIAR-10025", "'EMPIAR-10025' or 10025", "EMPIAR-{:05d}")


def empiar_number(empiar_id: object) -> str:
    """The number part of an EMPIAR id as used in API and file paths: ``"10025"``."""
    return validate_empiar_id(empiar_id).split("-", 1)[1]


def structure_id_kind(identifier: object) -> Literal["pdb", "uniprot"]:
    """Whether a structure query is a PDB id or a UniProt accession (both forms are disjoint)."""
    text = _clean(identifier, "structure id", "P00698 or 1AKI")
    if _PDB.fullmatch(text):
        return "pdb"
    if _UNIPROT.fullmatch(text):
        return "uniprot"
    raise IdentifierError(f"{identifier!r} is neither a UniProt accession (e.g. 'P00698') nor a PDB id "
                          "(e.g. '1AKI')")
