"""Scoring a density graph against a model's C-alpha atoms: coverage, precision and RMSD."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import gemmi
import networkx as nx
import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from perc_platform.errors import DataNotFoundError, InputError, StructureFormatError
from perc_platform.neural_maps._graph import node_positions

__all__ = ["GraphScore", "evaluate_graph", "read_ca_positions"]


@dataclass(frozen=True)
class GraphScore:
    """How well graph nodes match C-alpha atoms.

    ``coverage``: share of C-alpha atoms with a node within ``cutoff``; ``precision``: share of nodes within
    ``cutoff`` of a C-alpha atom; ``rmsd``: root mean square distance from each covered C-alpha atom to its
    nearest node (A).
    """

    coverage: float
    precision: float
    rmsd: float
    n_nodes: int
    n_ca: int
    cutoff: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Structure = str | os.PathLike[str] | gemmi.Structure | xr.Dataset | np.ndarray


def read_ca_positions(structure: Structure) -> np.ndarray:
    """``(N, 3)`` Angstrom positions of the C-alpha atoms (first model; calcium ions excluded).

    ``structure``: a PDB/mmCIF path, a ``gemmi.Structure``, a structure Dataset, or already an ``(N, 3)``
    array of C-alpha positions (x, y, z), returned as float64.
    """
    if isinstance(structure, np.ndarray):
        positions = np.asarray(structure, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3 or not np.isfinite(positions).all():
            raise InputError(f"C-alpha positions must be a finite (N, 3) array of Angstrom (x, y, z), "
                             f"got shape {positions.shape}")
        return positions
    if isinstance(structure, xr.Dataset):
        if "position" not in structure or "atom_name" not in structure.coords:
            raise InputError("the structure Dataset needs `position` (atom, axis) and an `atom_name` coord")
        mask = np.asarray(structure.coords["atom_name"].values).astype(str) == "CA"
        if "element" in structure.coords:
            mask &= np.char.upper(np.asarray(structure.coords["element"].values).astype(str)) == "C"
        return np.asarray(structure["position"].values, dtype=np.float64)[mask]
    if not isinstance(structure, gemmi.Structure):
        path = os.fspath(structure)
        if not os.path.isfile(path):
            raise DataNotFoundError(f"structure file {path!r} does not exist; pass a PDB/mmCIF path")
        try:
            structure = gemmi.read_structure(path)
        except (RuntimeError, ValueError) as exc:
            raise StructureFormatError(f"{path}: not a readable PDB/mmCIF file ({exc})") from exc
    if len(structure) == 0:
        raise StructureFormatError(f"structure {structure.name!r} has no models")
    found = [atom.pos.tolist() for chain in structure[0] for residue in chain for atom in residue
                 if atom.name == "CA" and atom.element == gemmi.Element("C")]
    return np.asarray(found, dtype=np.float64).reshape(-1, 3)


def evaluate_graph(graph: nx.Graph, structure: Structure, cutoff: float = 2.0) -> GraphScore:
    """Coverage, precision and RMSD of ``graph``'s nodes against the C-alpha atoms of ``structure``.

    ``structure`` is anything :func:`read_ca_positions` takes, including an ``(N, 3)`` array of C-alpha
    positions.
    """
    ca = read_ca_positions(structure)
    nodes = node_positions(graph)
    if len(ca) == 0:
        raise InputError("the structure has no C-alpha atoms to compare with")
    if len(nodes) == 0:
        return GraphScore(0.0, 0.0, float("nan"), 0, len(ca), cutoff)
    ca_to_node, _ = cKDTree(nodes).query(ca)
    node_to_ca, _ = cKDTree(ca).query(nodes)
    covered = ca_to_node <= cutoff
    rmsd = float(np.sqrt(np.mean(ca_to_node[covered] ** 2))) if covered.any() else float("nan")
    return GraphScore(coverage=float(covered.mean()), precision=float((node_to_ca <= cutoff).mean()),
                      rmsd=rmsd, n_nodes=len(nodes), n_ca=len(ca), cutoff=cutoff)
