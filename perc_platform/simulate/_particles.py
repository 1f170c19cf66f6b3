"""Simulated particle images: exact projections of Gaussian atoms, the CTF and noise at a given SNR.

A 3-D Gaussian of amplitude ``A`` and width ``sigma`` projects to a 2-D Gaussian of the same width and
amplitude ``A sigma sqrt(2 pi)``, so the projection of a molmap along any direction is computed exactly
from the rotated atoms (no volume, no interpolation). Poses follow RELION: the atom at ``r`` (relative
to the model centre) lands at ``(A r)_xy - shift`` of the image, with ``A = euler_to_matrix(rot, tilt, psi)``
and ``shift = (shift_x, shift_y)`` the ``rlnOriginX/YAngst`` that re-centres the particle.

Everything random is drawn from the seed: the per-particle parameters at once (they become coords), and
each particle's noise from ``numpy.random.default_rng([seed, 1, index])``, so an image does not depend on
the chunking and any chunk can be regenerated alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.config import get_config
from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS, provenance
from perc_platform.errors import ParameterError
from perc_platform.processing.ctf import ctf_grid
from perc_platform.simulate._atoms import StructureLike, as_structure, atom_arrays, model_center, molmap_sigma
from perc_platform.simulate._rotations import euler_to_matrix, matrix_to_euler, quaternion_to_matrix, random_quaternions

__all__ = ["Stage", "particles", "project_atoms"]

Stage = Literal["noisy", "ctf", "clean"]
_REACH = 8.0


def _axis_factors(centers: np.ndarray, box: int, sigma: float) -> Any:
    """Sparse ``(atoms, box)`` matrix of ``exp(-(i - c)^2 / (2 sigma^2))`` (pixel units) within 8 sigma.

    Terms past 8 sigma are below 1.3e-14 of the peak: the projection stays exact to float64 rounding while
    each atom touches a handful of pixels instead of the whole box.
    """
    from scipy import sparse

    half = int(np.ceil(_REACH * sigma))
    offsets = np.arange(-half, half + 2)
    cols = np.floor(centers).astype(np.int64)[:, None] + offsets[None, :]
    rows = np.broadcast_to(np.arange(centers.size)[:, None], cols.shape)
    inside = (cols >= 0) & (cols < box)
    values = np.exp(-0.5 * ((cols[inside] - centers[rows[inside]]) / sigma) ** 2)
    return sparse.csr_matrix((values, (rows[inside], cols[inside])), shape=(centers.size, box))


def project_atoms(positions: np.ndarray, numbers: np.ndarray, matrix: np.ndarray, shift: np.ndarray, box: int,
                  pixel_size: float, sigma: float) -> np.ndarray:
    """Projection of the molmap of centred atoms along pose ``matrix`` on a ``box`` x ``box`` image (float64).

    Pixel ``(j, i)`` sits at ``((i - box // 2), (j - box // 2)) * pixel_size``; each atom adds
    ``Z / (2 pi sigma^2) exp(-|u - p|^2 / (2 sigma^2))`` (its molmap Gaussian integrated along z).
    """
    projected = (positions @ matrix.T)[:, :2] - shift
    centers = projected / pixel_size + box // 2
    sigma_px = sigma / pixel_size
    gx = _axis_factors(centers[:, 0], box, sigma_px)
    gy = _axis_factors(centers[:, 1], box, sigma_px)
    weights = numbers / (2.0 * np.pi * sigma**2)
    return np.asarray((gy.multiply(weights[:, None]).T @ gx).todense())


def _chunk(atoms: tuple[np.ndarray, np.ndarray], params: dict[str, np.ndarray], first: int, box: int,
           pixel_size: float, sigma: float, optics: dict[str, float], snr: float, seed: int,
           stage: Stage) -> np.ndarray:
    positions, numbers = atoms
    matrices = euler_to_matrix(params["angle_rot"], params["angle_tilt"], params["angle_psi"])
    shifts = np.stack([params["shift_x"], params["shift_y"]], axis=1)
    clean = np.stack([project_atoms(positions, numbers, m, s, box, pixel_size, sigma)
                      for m, s in zip(matrices, shifts, strict=True)]) if len(shifts) else np.zeros((0, box, box))
    if stage == "clean":
        return clean.astype(np.float32)
    transfer = ctf_grid((box, box), pixel_size, params["defocus_u"], params["defocus_v"], params["defocus_angle"],
                        phase_shift=params["phase_shift"], bfactor=params.get("ctf_bfactor", 0.0), **optics)
    with_ctf = np.fft.irfft2(np.fft.rfft2(clean) * transfer, s=(box, box))
    if stage == "ctf":
        return with_ctf.astype(np.float32)
    out = np.empty_like(with_ctf, dtype=np.float32)
    for k, image in enumerate(with_ctf):
        noise = np.random.default_rng([seed, 1, first + k]).standard_normal(image.shape)
        out[k] = image + noise * np.sqrt(image.var() / snr)
    return out


def _draw(n: int, rng: np.random.Generator, defocus_range: tuple[float, float], astigmatism: float,
          max_shift: float, phase_shift: float) -> dict[str, np.ndarray]:
    rot, tilt, psi = matrix_to_euler(quaternion_to_matrix(random_quaternions(n, rng)))
    du = rng.uniform(*defocus_range, size=n)
    return {
        "angle_rot": rot, "angle_tilt": tilt, "angle_psi": psi,
        "shift_x": rng.uniform(-max_shift, max_shift, size=n), "shift_y": rng.uniform(-max_shift, max_shift, size=n),
        "defocus_u": du, "defocus_v": du - rng.uniform(0.0, astigmatism, size=n),
        "defocus_angle": rng.uniform(0.0, 180.0, size=n), "phase_shift": np.full(n, float(phase_shift)),
    }


def particles(structure: StructureLike, n: int, box: int, pixel_size: float, snr: float = 0.1,
              defocus_range: tuple[float, float] = (10000.0, 25000.0), seed: int = 0, *,
              voltage: float = 300.0, spherical_aberration: float = 2.7, amplitude_contrast: float = 0.1,
              phase_shift: float = 0.0, astigmatism: float = 500.0, bfactor: float = 0.0,
              max_shift: float | None = None, resolution: float | None = None, center: Sequence[float] | None = None,
              chunk_size: int | None = None, stage: Stage = "noisy") -> xr.DataArray:
    """Simulated particles of ``structure`` as a lazy ``image`` DataArray ``(particle, y, x)``.

    Parameters
    ----------
    n, box, pixel_size
        Number of particles, image side in pixels, pixel size in Angstrom.
    snr
        Signal-to-noise ratio: variance of each CTF-applied image over the box / variance of its noise.
    defocus_range
        ``defocus_u`` is uniform in this range (Angstrom); ``defocus_v = defocus_u - U(0, astigmatism)``;
        ``defocus_angle`` uniform in [0, 180) degrees.
    seed
        Everything random derives from it; the same arguments give the same images.
    voltage, spherical_aberration, amplitude_contrast, phase_shift, bfactor
        Optics (kV, mm, fraction), phase shift (degrees) and CTF B-factor (A^2) of every particle.
    max_shift
        In-plane shifts are uniform in ``[-max_shift, max_shift]`` Angstrom on each axis (default 5% of
        the box).
    resolution
        Width of the atom Gaussians as a molmap resolution (default 3 pixels).
    center
        Point of the model (x, y, z, Angstrom) at the rotation centre; default the mean atom position.
    stage
        ``"noisy"`` (default), ``"ctf"`` (CTF applied, no noise) or ``"clean"`` (projection only).

    The ground truth is in coords named as RELION's columns (``angle_rot``, ``angle_tilt``, ``angle_psi``,
    ``shift_x``, ``shift_y``, ``defocus_u``, ``defocus_v``, ``defocus_angle``, ``phase_shift``) and the
    optics in attrs, so ``processing.write_particles`` writes a RELION 3.1 STAR file for the stack.
    """
    if n < 1 or box < 2 or not pixel_size > 0:
        raise ParameterError(f"n={n}, box={box}, pixel_size={pixel_size}: give n >= 1, box >= 2 and a positive "
                             "pixel size (Angstrom)")
    if not snr > 0:
        raise ParameterError(f"snr={snr!r}: give a positive signal-to-noise ratio")
    if stage not in ("noisy", "ctf", "clean"):
        raise ParameterError(f"stage={stage!r}: use 'noisy', 'ctf' or 'clean'")
    lo, hi = (float(v) for v in defocus_range)
    if not 0 < lo <= hi:
        raise ParameterError(f"defocus_range={defocus_range!r}: give (low, high) in Angstrom, 0 < low <= high")
    ds = as_structure(structure)
    positions, numbers = atom_arrays(ds)
    middle = model_center(positions, center)
    resolution = 3.0 * pixel_size if resolution is None else float(resolution)
    sigma = molmap_sigma(resolution)
    max_shift = 0.05 * box * pixel_size if max_shift is None else float(max_shift)
    params = _draw(n, np.random.default_rng([seed, 0]), (lo, hi), astigmatism, max_shift, phase_shift)
    if bfactor:
        params["ctf_bfactor"] = np.full(n, float(bfactor))
    optics = {"voltage": float(voltage), "spherical_aberration": float(spherical_aberration),
              "amplitude_contrast": float(amplitude_contrast)}
    per_chunk = chunk_size or max(1, min(1024, get_config().chunk_bytes // (4 * box * box)))
    atoms = dask.delayed((positions - middle, numbers), pure=True)
    blocks = []
    for start in range(0, n, per_chunk):
        stop = min(n, start + per_chunk)
        task = dask.delayed(_chunk, pure=True)(atoms, {k: v[start:stop] for k, v in params.items()}, start, box,
                                               pixel_size, sigma, optics, float(snr), int(seed), stage)
        blocks.append(da.from_delayed(task, shape=(stop - start, box, box), dtype=np.float32))
    data = da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    attrs: dict[str, Any] = provenance(
        source_id=f"simulated:{ds.attrs.get('source_id', 'structure')}", source_uri=str(ds.attrs.get("source_uri", "")),
        history=f"simulated {n} particles ({stage}) of {positions.shape[0]} atoms: box {box}, {pixel_size} A/px, "
        f"snr {snr}, seed {seed}")
    attrs.update(pixel_size=float(pixel_size), **optics, snr=float(snr), seed=int(seed), resolution=resolution,
                 sigma=sigma, center=middle.tolist(), stage=stage)
    return xr.DataArray(data, dims=PARTICLE_DIMS, name=IMAGE_NAME, attrs=attrs,
                        coords={k: ("particle", v) for k, v in params.items()})
