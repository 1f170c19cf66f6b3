"""A synthetic protein-like structure for demos and tests that must run without ../shared.

``helix_bundle`` builds ideal alpha helices (N, CA, C, O, CB backbone atoms, 3.6 residues per turn,
1.5 A rise, CA radius 2.3 A) arranged as a bundle, and writes them as a PDB file with gemmi.
"""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np

__all__ = ["helix_bundle"]

# (radius A, phase offset deg, rise offset A) of each backbone atom relative to the CA helix.
_ATOMS = {"N": (1.55, -28.0, -0.9), "CA": (2.3, 0.0, 0.0), "C": (1.6, 28.0, 0.9), "O": (1.8, 40.0, 2.0),
          "CB": (3.3, -10.0, -0.4)}
_ELEMENTS = {"N": "N", "CA": "C", "C": "C", "O": "O", "CB": "C"}
_RESIDUES = ["ALA", "LEU", "GLU", "LYS", "ILE", "SER", "ARG", "VAL", "GLN", "THR"]


def helix_bundle(path: str | os.PathLike[str], n_helices: int = 4, residues_per_helix: int = 24,
                 spacing: float = 10.0, seed: int = 0) -> Path:
    """Write a bundle of ideal helices (one chain) as a PDB file and return its path."""
    rng = np.random.default_rng(seed)
    structure = gemmi.Structure()
    structure.name = "DEMO"
    model = gemmi.Model(1)
    chain = gemmi.Chain("A")
    serial = 1
    side = int(np.ceil(np.sqrt(n_helices)))
    for h in range(n_helices):
        cx, cy = (h % side - (side - 1) / 2) * spacing, (h // side - (side - 1) / 2) * spacing
        direction = 1.0 if h % 2 == 0 else -1.0
        for i in range(residues_per_helix):
            residue = gemmi.Residue()
            residue.name = _RESIDUES[int(rng.integers(len(_RESIDUES)))]
            residue.seqid = gemmi.SeqId(serial, " ")
            residue.entity_type = gemmi.EntityType.Polymer
            angle = np.deg2rad(100.0 * i)
            z = direction * (1.5 * i - 1.5 * residues_per_helix / 2)
            for name, (radius, phase, rise) in _ATOMS.items():
                if name == "CB" and residue.name == "GLY":
                    continue
                a = angle + np.deg2rad(phase)
                atom = gemmi.Atom()
                atom.name = name
                atom.element = gemmi.Element(_ELEMENTS[name])
                atom.pos = gemmi.Position(cx + radius * np.cos(a), cy + radius * np.sin(a), z + direction * rise)
                atom.occ = 1.0
                atom.b_iso = 20.0
                residue.add_atom(atom)
            chain.add_residue(residue)
            serial += 1
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    structure.write_pdb(str(path))
    return path

