"""Simulated particles: projections along the ground-truth pose, CTF zeros, SNR, reproducibility, files."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import starfile
import xarray as xr
from scipy import stats
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

from perc_platform import open_particles
from perc_platform.errors import ParameterError
from perc_platform.simulate import density_map, euler_to_matrix, matrix_to_euler, particles, write_particles

BOX, PIXEL = 64, 2.0


def _relion_matrix(c: xr.DataArray) -> np.ndarray:
    """RELION's A(rot, tilt, psi), via scipy: the transpose of the active intrinsic ZYZ rotation."""
    angles = [float(c.angle_rot), float(c.angle_tilt), float(c.angle_psi)]
    return Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().T


def test_euler_angles_follow_relion() -> None:
    rng = np.random.default_rng(4)
    rot, tilt, psi = rng.uniform(-180, 180, 50), rng.uniform(0, 180, 50), rng.uniform(-180, 180, 50)
    ours = euler_to_matrix(rot, tilt, psi)
    scipy = np.stack([Rotation.from_euler("ZYZ", a, degrees=True).as_matrix().T
                      for a in zip(rot, tilt, psi, strict=True)])
    np.testing.assert_allclose(ours, scipy, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(*matrix_to_euler(ours)), ours, atol=1e-9)


def test_projection_of_the_volume_along_the_pose_is_the_clean_image(actin: xr.Dataset) -> None:
    clean = particles(actin, 4, BOX, PIXEL, seed=3, stage="clean")
    images = clean.values
    volume = density_map(actin, PIXEL, clean.attrs["resolution"], box=BOX).values.astype(np.float64)
    grid = (np.arange(BOX) - BOX // 2) * PIXEL
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    for i in range(4):
        c = clean.isel(particle=i)
        a = _relion_matrix(c)
        # Image point (x, y) at depth z comes from model point A^T (x + shift_x, y + shift_y, z).
        r = np.stack([x + float(c.shift_x), y + float(c.shift_y), z], axis=-1) @ a
        index = [r[..., 2] / PIXEL + BOX // 2, r[..., 1] / PIXEL + BOX // 2, r[..., 0] / PIXEL + BOX // 2]
        projection = map_coordinates(volume, index, order=3, mode="constant").sum(axis=0) * PIXEL
        assert np.corrcoef(projection.ravel(), images[i].ravel())[0, 1] > 0.999
        assert np.abs(projection - images[i]).max() < 0.05 * images[i].max()


def test_clean_image_equals_the_map_of_the_rotated_atoms_summed_along_z(actin: xr.Dataset) -> None:
    clean = particles(actin, 2, BOX, PIXEL, seed=5, stage="clean", max_shift=6.0)
    centre = actin["position"].values.mean(axis=0)
    for i in range(2):
        c = clean.isel(particle=i)
        moved = (actin["position"].values - centre) @ _relion_matrix(c).T
        moved[:, :2] -= [float(c.shift_x), float(c.shift_y)]
        rotated = actin.assign(position=(("atom", "axis"), moved))
        volume = density_map(rotated, PIXEL, clean.attrs["resolution"], box=BOX, center=(0.0, 0.0, 0.0),
                             cutoff=8.0)
        summed = volume.values.astype(np.float64).sum(axis=0) * PIXEL
        np.testing.assert_allclose(summed, clean.values[i], atol=1e-3 * clean.values[i].max())


def _ctf_formula(s: np.ndarray, df: float, voltage: float, cs: float, w: float) -> np.ndarray:
    volts = voltage * 1e3
    lam = 12.2639 / np.sqrt(volts + 0.97845e-6 * volts**2)
    gamma = 2 * np.pi * (-0.5 * df * lam * s**2 + 0.25 * cs * 1e7 * lam**3 * s**4)
    return np.sqrt(1 - w**2) * np.sin(gamma) - w * np.cos(gamma)


def test_ctf_zeros_fall_where_the_formula_says(actin: xr.Dataset) -> None:
    kwargs = dict(n=3, box=128, pixel_size=PIXEL, defocus_range=(5000.0, 8000.0), seed=8)
    clean = particles(actin, stage="clean", **kwargs)
    with_ctf = particles(actin, stage="ctf", **kwargs)
    freq = np.fft.fftfreq(128, d=PIXEL)
    for i in range(3):
        c = with_ctf.isel(particle=i)
        du, dv, angle = float(c.defocus_u), float(c.defocus_v), float(c.defocus_angle)
        transfer = np.fft.fft2(with_ctf.values[i].astype(np.float64)) / np.fft.fft2(clean.values[i])
        # Along s_x (alpha = 0) the defocus is 0.5 (dU + dV + (dU - dV) cos(2 (0 - angle))).
        df = 0.5 * (du + dv + (du - dv) * np.cos(2 * np.deg2rad(-angle)))
        s = freq[1:64]
        measured = transfer[0, 1:64].real
        expected = _ctf_formula(s, df, 300.0, 2.7, 0.1)
        np.testing.assert_allclose(measured, expected, atol=2e-3)
        # Zeros of the formula (dense solution of sqrt(1 - w^2) sin g = w cos g) vs sign changes measured.
        fine = np.linspace(s[0], s[-1], 200_000)
        zeros = fine[np.flatnonzero(np.diff(np.sign(_ctf_formula(fine, df, 300.0, 2.7, 0.1))))]
        changes = np.flatnonzero(np.diff(np.sign(measured)))
        assert len(zeros) == len(changes) >= 5
        for zero, k in zip(zeros, changes, strict=True):
            assert s[k] <= zero <= s[k + 1]


@pytest.mark.parametrize("snr", [0.05, 0.5])
def test_measured_snr_matches_the_request(actin: xr.Dataset, snr: float) -> None:
    kwargs = dict(n=40, box=BOX, pixel_size=PIXEL, snr=snr, seed=11)
    signal = particles(actin, stage="ctf", **kwargs).values.astype(np.float64)
    noisy = particles(actin, **kwargs).values.astype(np.float64)
    measured = signal.var(axis=(1, 2)) / (noisy - signal).var(axis=(1, 2))
    assert measured.mean() == pytest.approx(snr, rel=0.1)
    assert np.all(np.abs(measured / snr - 1) < 0.2)


def test_generation_is_lazy_reproducible_and_independent_of_chunking(actin: xr.Dataset) -> None:
    a = particles(actin, 12, 32, 3.0, seed=2, chunk_size=5)
    assert isinstance(a.data, da.Array) and a.data.chunks[0] == (5, 5, 2)
    b = particles(actin, 12, 32, 3.0, seed=2, chunk_size=12)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.isel(particle=slice(5, 10)).values, b.values[5:10])
    c = particles(actin, 12, 32, 3.0, seed=3)
    assert not np.allclose(a.values, c.values)
    for name in ("angle_rot", "angle_tilt", "angle_psi", "shift_x", "shift_y", "defocus_u", "defocus_v",
                 "defocus_angle", "phase_shift"):
        assert a[name].dims == ("particle",)
    assert a.attrs["pixel_size"] == 3.0 and a.attrs["voltage"] == 300.0


def test_orientations_are_uniform_on_so3(actin: xr.Dataset) -> None:
    poses = particles(actin, 4000, 8, 3.0, seed=0)
    matrices = euler_to_matrix(poses.angle_rot.values, poses.angle_tilt.values, poses.angle_psi.values)
    # Uniform on SO(3): the viewing direction is uniform on the sphere (cos(tilt) ~ U(-1, 1)) and psi is
    # uniform and independent.
    assert stats.kstest(np.cos(np.deg2rad(poses.angle_tilt.values)), "uniform", args=(-1, 2)).pvalue > 0.01
    assert stats.kstest(poses.angle_psi.values, "uniform", args=(-180, 360)).pvalue > 0.01
    assert np.abs(matrices.mean(axis=0)).max() < 0.05
    shifts = np.abs(np.concatenate([poses.shift_x.values, poses.shift_y.values]))
    assert 0 < shifts.max() <= 0.05 * 8 * 3.0


def test_write_mrcs_and_relion31_star_round_trip(actin: xr.Dataset, tmp_path: Path) -> None:
    images = particles(actin, 10, 32, 2.5, seed=1, chunk_size=4)
    stack, star = write_particles(images, tmp_path / "sim.mrcs")
    assert stack == tmp_path / "sim.mrcs" and star == tmp_path / "sim.star"
    table = starfile.read(star)
    assert set(table) == {"optics", "particles"}
    assert float(table["optics"]["rlnImagePixelSize"][0]) == 2.5
    assert len(table["particles"]) == 10
    back = open_particles(star=star)
    np.testing.assert_array_equal(back.values, images.values)
    for name in ("defocus_u", "defocus_v", "defocus_angle", "angle_rot", "angle_tilt", "angle_psi", "shift_x",
                 "shift_y"):
        np.testing.assert_allclose(back[name].values, images[name].values, atol=1e-5)
    assert back.attrs["pixel_size"] == 2.5 and back.attrs["spherical_aberration"] == 2.7


def test_bad_parameters_are_refused(actin: xr.Dataset) -> None:
    with pytest.raises(ParameterError, match="snr"):
        particles(actin, 2, 16, 1.0, snr=0)
    with pytest.raises(ParameterError, match="defocus_range"):
        particles(actin, 2, 16, 1.0, defocus_range=(0, 100))
    with pytest.raises(ParameterError, match="stage"):
        particles(actin, 2, 16, 1.0, stage="blurred")  # type: ignore[arg-type]
