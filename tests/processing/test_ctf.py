"""The CTF (RELION convention) and per-particle phase flipping / Wiener filtering."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from perc_platform.errors import ParameterError
from perc_platform.processing import ctf, particle_ctf, phase_flip, wiener_filter
from perc_platform.processing.ctf import electron_wavelength, frequency_grid
from perc_platform.simulate import particles
from tests.simulate.helpers import gemmi_structure


@pytest.fixture(scope="module")
def stages(shared: Path) -> tuple[xr.DataArray, xr.DataArray]:
    actin = gemmi_structure(shared / "structures" / "3MFP_tempy.pdb")
    kwargs = dict(n=6, box=48, pixel_size=2.5, seed=4, chunk_size=4, phase_shift=30.0)
    return particles(actin, stage="clean", **kwargs), particles(actin, stage="ctf", **kwargs)


def _reference_ctf(sx: np.ndarray, sy: np.ndarray, du: float, dv: float, angle: float, phase: float,
                   bfactor: float = 0.0) -> np.ndarray:
    """REFERENCE.md, written out independently: 300 kV, Cs 2.7 mm, w 0.1."""
    volts = 300e3
    lam = 12.2639 / np.sqrt(volts + 0.97845e-6 * volts**2)
    s2 = sx**2 + sy**2
    df = 0.5 * (du + dv + (du - dv) * np.cos(2 * (np.arctan2(sy, sx) - np.deg2rad(angle))))
    gamma = 2 * np.pi * (-0.5 * df * lam * s2 + 0.25 * 2.7e7 * lam**3 * s2**2) - np.deg2rad(phase)
    return (np.sqrt(1 - 0.01) * np.sin(gamma) - 0.1 * np.cos(gamma)) * np.exp(-bfactor * s2 / 4)


def test_wavelength_and_formula() -> None:
    assert electron_wavelength(300) == pytest.approx(0.019687, abs=2e-6)
    sx, sy = frequency_grid((40, 40), 1.7)
    ours = ctf(sx, sy, np.array([15000.0, 9000.0]), np.array([14000.0, 8800.0]), np.array([30.0, 100.0]),
               voltage=300, spherical_aberration=2.7, amplitude_contrast=0.1, phase_shift=np.array([0.0, 90.0]),
               bfactor=np.array([0.0, 50.0]))
    assert ours.shape == (2, 40, 40)
    np.testing.assert_allclose(ours[0], _reference_ctf(sx, sy, 15000, 14000, 30, 0), atol=1e-12)
    np.testing.assert_allclose(ours[1], _reference_ctf(sx, sy, 9000, 8800, 100, 90, 50), atol=1e-12)
    assert ours[0, 0, 0] == pytest.approx(-0.1)  # at s = 0 only the amplitude contrast remains


def test_particle_ctf_uses_each_particles_coords(stages: tuple[xr.DataArray, xr.DataArray]) -> None:
    _, images = stages
    filters = particle_ctf(images)
    assert isinstance(filters.data, da.Array) and filters.shape == (6, 48, 25)
    sx, sy = frequency_grid((48, 48), 2.5, rfft=True)
    for i in (0, 5):
        c = images.isel(particle=i)
        expected = _reference_ctf(sx, sy, float(c.defocus_u), float(c.defocus_v), float(c.defocus_angle), 30.0)
        # All but the Nyquist column, which stands for +-Nyquist and holds the mean of the two.
        np.testing.assert_allclose(filters.values[i][:, :-1], expected[:, :-1], atol=1e-6)
        other = _reference_ctf(-sx, sy, float(c.defocus_u), float(c.defocus_v), float(c.defocus_angle), 30.0)
        np.testing.assert_allclose(filters.values[i][:24, -1], 0.5 * (expected + other)[:24, -1], atol=1e-6)


def test_phase_flip_and_wiener_filter(stages: tuple[xr.DataArray, xr.DataArray]) -> None:
    clean, images = stages
    transfer = particle_ctf(images).values.astype(np.float64)
    spectrum = np.fft.rfft2(clean.values.astype(np.float64))
    flipped = phase_flip(images)
    assert isinstance(flipped.data, da.Array) and flipped.data.chunks == images.data.chunks
    # sign(CTF) * CTF * F = |CTF| * F
    np.testing.assert_allclose(flipped.values, np.fft.irfft2(np.abs(transfer) * spectrum, s=(48, 48)),
                               atol=1e-4 * np.abs(clean.values).max())
    filtered = wiener_filter(images, snr=2.0)
    expected = np.fft.irfft2(transfer**2 / (transfer**2 + 0.5) * spectrum, s=(48, 48))
    np.testing.assert_allclose(filtered.values, expected, atol=1e-4 * np.abs(clean.values).max())
    in_memory = wiener_filter(images.load(), snr=2.0)
    np.testing.assert_allclose(in_memory.values, filtered.values, atol=1e-6)
    assert "Wiener" in filtered.attrs["history"].splitlines()[-1]


def test_ctf_correction_needs_defocus_and_optics() -> None:
    bare = xr.DataArray(np.zeros((2, 8, 8), np.float32), dims=("particle", "y", "x"), attrs={"pixel_size": 1.0})
    with pytest.raises(ParameterError, match="defocus_u"):
        phase_flip(bare)
    with_defocus = bare.assign_coords(defocus_u=("particle", [1e4, 1e4]), defocus_v=("particle", [1e4, 1e4]))
    with pytest.raises(ParameterError, match="voltage"):
        phase_flip(with_defocus)
    with pytest.raises(ParameterError, match="snr"):
        wiener_filter(with_defocus, snr=0)
