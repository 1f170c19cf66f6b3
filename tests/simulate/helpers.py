"""Structure Datasets for the simulation tests, built with gemmi directly (independent of the platform's reader)."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import xarray as xr


def gemmi_structure(path: Path) -> xr.Dataset:
    """The first model of a PDB/mmCIF file as a structure-convention Dataset."""
    model = gemmi.read_structure(str(path))[0]
    rows = [(chain.name, res.seqid.num, res.name, atom.name, atom.element.name, atom.pos.tolist())
            for chain in model for res in chain for atom in res]
    chain, res_id, res_name, atom_name, element, xyz = zip(*rows, strict=True)
    return atoms_dataset(np.array(xyz), list(element), chain_id=list(chain), res_id=list(res_id),
                         res_name=list(res_name), atom_name=list(atom_name))


def atoms_dataset(xyz: np.ndarray, elements: list[str], **extra: list[object]) -> xr.Dataset:
    """A structure Dataset of atoms at ``xyz`` (Angstrom) with the given element symbols."""
    n = len(elements)
    coords: dict[str, object] = {"axis": ["x", "y", "z"], "element": ("atom", elements)}
    defaults = {"chain_id": ["A"] * n, "res_id": list(range(1, n + 1)), "res_name": ["GLY"] * n,
                "atom_name": ["CA"] * n}
    for name, values in {**defaults, **extra}.items():
        coords[name] = ("atom", values)
    return xr.Dataset({"position": (("atom", "axis"), np.asarray(xyz, dtype=float))}, coords=coords,
                      attrs={"source_id": "test"})
