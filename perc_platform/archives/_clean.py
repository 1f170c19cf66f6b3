"""Cleaning of structure files: signal peptides (UniProt features), hydrogens, waters and hetero groups.

Signal peptides are given in UniProt positions and mapped onto the structure's own residue numbering:

* PDB entries through the SIFTS segments (``unp_start..unp_end`` -> ``start..end``). SIFTS ``start/end``
  are PDBe residue indices, i.e. ``label_seq_id`` (sequential along the entity); they are matched against
  gemmi's ``label_seq`` (read from mmCIF, or assigned from SEQRES for PDB-format files), and against the
  author number only for residues that have no ``label_seq``.
* AlphaFold models use UniProt numbering (offset by ``uniprotStart - 1`` for fragments), mapped as identity.

The cleaned structure is written with gemmi in the input's format, and a report counts what went.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gemmi

from perc_platform.archives._formats import normalise_format
from perc_platform.archives._models import SiftsMapping
from perc_platform.errors import StructureFormatError

__all__ = [
    "CleanOptions",
    "CleanReport",
    "clean_structure",
    "cleaned_key",
    "map_signal_identity",
    "map_signal_sifts",
    "read_for_cleaning",
    "structure_text",
]

#: Residue ranges to remove per chain, in the structure's numbering (inclusive).
ChainRanges = Mapping[str, Sequence[tuple[int, int]]]


@dataclass(frozen=True)
class CleanOptions:
    """What to remove. ``signal`` needs UniProt features; the others work on any file."""

    signal: bool = True
    hydrogens: bool = True
    waters: bool = True
    hetero: bool = True

    def tag(self) -> str:
        parts = [name for name in ("signal", "hydrogens", "waters", "hetero") if getattr(self, name)]
        return "clean-" + ("-".join(parts) if parts else "none")


@dataclass
class CleanReport:
    """What cleaning removed: residues per reason, atoms in total, and the signal ranges applied."""

    signal_ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    signal_residues: int = 0
    hydrogen_atoms: int = 0
    water_residues: int = 0
    hetero_residues: int = 0
    atoms_before: int = 0
    atoms_after: int = 0

    def summary(self) -> str:
        ranges = "; ".join(f"{c}:{','.join(f'{a}-{b}' for a, b in r)}" for c, r in self.signal_ranges.items())
        return (f"cleaned: removed {self.signal_residues} signal-peptide residue(s)"
                f"{f' ({ranges})' if ranges else ''}, {self.hydrogen_atoms} hydrogen atom(s), "
                f"{self.water_residues} water(s), {self.hetero_residues} hetero residue(s); "
                f"{self.atoms_before} -> {self.atoms_after} atoms")


def cleaned_key(original: Path, options: CleanOptions, accession: str | None, signal_ranges: ChainRanges) -> str:
    """A short digest of everything that shapes a cleaned file: the input file (path, size, mtime), the
    options, the accession and the residue ranges removed. Two accessions mapped to one entry (with different
    signal peptides) get different cached files."""
    stat = original.stat()
    what = {"original": str(original.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns,
            "options": options.tag(), "accession": accession,
            "ranges": {chain: sorted(map(list, r)) for chain, r in sorted(signal_ranges.items())}}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def map_signal_sifts(signals: Iterable[tuple[int, int]],
                     segments: Iterable[SiftsMapping]) -> dict[str, list[tuple[int, int]]]:
    """Signal peptides (UniProt positions) -> per-chain residue ranges, through SIFTS segments."""
    out: dict[str, list[tuple[int, int]]] = {}
    segments = list(segments)
    for begin, end in signals:
        for seg in segments:
            lo, hi = max(begin, seg.unp_start), min(end, seg.unp_end)
            if lo <= hi:
                out.setdefault(seg.chain_id, []).append((seg.to_structure(lo), seg.to_structure(hi)))
    return out


def map_signal_identity(signals: Iterable[tuple[int, int]], chains: Iterable[str],
                        uniprot_start: int = 1) -> dict[str, list[tuple[int, int]]]:
    """Signal peptides -> residue ranges for models numbered like UniProt (AlphaFold), on every chain."""
    shift = uniprot_start - 1
    ranges = [(max(1, b - shift), e - shift) for b, e in signals if e - shift >= 1]
    return {chain: list(ranges) for chain in chains} if ranges else {}


def read_for_cleaning(path: str | Path) -> gemmi.Structure:
    """Read a structure and give every residue an entity and, where derivable, a ``label_seq``."""
    try:
        structure = gemmi.read_structure(str(path), merge_chain_parts=True)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise StructureFormatError(f"{path}: cannot read the structure ({exc})") from None
    structure.setup_entities()
    structure.assign_label_seq_id(False)
    return structure


def _number(residue: gemmi.Residue) -> int:
    label, number = residue.label_seq, residue.seqid.num
    if label is not None:
        return int(label)
    return int(number) if number is not None else 0


def _in(value: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(lo <= value <= hi for lo, hi in ranges)


def clean_structure(structure: gemmi.Structure, options: CleanOptions,
                    signal_ranges: ChainRanges | None = None) -> CleanReport:
    """Clean ``structure`` in place (every model) and return what was removed (counted on model 1)."""
    report = CleanReport(signal_ranges={c: list(r) for c, r in (signal_ranges or {}).items()})
    report.atoms_before = structure[0].count_atom_sites() if len(structure) else 0
    for index, model in enumerate(structure):
        counted = index == 0
        for chain in model:
            for i in reversed(range(len(chain))):
                residue = chain[i]
                polymer = residue.entity_type == gemmi.EntityType.Polymer
                if residue.is_water():
                    drop, reason = options.waters, "water_residues"
                elif not polymer and residue.het_flag == "H":
                    drop, reason = options.hetero, "hetero_residues"
                elif options.signal and polymer and _in(_number(residue), report.signal_ranges.get(chain.name, ())):
                    drop, reason = True, "signal_residues"
                else:
                    drop = False
                if drop:
                    if counted:
                        setattr(report, reason, getattr(report, reason) + 1)
                    del chain[i]
        if options.hydrogens:
            if counted:
                report.hydrogen_atoms = sum(1 for chain in model for res in chain for atom in res if atom.is_hydrogen())
            model.remove_hydrogens()
    structure.remove_empty_chains()
    report.atoms_after = structure[0].count_atom_sites() if len(structure) else 0
    return report


def structure_text(structure: gemmi.Structure, fmt: str) -> bytes:
    """The structure written by gemmi as mmCIF or PDB text."""
    if normalise_format(fmt) == "cif":
        return structure.make_mmcif_document().as_string().encode()
    return structure.make_pdb_string().encode()
