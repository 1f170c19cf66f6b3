"""The spline base, the band-limited targets, the voxel error and its warning, and the compact format."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
import xarray as xr
from scipy import ndimage, signal

import perc_platform.neural_maps as nm
from perc_platform.errors import FormatError, ParameterError
from perc_platform.neural_maps._spline import SplineBase, fourier_upsample, residual_targets
from tests.neural_maps.conftest import TINY, TINY_FIT


def test_spline_base_is_scipys_cubic_spline_with_its_gradient() -> None:
    rng = np.random.default_rng(0)
    values = rng.random((9, 10, 11)).astype(np.float32)
    base = SplineBase(values)
    u = rng.uniform(0.01, [7.99, 8.99, 9.99], (400, 3))
    expected = ndimage.map_coordinates(values.astype(np.float64), u.T, order=3, mode="mirror")
    points = torch.from_numpy(u).requires_grad_(True)
    got = base(points)
    np.testing.assert_allclose(got.detach().numpy(), expected, atol=1e-5)
    got.sum().backward()
    step = 1e-4
    numeric = np.stack([(ndimage.map_coordinates(values.astype(np.float64), (u + step * e).T, order=3, mode="mirror")
                         - ndimage.map_coordinates(values.astype(np.float64), (u - step * e).T, order=3,
                                                   mode="mirror")) / (2 * step) for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(points.grad.numpy(), numeric, atol=1e-3)


@pytest.mark.parametrize("n", [10, 11])
def test_fourier_upsample_is_scipys_resample(n: int) -> None:
    x = np.random.default_rng(n).random((3, 4, n))
    fine = fourier_upsample(x)
    assert fine.shape == (5, 7, 2 * n - 1)
    np.testing.assert_allclose(fine[::2, ::2, ::2], x, atol=1e-12)  # through the voxels
    expected = signal.resample(signal.resample(signal.resample(x, 6, axis=0), 8, axis=1), 2 * n, axis=2)
    np.testing.assert_allclose(fine, expected[:5, :7, :2 * n - 1], atol=1e-12)


def test_residual_targets_vanish_on_the_voxels() -> None:
    values = np.random.default_rng(1).random((12, 14, 10))
    tiling = nm.tile_map(values.shape, 8, 2)
    for region, target in zip(tiling.region_slices(), residual_targets(values, tiling.region_slices(), 2),
                              strict=True):
        shape = [s.stop - s.start for s in region]
        assert target.shape == tuple(2 * n - 1 for n in shape)
        np.testing.assert_allclose(target[::2, ::2, ::2], 0.0, atol=1e-5)
        assert np.abs(target[1::2]).mean() > 1e-3  # between voxels the Fourier and cubic interpolants differ


def test_voxel_error_is_the_splines(tiny_map: nm.NeuralMap, shared: Path) -> None:
    """Acceptance 1 on a small real map: the neural map at the voxels vs the file read by mrcfile."""
    neural = tiny_map
    with mrcfile.open(shared / "maps" / "emd_5168_monomer_segment.mrc", permissive=True) as mrc:
        raw = np.asarray(mrc.data, dtype=np.float64)
    mae = np.abs(neural.sample().values - raw).mean() / (raw.max() - raw.min())
    assert mae <= 1e-4 and neural.attrs["voxel_mae"] <= 1e-4
    assert neural.regions_above_target == []


def test_regions_above_target_are_flagged_and_named(segment: xr.DataArray) -> None:
    with pytest.warns(UserWarning, match=r"regions \[0, 1") as caught:
        neural = nm.fit_neural_map(segment, config=TINY, max_region=24, device="cpu", base="none",
                                   **{**TINY_FIT, "max_steps": 5, "target_mae": 0.005})
    assert neural.regions_above_target == list(range(neural.tiling.n_regions))
    assert "target_mae=0.005" in str(caught[0].message)
    assert all(s["voxel_mae"] > 0.005 for s in neural.attrs["region_stats"])
    with pytest.raises(ParameterError, match="base="):
        nm.fit_neural_map(segment, device="cpu", base="linear")


def _bytes(folder: Path) -> int:
    return sum(os.path.getsize(folder / f) for f in os.listdir(folder))


@pytest.mark.parametrize(("precision", "bound"), [("uint8", 1 / 510), ("uint16", 1 / 131070), ("float16", 5e-4)])
def test_compact_save_stays_within_its_error(tiny_map: nm.NeuralMap, segment: xr.DataArray, tmp_path: Path,
                                             precision: str, bound: float) -> None:
    folder = tiny_map.save(tmp_path / precision, precision=precision)
    loaded = nm.NeuralMap.load(folder)
    span = float(segment.max() - segment.min())
    error = np.abs(loaded.sample().values - tiny_map.sample().values) / span
    assert error.max() <= bound + 1e-4  # + float16 residual weights
    mrc_bytes = os.path.getsize(segment.attrs["source_uri"].replace("file://", "")) if \
        os.path.exists(segment.attrs["source_uri"].replace("file://", "")) else segment.size * 4
    assert _bytes(folder) < mrc_bytes


def test_damaged_files_are_refused(tiny_map: nm.NeuralMap, tmp_path: Path) -> None:
    folder = tiny_map.save(tmp_path / "map")
    (folder / "neural_map.npz").write_bytes(b"not a zip")
    with pytest.raises(FormatError):
        nm.NeuralMap.load(folder)
    with pytest.raises(ParameterError):
        tiny_map.save(tmp_path / "other", precision="int4")


def test_fourier_base_is_fourier_zero_padding_at_the_half_voxels(segment: xr.DataArray, tmp_path: Path) -> None:
    """base='fourier': no SIREN fit; the map through every voxel, and at every half voxel the map's
    band-limited interpolation (NumPy zero-padding of the 16-voxel mirrored map, computed here)."""
    nmap = nm.fit_neural_map(segment, base="fourier", max_region=24, device="cpu")
    stats = nmap.attrs["region_stats"]
    assert all(s["stopped"] == "nothing_to_fit" and s["steps"] == 0 for s in stats)
    assert nmap.attrs["voxel_mae"] < 1e-5 and not nmap.regions_above_target
    values, _ = nm.normalise_map(segment.values.astype(np.float64))
    pad = 16
    fine = fourier_upsample(np.pad(values, pad, mode="reflect"))
    fine = fine[tuple(slice(2 * pad, 2 * pad + 2 * n - 1) for n in values.shape)]
    half = {d: np.arange(2 * segment.sizes[d] - 1) / 2.0 * float(segment[d][1] - segment[d][0])
            + float(segment[d][0]) for d in ("z", "y", "x")}
    like = xr.Dataset(coords=half)
    np.testing.assert_allclose(nmap.sample(like, normalized=True).values, fine, atol=2e-5)
    # between the half voxels it is the spline of that grid: a cubic spline of the refined values
    u = np.random.default_rng(1).uniform(0.0, np.array(values.shape) - 1.0, (300, 3))
    points = (u * np.array([float(segment[d][1] - segment[d][0]) for d in ("z", "y", "x")])
              + np.array([float(segment[d][0]) for d in ("z", "y", "x")]))[:, ::-1]
    expected = ndimage.map_coordinates(fine, 2 * u.T, order=3, mode="mirror")
    np.testing.assert_allclose(nmap.density(points, normalized=True), expected, atol=2e-5)
    loaded = nm.NeuralMap.load(nmap.save(tmp_path / "fourier", precision="uint16"))
    assert loaded.base_kind == "fourier"
    np.testing.assert_allclose(loaded.sample(like, normalized=True).values, fine, atol=1e-4)
    with pytest.raises(ParameterError, match="base='spline'"):
        nm.fit_neural_map(segment, base="spline", device="cpu")
