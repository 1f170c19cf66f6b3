"""Structure file formats: names, extensions and a check that a download really is a structure."""

from __future__ import annotations

from typing import Literal

import gemmi

from perc_platform.errors import ParameterError, StructureFormatError

__all__ = ["StructureFormat", "check_structure_file", "normalise_format"]

StructureFormat = Literal["cif", "pdb"]
_ALIASES = {"cif": "cif", "mmcif": "cif", "pdbx": "cif", "pdb": "pdb", "ent": "pdb"}


def normalise_format(fmt: str) -> StructureFormat:
    """``"cif"`` or ``"pdb"`` from the usual spellings (``mmcif``, ``PDB``...)."""
    key = str(fmt).strip().lower().lstrip(".")
    if key not in _ALIASES:
        raise ParameterError(f"structure format {fmt!r} is not known; use 'cif' (mmCIF) or 'pdb'")
    return _ALIASES[key]  # type: ignore[return-value]


def check_structure_file(path: str, fmt: str) -> None:
    """Raise StructureFormatError unless ``path`` parses as a ``fmt`` file with at least one atom."""
    kind = gemmi.CoorFormat.Mmcif if normalise_format(fmt) == "cif" else gemmi.CoorFormat.Pdb
    try:
        structure = gemmi.read_structure(path, format=kind)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise StructureFormatError(f"not a readable {fmt} file: {exc}") from None
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise StructureFormatError(f"the {fmt} file holds no atoms")
