"""molmap-style density maps: against a real map (EMD-5168 segment), and against a brute-force sum."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from perc_platform import open_volume
from perc_platform.errors import ParameterError, StructureFormatError
from perc_platform.simulate import density_map
from tests.simulate.helpers import atoms_dataset

ATOMIC_NUMBER = {"C": 6, "N": 7, "O": 8, "S": 16}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_map_of_3mfp_correlates_with_emd_5168_segment(actin: xr.Dataset, shared: Path) -> None:
    real = open_volume(shared / "maps" / "emd_5168_monomer_segment.mrc")
    simulated = density_map(actin, resolution=6.6, like=real)
    for dim in ("z", "y", "x"):
        np.testing.assert_array_equal(simulated[dim].values, real[dim].values)
    corr = _corr(simulated.values, real.values)
    assert corr >= 0.6, corr
    # Placement is by Angstrom coords: on the grid with the origin ignored (coords index * voxel) the model
    # falls (almost) entirely outside the box.
    by_index = real.assign_coords({d: real[d].values - real[d].values[0] for d in ("z", "y", "x")})
    assert density_map(actin, resolution=6.6, like=by_index).values.sum() < 0.01 * simulated.values.sum()


def test_moving_the_model_moves_the_map(actin: xr.Dataset) -> None:
    step = 2.0
    base = density_map(actin, step, 6.0).values
    moved_atoms = actin.assign(position=actin["position"] + np.array([step, 0.0, 0.0]))
    grid = density_map(actin, step, 6.0)
    moved = density_map(moved_atoms, resolution=6.0, like=grid).values
    np.testing.assert_allclose(moved[:, :, 1:], base[:, :, :-1], atol=1e-5 * base.max())


def _brute_force(xyz: np.ndarray, numbers: np.ndarray, grid: xr.DataArray, resolution: float) -> np.ndarray:
    """Independent sum over atoms and voxels (REFERENCE.md: amplitude ~ Z, sigma = res / (pi sqrt 2), 5 sigma)."""
    sigma = resolution / (np.pi * np.sqrt(2))
    z, y, x = np.meshgrid(grid.z.values, grid.y.values, grid.x.values, indexing="ij")
    out = np.zeros(z.shape)
    for (px, py, pz), zn in zip(xyz, numbers, strict=True):
        d = np.stack([x - px, y - py, z - pz])
        inside = np.all(np.abs(d) <= 5 * sigma, axis=0)
        amplitude = zn / ((2 * np.pi) ** 1.5 * sigma**3)  # Chimera: each Gaussian integrates to Z
        out += np.where(inside, amplitude * np.exp(-(d**2).sum(axis=0) / (2 * sigma**2)), 0.0)
    return out


def test_gaussians_match_a_brute_force_sum_on_a_few_atoms() -> None:
    xyz = np.array([[1.3, -2.1, 0.4], [4.0, 1.7, -3.2], [-3.5, 0.2, 2.9], [0.0, 5.5, 1.1]])
    elements = ["C", "N", "O", "S"]
    ds = atoms_dataset(xyz, elements)
    resolution = 4.0
    simulated = density_map(ds, 0.7, resolution, box=40)
    expected = _brute_force(xyz, np.array([ATOMIC_NUMBER[e] for e in elements]), simulated, resolution)
    np.testing.assert_allclose(simulated.values, expected, rtol=1e-5, atol=1e-6 * expected.max())


def test_single_atom_width_amplitude_and_integral() -> None:
    resolution, step = 5.0, 0.5
    sigma = resolution / (np.pi * np.sqrt(2))
    one = density_map(atoms_dataset(np.zeros((1, 3)), ["O"]), step, resolution, box=41)
    values = one.values.astype(np.float64)
    peak = values[20, 20, 20]
    assert one.x.values[20] == pytest.approx(0.0) and one.z.values[20] == pytest.approx(0.0)
    assert peak == pytest.approx(8 / ((2 * np.pi) ** 1.5 * sigma**3), rel=1e-6)
    profile = values[20, 20, 20:] / peak
    distance = one.x.values[20:]
    inside = distance <= 5 * sigma
    np.testing.assert_allclose(profile[inside], np.exp(-(distance[inside] ** 2) / (2 * sigma**2)), rtol=1e-5)
    assert np.all(profile[~inside] == 0)  # cut off at 5 sigma
    assert values.sum() * step**3 == pytest.approx(8.0, rel=1e-4)  # integrates to Z


def test_box_grid_is_centred_and_anisotropic_voxels_are_honoured(actin: xr.Dataset) -> None:
    centre = actin["position"].values.mean(axis=0)
    cube = density_map(actin, 3.0, 8.0, box=24)
    assert cube.shape == (24, 24, 24)
    assert [cube[d].values[12] for d in ("x", "y", "z")] == pytest.approx(list(centre))
    aniso = density_map(actin, (2.0, 3.0, 4.0), 8.0, box=(30, 20, 16))
    assert aniso.shape == (16, 20, 30)
    assert aniso.attrs["voxel_size"] == pytest.approx([2.0, 3.0, 4.0])
    assert np.diff(aniso.z.values)[0] == pytest.approx(4.0)


def test_large_boxes_are_lazy_over_z_slabs(actin: xr.Dataset) -> None:
    whole = density_map(actin, 2.0, 6.0, chunks=10_000)
    slabs = density_map(actin, 2.0, 6.0, chunks=5)
    assert isinstance(slabs.data, da.Array)
    assert slabs.data.numblocks[0] == -(-slabs.sizes["z"] // 5)
    np.testing.assert_allclose(slabs.values, whole.values, rtol=1e-6, atol=1e-7)
    assert slabs.name == "density" and slabs.dims == ("z", "y", "x")


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(StructureFormatError, match="unknown element"):
        density_map(atoms_dataset(np.zeros((1, 3)), ["X"]), 1.0, 4.0)
    with pytest.raises(ParameterError, match="resolution"):
        density_map(atoms_dataset(np.zeros((1, 3)), ["C"]), 1.0, -1.0)
    with pytest.raises(ParameterError, match="voxel_size"):
        density_map(atoms_dataset(np.zeros((1, 3)), ["C"]), 0.0, 4.0)
