"""NeuralMap queries: Angstrom registration, sampling, resampling, MRC output, save/load, gradients."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import perc_platform.neural_maps as nm
from perc_platform import open_volume
from perc_platform.errors import DataNotFoundError, ParameterError
from tests.neural_maps.conftest import TINY_FIT


def _grid_points(density: xr.DataArray) -> np.ndarray:
    z, y, x = np.meshgrid(density.z, density.y, density.x, indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=-1)


def test_fit_covers_the_map_with_several_regions(tiny_map: nm.NeuralMap, segment: xr.DataArray) -> None:
    assert tiny_map.tiling.n_regions > 1
    assert tiny_map.shape == segment.shape
    assert tiny_map.origin == pytest.approx([float(segment[c][0]) for c in ("x", "y", "z")])
    assert tiny_map.voxel_size == pytest.approx(segment.attrs["voxel_size"])


def test_sample_is_on_the_maps_angstrom_grid(tiny_map: nm.NeuralMap, segment: xr.DataArray) -> None:
    sampled = tiny_map.sample(like=segment)
    assert sampled.name == "density" and sampled.dims == ("z", "y", "x")
    for dim in ("z", "y", "x"):
        np.testing.assert_array_equal(sampled[dim].values, segment[dim].values)
    direct = tiny_map.density(_grid_points(segment)).reshape(segment.shape)
    np.testing.assert_allclose(sampled.values, direct, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tiny_map.sample().values, direct, rtol=1e-6, atol=1e-6)
    assert sampled.attrs["source_id"] == segment.attrs["source_id"]
    assert "neural map" in sampled.attrs["history"]
    # the fitted values track the map (a loose bound: the tiny model has only 100 steps)
    corr = np.corrcoef(sampled.values.ravel(), segment.values.ravel())[0, 1]
    assert corr > 0.8


def test_resample_keeps_registration(tiny_map: nm.NeuralMap, segment: xr.DataArray) -> None:
    voxel = np.asarray(segment.attrs["voxel_size"])
    fine = tiny_map.resample(voxel_size=float(voxel[0]) / 2)
    for i, dim in enumerate(("x", "y", "z")):
        coord = fine[dim].values
        assert coord[0] == pytest.approx(segment[dim].values[0])
        np.testing.assert_allclose(np.diff(coord), voxel[i] / 2, rtol=1e-6)  # voxel sizes differ in float32 bits
        assert coord[-1] <= segment[dim].values[-1] + 1e-3
        assert coord.size == 2 * segment[dim].size - 1
    # every second fine voxel is an original voxel centre
    coarse = fine.isel(z=slice(None, None, 2), y=slice(None, None, 2), x=slice(None, None, 2))
    np.testing.assert_allclose(coarse.values, tiny_map.sample().values, rtol=1e-5, atol=1e-4)
    assert fine.attrs["voxel_size"] == pytest.approx(voxel / 2)
    with pytest.raises(ParameterError):
        tiny_map.resample(voxel_size=0)


def test_to_mrc_reopens_at_the_same_placement(tiny_map: nm.NeuralMap, tmp_path: Path) -> None:
    same = open_volume(tiny_map.to_mrc(tmp_path / "same.mrc")).load()
    reference = tiny_map.sample()
    for dim in ("z", "y", "x"):
        np.testing.assert_allclose(same[dim].values, reference[dim].values, atol=1e-3)
    np.testing.assert_allclose(same.values, reference.values, rtol=1e-6)
    finer = open_volume(tiny_map.to_mrc(tmp_path / "fine.mrc", voxel_size=1.0)).load()
    expected = tiny_map.resample(1.0)
    assert finer.attrs["voxel_size"] == pytest.approx([1.0, 1.0, 1.0], rel=1e-5)
    for dim in ("z", "y", "x"):
        np.testing.assert_allclose(finer[dim].values, expected[dim].values, atol=1e-3)
    np.testing.assert_allclose(finer.values, expected.values, rtol=1e-6)


def test_save_load_round_trip(tiny_map: nm.NeuralMap, tmp_path: Path) -> None:
    folder = tiny_map.save(tmp_path / "map", precision="float32")
    meta = json.loads((folder / "neural_map.json").read_text())
    assert meta["siren"] == {"hidden_layers": 2, "hidden_width": 32, "omega_0": 30.0}
    assert meta["attrs"]["source_id"] == tiny_map.attrs["source_id"]
    with np.load(folder / "neural_map.npz", allow_pickle=False) as arrays:  # no pickled objects inside
        assert set(arrays.files) == {*tiny_map.params, "base"}
        assert arrays["base"].dtype == np.float32 and arrays["w0"].dtype == np.float32
    loaded = nm.NeuralMap.load(folder)
    points = np.random.default_rng(0).uniform(-20, 20, (500, 3)) + np.asarray(tiny_map.origin) + 30
    np.testing.assert_allclose(loaded.density(points), tiny_map.density(points), rtol=1e-6, atol=1e-6)
    assert loaded.attrs["region_stats"] == tiny_map.attrs["region_stats"]
    with pytest.raises(DataNotFoundError):
        nm.NeuralMap.load(tmp_path / "nothing")


def test_outside_the_map_is_filled(tiny_map: nm.NeuralMap) -> None:
    far = np.asarray(tiny_map.origin) - 100.0
    assert tiny_map.density(far[None], fill_value=-7.0)[0] == -7.0
    np.testing.assert_array_equal(tiny_map.gradient(far[None]), 0.0)
    # within half a voxel of the edge: the edge value
    edge = np.asarray(tiny_map.origin)
    nudged = edge - 0.4 * np.asarray(tiny_map.voxel_size)
    assert tiny_map.density(nudged[None])[0] == pytest.approx(tiny_map.density(edge[None])[0], rel=1e-6)
    with pytest.raises(ParameterError):
        tiny_map.density(np.zeros((4, 2)))


def test_provenance(tiny_map: nm.NeuralMap, segment: xr.DataArray) -> None:
    assert tiny_map.attrs["source_uri"] == segment.attrs["source_uri"]
    assert tiny_map.attrs["history"].startswith(segment.attrs["history"])
    assert "fitted neural map" in tiny_map.attrs["history"]
    stats = tiny_map.attrs["region_stats"]
    assert len(stats) == tiny_map.tiling.n_regions and all(s["steps"] <= TINY_FIT["max_steps"] for s in stats)
    assert all(s["voxel_mae"] <= TINY_FIT["target_mae"] for s in stats) and tiny_map.regions_above_target == []


def _interior_points(neural_map: nm.NeuralMap, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    extent = (np.asarray(neural_map.shape[::-1]) - 1) * np.asarray(neural_map.voxel_size)
    return np.asarray(neural_map.origin) + rng.uniform(0.1, 0.9, (n, 3)) * extent


def test_gradient_matches_finite_differences(tiny_map: nm.NeuralMap) -> None:
    """Acceptance 3: autograd gradient (density per Angstrom) vs central differences of density()."""
    points = _interior_points(tiny_map, 200, 1)
    grad = tiny_map.gradient(points)
    h = 1e-2  # Angstrom
    fd = np.empty_like(grad)
    for axis in range(3):
        step = np.zeros(3)
        step[axis] = h
        plus = tiny_map.density(points + step).astype(np.float64)
        minus = tiny_map.density(points - step).astype(np.float64)
        fd[:, axis] = (plus - minus) / (2 * h)
    scale = np.linalg.norm(fd, axis=1)
    strong = scale > 0.05 * np.median(scale)
    rel = np.linalg.norm(grad - fd, axis=1)[strong] / scale[strong]
    assert strong.sum() > 150
    assert np.median(rel) < 1e-3 and rel.max() < 1e-2
    # and it points uphill: a small step along it raises the density
    unit = grad / np.linalg.norm(grad, axis=1, keepdims=True)
    up = tiny_map.density(points + 0.02 * unit) - tiny_map.density(points)
    assert np.all(up[strong] > 0)


def test_normalised_gradient_is_scaled(tiny_map: nm.NeuralMap) -> None:
    points = _interior_points(tiny_map, 20, 2)
    low, high = tiny_map.value_range
    np.testing.assert_allclose(tiny_map.gradient(points) / (high - low),
                               tiny_map.gradient(points, normalized=True), rtol=1e-5, atol=1e-9)
