"""Atomic structures (mmCIF/PDB, local or remote) as ``xarray.Dataset`` per the structure convention.

``position`` ``(atom, axis)`` in Angstrom with per-atom coords ``chain_id``, ``res_id``, ``ins_code``,
``res_name``, ``atom_name``, ``element``, ``hetero``, ``b_factor``, ``occupancy``, ``altloc``; AlphaFold
models carry their confidence in the ``plddt`` variable and ``b_factor`` is NaN (it never holds pLDDT).
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import gemmi
import numpy as np
import xarray as xr

from perc_platform.archives import fetch_structure
from perc_platform.conventions import STRUCTURE_DIMS, add_history, provenance
from perc_platform.errors import DataNotFoundError, ParameterError, StructureFormatError
from perc_platform.storage.ranges import is_remote, local_copy

__all__ = ["open_structure", "open_structure_by_id", "structure_from_gemmi"]

_AF_NAME = re.compile(r"(AF-[A-Z0-9]+-F[0-9]+)", re.IGNORECASE)
_PDB_ID = re.compile(r"[0-9][a-z0-9]{3}", re.IGNORECASE)
_PDB_NAME = re.compile(r"(?:pdb)?([0-9][a-z0-9]{3})(?:\.(?:cif|pdb|ent|mmcif))+(?:\.gz)?$", re.IGNORECASE)


def _is_alphafold(structure: gemmi.Structure, name: str) -> bool:
    title = str(structure.info["_struct.title"]) if "_struct.title" in structure.info else ""
    return "ALPHAFOLD" in title.upper() or bool(_AF_NAME.search(name))


def _source_id(name: str, alphafold: bool) -> str:
    base = os.path.basename(name)
    match = _AF_NAME.search(base)
    if alphafold and match:
        return f"AFDB:{match.group(1).upper()}"
    match = _PDB_NAME.match(base)
    return f"PDB:{match.group(1).upper()}" if match else base


def structure_from_gemmi(structure: gemmi.Structure, *, plddt: bool, source_id: str, source_uri: str,
                         history: str, altloc: Literal["first", "all"] = "first") -> xr.Dataset:
    """The first model of a gemmi structure as a convention Dataset."""
    if len(structure) == 0:
        raise StructureFormatError(f"{source_uri}: the structure holds no model")
    if altloc == "first":
        structure.remove_alternative_conformations()
    model = structure[0]
    columns: dict[str, list[Any]] = {k: [] for k in ("chain_id", "res_id", "ins_code", "res_name", "atom_name",
                                                     "element", "hetero", "b_factor", "occupancy", "altloc")}
    xyz: list[tuple[float, float, float]] = []
    for chain in model:
        for residue in chain:
            for atom in residue:
                xyz.append((atom.pos.x, atom.pos.y, atom.pos.z))
                columns["chain_id"].append(chain.name)
                columns["res_id"].append(residue.seqid.num)
                columns["ins_code"].append(residue.seqid.icode.strip())
                columns["res_name"].append(residue.name)
                columns["atom_name"].append(atom.name)
                columns["element"].append(atom.element.name)
                columns["hetero"].append(residue.het_flag == "H")
                columns["b_factor"].append(atom.b_iso)
                columns["occupancy"].append(atom.occ)
                columns["altloc"].append(atom.altloc if atom.altloc != "\x00" else "")
    if not xyz:
        raise StructureFormatError(f"{source_uri}: the structure holds no atoms")
    b_factor = np.asarray(columns.pop("b_factor"), dtype=np.float32)
    coords: dict[str, Any] = {name: ("atom", np.asarray(values, dtype=str if isinstance(values[0], str) else None))
                              for name, values in columns.items()}
    coords["res_id"] = ("atom", np.asarray(columns["res_id"], dtype=np.int32))
    coords["hetero"] = ("atom", np.asarray(columns["hetero"], dtype=bool))
    coords["occupancy"] = ("atom", np.asarray(columns["occupancy"], dtype=np.float32))
    coords["axis"] = ["x", "y", "z"]
    data_vars: dict[str, Any] = {"position": (STRUCTURE_DIMS, np.asarray(xyz, dtype=np.float32),
                                              {"units": "Angstrom"})}
    if plddt:
        data_vars["plddt"] = ("atom", b_factor, {"long_name": "AlphaFold per-residue confidence (pLDDT)"})
        b_factor = np.full_like(b_factor, np.nan)
    coords["b_factor"] = ("atom", b_factor)
    attrs = provenance(source_id, source_uri, history)
    attrs.update({
        # PDB files are named after the file, mmCIF after the data block: one spelling for PDB ids
        "structure_name": structure.name.upper() if _PDB_ID.fullmatch(structure.name) else structure.name,
        "resolution": float(structure.resolution) if structure.resolution else float("nan"),
        "n_models": len(structure),
        "model": 1,
        "spacegroup": structure.spacegroup_hm,
    })
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def open_structure(path_or_url: str | os.PathLike[str], *, plddt: bool | None = None,
                   source_id: str | None = None, altloc: Literal["first", "all"] = "first",
                   storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """Read an mmCIF or PDB file (local path or URL, ``.gz`` too) into a structure Dataset (first model).

    ``plddt=None`` detects AlphaFold models (title or ``AF-...`` file name) and moves their B-factor column
    into ``plddt``. ``altloc="first"`` keeps the first alternative conformation of each atom.
    """
    name = os.fspath(path_or_url)
    local = str(local_copy(name, storage_options)) if is_remote(name) else name
    if not os.path.exists(local):
        raise DataNotFoundError(f"{name}: no such structure file; check the path")
    try:
        structure = gemmi.read_structure(local, merge_chain_parts=True)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise StructureFormatError(f"{name}: not a readable mmCIF/PDB file ({exc})") from None
    alphafold = _is_alphafold(structure, name) if plddt is None else plddt
    return structure_from_gemmi(structure, plddt=alphafold, source_id=source_id or _source_id(name, alphafold),
                                source_uri=name, history=f"read structure {os.path.basename(name)} with gemmi "
                                                         f"{getattr(gemmi, '__version__', '?')}", altloc=altloc)


def open_structure_by_id(query: str, *, prefer: Literal["pdb", "alphafold"] = "pdb", fmt: str = "cif",
                         clean: bool = False, select: Literal["chain", "entry"] = "chain",
                         ligands: bool = False) -> xr.Dataset:
    """The structure for a UniProt accession or PDB id, fetched once into the cache, as a Dataset.

    For an accession answered by a PDB entry, the result is the chain SIFTS mapped to it (as profet gives),
    with its ligands (non-polymer, non-water groups of that chain) when ``ligands=True``; ``select="entry"``
    gives the whole entry. A PDB id asked for directly and AlphaFold models give the whole file. See
    :func:`perc_platform.archives.fetch_structure` for the choice of source and the cleaning.
    """
    if select not in ("chain", "entry"):
        raise ParameterError(f"select={select!r}: use 'chain' (the chain the accession maps to) or 'entry'")
    fetched = fetch_structure(query, prefer=prefer, fmt=fmt, clean=clean)
    ds = open_structure(fetched.path, plddt=fetched.plddt, source_id=fetched.choice.source_id)
    chain = fetched.choice.chain_id if fetched.choice.accession and fetched.choice.source == "pdb" else None
    if select == "chain" and chain:
        keep = _chain_atoms(fetched.path, chain, ligands)
        if keep.size != ds.sizes["atom"] or not keep.any():
            raise StructureFormatError(f"{fetched.path}: chain {chain!r} (mapped by SIFTS) is not in the file; "
                                       "open the whole entry with select='entry'")
        ds = ds.isel(atom=np.flatnonzero(keep))
        add_history(ds, f"selected chain {chain}{' with its ligands' if ligands else ''} (SIFTS mapping of "
                        f"{fetched.choice.accession})")
    ds.attrs["source_uri"] = fetched.url
    ds.attrs["query"] = query
    ds.attrs["lookup_reason"] = fetched.choice.reason
    ds.attrs["selected_chain"] = fetched.choice.chain_id or ""
    ds.attrs["selection"] = f"chain {chain}{' + ligands' if ligands else ''}" if select == "chain" and chain \
        else "entry"
    ds.attrs["cache_path"] = str(fetched.path)
    for line in fetched.history:
        add_history(ds, line)
    return ds


def _chain_atoms(path: Any, chain: str, ligands: bool) -> np.ndarray:
    """Per atom, in :func:`structure_from_gemmi`'s order: in ``chain`` and polymer (or a ligand, if asked)."""
    structure = gemmi.read_structure(str(path), merge_chain_parts=True)
    structure.setup_entities()
    structure.remove_alternative_conformations()
    wanted = {gemmi.EntityType.Polymer} | ({gemmi.EntityType.NonPolymer} if ligands else set())
    return np.asarray([ch.name == chain and residue.entity_type in wanted
                       for ch in structure[0] for residue in ch for _ in residue], dtype=bool)
