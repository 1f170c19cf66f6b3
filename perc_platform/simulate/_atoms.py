"""Atoms of a structure Dataset as plain arrays: positions (Angstrom), atomic numbers, centre."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from perc_platform.conventions import validate_structure
from perc_platform.errors import ParameterError, StructureFormatError

__all__ = ["StructureLike", "as_structure", "atom_arrays", "model_center", "molmap_sigma"]

StructureLike = xr.Dataset | str | os.PathLike[str]


def as_structure(structure: StructureLike) -> xr.Dataset:
    """A structure Dataset: ``structure`` itself, or a file path/URL or archive id opened by the platform.

    Paths and URLs go to ``perc_platform.open_structure``; anything else is taken as a PDB id or UniProt
    accession for ``open_structure_by_id`` (fetched once into the cache).
    """
    if isinstance(structure, xr.Dataset):
        return validate_structure(structure)
    from perc_platform.datasets.structures import open_structure, open_structure_by_id
    from perc_platform.storage.ranges import is_remote

    name = os.fspath(structure)
    if os.path.exists(name) or is_remote(name) or os.sep in name or name.endswith((".pdb", ".cif", ".gz")):
        return validate_structure(open_structure(name))
    return validate_structure(open_structure_by_id(name))


def _axis_order(structure: xr.Dataset) -> list[int]:
    if "axis" not in structure.coords:
        return [0, 1, 2]
    labels = [str(v).lower() for v in structure.coords["axis"].values]
    if sorted(labels) != ["x", "y", "z"]:
        raise StructureFormatError(f"structure axis labels {labels} are not x, y, z")
    return [labels.index(a) for a in ("x", "y", "z")]


def atom_arrays(structure: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(positions, atomic_numbers)``: ``(n, 3)`` float64 x, y, z in Angstrom and ``(n,)`` float64 Z.

    Atoms whose element is unknown (gemmi's ``X``, e.g. unknown ligands) are refused: molmap weights each
    atom by its atomic number.
    """
    import gemmi

    positions = np.asarray(structure["position"].values, dtype=np.float64)[:, _axis_order(structure)]
    elements = np.asarray(structure.coords["element"].values).astype(str)
    unique, inverse = np.unique(elements, return_inverse=True)
    numbers = np.array([gemmi.Element(e.strip() or "X").atomic_number for e in unique], dtype=np.float64)
    if np.any(numbers == 0):
        bad = [str(e) for e, z in zip(unique, numbers, strict=True) if z == 0]
        raise StructureFormatError(f"structure has atoms of unknown element {bad}; fix or drop those atoms")
    if not np.all(np.isfinite(positions)):
        raise StructureFormatError("structure has non-finite atom positions")
    return positions, numbers[inverse.reshape(-1)]


def model_center(positions: np.ndarray, center: Sequence[float] | None = None) -> np.ndarray:
    """The point (x, y, z, Angstrom) a simulation centres on: ``center`` or the mean atom position."""
    if center is not None:
        value = np.asarray(center, dtype=np.float64)
        if value.shape != (3,):
            raise ParameterError(f"center={center!r}: give three numbers (x, y, z) in Angstrom")
        return value
    return positions.mean(axis=0)


def molmap_sigma(resolution: float) -> float:
    """Gaussian width of one atom in a molmap at ``resolution``: resolution / (pi * sqrt(2))."""
    if not resolution > 0:
        raise ParameterError(f"resolution={resolution!r}: give a positive resolution in Angstrom")
    return float(resolution) / (np.pi * np.sqrt(2.0))
