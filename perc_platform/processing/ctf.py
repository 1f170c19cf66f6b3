"""The contrast transfer function (RELION convention, as cryoDRGN) and per-particle CTF correction.

``ctf`` evaluates the CTF on spatial frequencies; ``particle_ctf`` gives each particle its CTF on the
FFT grid from the particle's own coords (``defocus_u``, ``defocus_v``, ``defocus_angle``, ``phase_shift``,
``ctf_bfactor``) and the optics attrs (``voltage``, ``spherical_aberration``, ``amplitude_contrast``,
``pixel_size``); ``phase_flip`` and ``wiener_filter`` correct particle stacks lazily, chunk by chunk.

Units follow the conventions: defocus in Angstrom, angles in degrees, voltage in kV, Cs in mm.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import add_history, validate_particles
from perc_platform.errors import ParameterError

__all__ = ["CTF_COORDS", "ctf", "ctf_grid", "electron_wavelength", "frequency_grid", "particle_ctf", "phase_flip",
           "wiener_filter"]

#: Per-particle coords that describe each particle's CTF, with the value used when one is absent.
CTF_COORDS: dict[str, float] = {"defocus_u": np.nan, "defocus_v": np.nan, "defocus_angle": 0.0,
                                "phase_shift": 0.0, "ctf_bfactor": 0.0}
_OPTICS = ("voltage", "spherical_aberration", "amplitude_contrast")


def electron_wavelength(voltage: float) -> float:
    """Relativistic electron wavelength (Angstrom) at ``voltage`` kV: 12.2639 / sqrt(V + 0.97845e-6 V^2)."""
    volts = float(voltage) * 1e3
    return 12.2639 / np.sqrt(volts + 0.97845e-6 * volts**2)


def frequency_grid(shape: tuple[int, int], pixel_size: float, *, rfft: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies ``(s_x, s_y)`` (1/Angstrom) of NumPy's ``fft2`` (or ``rfft2``) layout, uncentred."""
    ny, nx = shape
    sx = np.fft.rfftfreq(nx, d=pixel_size) if rfft else np.fft.fftfreq(nx, d=pixel_size)
    sy = np.fft.fftfreq(ny, d=pixel_size)
    return np.broadcast_arrays(sx[None, :], sy[:, None])  # type: ignore[return-value]


def ctf(s_x: np.ndarray, s_y: np.ndarray, defocus_u: Any, defocus_v: Any, defocus_angle: Any, *,
        voltage: float, spherical_aberration: float, amplitude_contrast: float, phase_shift: Any = 0.0,
        bfactor: Any = 0.0) -> np.ndarray:
    """The CTF at frequencies ``(s_x, s_y)`` (1/A), RELION's formula (REFERENCE.md).

    ``gamma = 2 pi (-0.5 df lambda s^2 + 0.25 Cs lambda^3 s^4) - phi`` with the defocus along the frequency's
    direction ``df = 0.5 (dfU + dfV + (dfU - dfV) cos(2 (alpha - alpha_ast)))``, and
    ``CTF = sqrt(1 - w^2) sin(gamma) - w cos(gamma)``, times ``exp(-B s^2 / 4)`` for a B-factor.

    Per-particle parameters may be arrays of shape ``(n,)``; the result then has shape ``(n, *s_x.shape)``.
    """
    def per_particle(value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        return arr.reshape(arr.shape + (1,) * np.ndim(s_x))

    w = float(amplitude_contrast)
    if not 0 <= w < 1:
        raise ParameterError(f"amplitude_contrast={amplitude_contrast!r}: give a fraction in [0, 1)")
    lam = electron_wavelength(voltage)
    cs = float(spherical_aberration) * 1e7
    du, dv = per_particle(defocus_u), per_particle(defocus_v)
    angle_ast = np.deg2rad(per_particle(defocus_angle))
    phi = np.deg2rad(per_particle(phase_shift))
    s2 = s_x**2 + s_y**2
    alpha = np.arctan2(s_y, s_x)
    df = 0.5 * (du + dv + (du - dv) * np.cos(2.0 * (alpha - angle_ast)))
    gamma = 2.0 * np.pi * (-0.5 * df * lam * s2 + 0.25 * cs * lam**3 * s2**2) - phi
    out = np.sqrt(1.0 - w**2) * np.sin(gamma) - w * np.cos(gamma)
    b = per_particle(bfactor)
    if np.any(b != 0):
        out = out * np.exp(-b * s2 / 4.0)
    return out


def _ctf_params(images: xr.DataArray) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-particle CTF parameters (coords) and optics (attrs, or coords when they vary) of a stack."""
    n = images.sizes[images.dims[0]]
    params: dict[str, np.ndarray] = {}
    for name, default in CTF_COORDS.items():
        if name in images.coords:
            params[name] = np.asarray(images.coords[name].values, dtype=np.float64)
        elif np.isnan(default):
            raise ParameterError(f"particles lack the {name!r} coord; CTF correction needs per-particle defocus "
                                 "(open the stack with its STAR file)")
        else:
            params[name] = np.full(n, default)
    optics: dict[str, float] = {}
    for name in (*_OPTICS, "pixel_size"):
        value = images.attrs.get(name)
        if value is None and name in images.coords:
            values = np.unique(np.asarray(images.coords[name].values, dtype=np.float64))
            if values.size != 1:
                raise ParameterError(f"particles have several {name} values {values.tolist()}; correct each "
                                     "optics group separately (select it first)")
            value = values[0]
        if value is None:
            raise ParameterError(f"particles lack attrs[{name!r}]; CTF correction needs the optics of the stack")
        optics[name] = float(value)
    return params, optics


def ctf_grid(shape: tuple[int, int], pixel_size: float, defocus_u: Any, defocus_v: Any, defocus_angle: Any, *,
             voltage: float, spherical_aberration: float, amplitude_contrast: float, phase_shift: Any = 0.0,
             bfactor: Any = 0.0) -> np.ndarray:
    """Per-particle CTFs on the ``rfft2`` grid of ``shape`` images: ``(n, ny, nx // 2 + 1)`` float32.

    The formula is not symmetric under ``s -> -s`` on the Nyquist column of an even box (the column stands
    for both +Nyquist and -Nyquist), so there it is averaged over ``s_y`` and ``-s_y``. Every filter built
    from this grid is then a real, Hermitian-consistent operator: ``irfft2(rfft2(x) * f)`` loses nothing,
    and filters applied one after the other compose exactly (simulation, then correction).
    """
    s_x, s_y = frequency_grid(shape, pixel_size, rfft=True)
    out = ctf(s_x, s_y, defocus_u, defocus_v, defocus_angle, phase_shift=phase_shift, bfactor=bfactor,
              voltage=voltage, spherical_aberration=spherical_aberration, amplitude_contrast=amplitude_contrast)
    if shape[1] % 2 == 0:
        nyquist = out[..., -1]
        nyquist[...] = 0.5 * (nyquist + np.roll(nyquist[..., ::-1], 1, axis=-1))
    return out.astype(np.float32)


def particle_ctf(images: xr.DataArray) -> xr.DataArray:
    """Each particle's CTF on the ``rfft2`` grid of its image (``ctf_grid``), a DataArray ``(particle, ky, kx)``.

    Lazy (dask, chunked like ``images``) when ``images`` is.
    """
    validate_particles(images)
    params, optics = _ctf_params(images)
    shape = (images.shape[1], images.shape[2])
    pixel = optics.pop("pixel_size")

    def block(du: np.ndarray, dv: np.ndarray, angle: np.ndarray, phase: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ctf_grid(shape, pixel, du, dv, angle, phase_shift=phase, bfactor=b, **optics)

    args = [params[k] for k in CTF_COORDS]
    if isinstance(images.data, da.Array):
        chunks = images.data.chunks[0]
        lazy = [da.from_array(a, chunks=(chunks,)) for a in args]
        data: Any = da.map_blocks(block, *lazy, dtype=np.float32, new_axis=[1, 2],
                                  chunks=(chunks, (shape[0],), (shape[1] // 2 + 1,)))
    else:
        data = block(*args)
    dim = images.dims[0]
    return xr.DataArray(data, dims=(dim, "ky", "kx"), name="ctf",
                        coords={dim: images.coords[dim]} if dim in images.coords else None)


def _apply(images: xr.DataArray, transfer: Any, what: str) -> xr.DataArray:
    """``irfft2(rfft2(image) * transfer(ctf))`` per particle, lazily per chunk."""
    validate_particles(images)
    filt = particle_ctf(images)
    shape = images.shape[1:]

    def block(x: np.ndarray, c: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft2(np.asarray(x, dtype=np.float64))
        return np.fft.irfft2(spectrum * transfer(c), s=shape).astype(np.float32)

    if isinstance(images.data, da.Array):
        data: Any = da.map_blocks(block, images.data, filt.data, dtype=np.float32)
    else:
        data = block(images.values, filt.values)
    out = images.copy(data=data)
    add_history(out, what)
    return out


def phase_flip(images: xr.DataArray) -> xr.DataArray:
    """Multiply each particle's Fourier coefficients by the sign of its CTF (lazy, per chunk)."""
    return _apply(images, np.sign, "phase-flipped (sign of each particle's CTF)")


def wiener_filter(images: xr.DataArray, snr: float = 1.0) -> xr.DataArray:
    """Wiener-filter each particle: Fourier coefficients times CTF / (CTF^2 + 1/snr) (lazy, per chunk)."""
    if not snr > 0:
        raise ParameterError(f"snr={snr!r}: give a positive signal-to-noise ratio")
    return _apply(images, lambda c: c / (c * c + 1.0 / snr), f"Wiener-filtered with snr={snr}")
