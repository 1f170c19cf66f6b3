"""molmap-style density maps from atoms: one Gaussian per atom weighted by atomic number (UCSF Chimera).

Atom ``a`` at ``p_a`` with atomic number ``Z_a`` contributes ``Z_a / ((2 pi)^1.5 sigma^3) exp(-|r - p_a|^2 /
(2 sigma^2))`` (the Gaussian integrates to ``Z_a``, as in Chimera), with ``sigma = resolution / (pi sqrt(2))``,
cut off at ``cutoff * sigma`` along each axis as Chimera's ``sum_of_gaussians`` does. The Gaussian is
separable, so each z-plane is one small matrix product over the atoms near it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.config import get_config
from perc_platform.conventions import DENSITY_NAME, VOLUME_DIMS, provenance, validate_volume
from perc_platform.errors import ParameterError
from perc_platform.simulate._atoms import StructureLike, as_structure, atom_arrays, model_center, molmap_sigma

__all__ = ["density_map", "gaussian_factors", "render_slab"]


def gaussian_factors(grid: np.ndarray, centers: np.ndarray, sigma: float, cutoff: float) -> np.ndarray:
    """``exp(-(grid - c)^2 / (2 sigma^2))`` for each centre (rows) and grid point (columns), 0 past the cutoff."""
    d = grid[None, :] - centers[:, None]
    out = np.exp(-0.5 * (d / sigma) ** 2)
    out[np.abs(d) > cutoff * sigma] = 0.0
    return out


def render_slab(positions: np.ndarray, weights: np.ndarray, z: np.ndarray, y: np.ndarray, x: np.ndarray,
                sigma: float, cutoff: float) -> np.ndarray:
    """Sum of ``weights * exp(-|r - p|^2 / 2 sigma^2)`` over atoms on the (z, y, x) grid (float32)."""
    out = np.zeros((z.size, y.size, x.size), dtype=np.float32)
    if positions.shape[0] == 0:
        return out
    gz = gaussian_factors(z, positions[:, 2], sigma, cutoff) * weights[:, None]
    gy = gaussian_factors(y, positions[:, 1], sigma, cutoff)
    gx = gaussian_factors(x, positions[:, 0], sigma, cutoff)
    for k in range(z.size):
        near = np.flatnonzero(gz[:, k])
        if near.size:
            out[k] = (gy[near].T * gz[near, k]) @ gx[near]
    return out


def _voxel3(voxel_size: float | Sequence[float]) -> np.ndarray:
    values = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,)).copy()
    if not np.all(values > 0):
        raise ParameterError(f"voxel_size={voxel_size!r}: give a positive voxel size in Angstrom (x, y, z)")
    return values


def _grid(positions: np.ndarray, voxel_size: float | Sequence[float], box: int | Sequence[int] | None,
          like: xr.DataArray | None, center: np.ndarray, pad: float) -> dict[str, np.ndarray]:
    """Angstrom coords of the map: those of ``like``, a ``box`` centred on ``center``, or the padded model."""
    if like is not None:
        validate_volume(like)
        return {d: np.asarray(like.coords[d].values, dtype=np.float64) for d in VOLUME_DIMS}
    step = _voxel3(voxel_size)
    if box is not None:
        shape = np.broadcast_to(np.asarray(box, dtype=np.int64), (3,))[::-1]  # box is (x, y, z) or one int
        if not np.all(shape > 0):
            raise ParameterError(f"box={box!r}: give a positive number of voxels")
        # Voxel n // 2 sits on the centre, as in RELION and cryoDRGN boxes.
        origin = center - (shape[::-1] // 2) * step
    else:
        lo, hi = positions.min(axis=0) - pad, positions.max(axis=0) + pad
        shape = np.ceil((hi - lo) / step).astype(np.int64)[::-1] + 1
        origin = lo
    return {d: origin[i] + np.arange(shape[2 - i]) * step[i] for i, d in zip((2, 1, 0), VOLUME_DIMS, strict=True)}


def density_map(structure: StructureLike, voxel_size: float | Sequence[float] | None = None,
                resolution: float = 6.0, box: int | Sequence[int] | None = None, *,
                like: xr.DataArray | None = None, center: Sequence[float] | None = None, cutoff: float = 5.0,
                pad: float | None = None, chunks: int | None = None) -> xr.DataArray:
    """A molmap-style density map of ``structure`` as a lazy ``density`` DataArray in Angstrom coords.

    Parameters
    ----------
    structure
        Structure Dataset (``position`` in Angstrom and an ``element`` coord), or a path/id for
        ``perc_platform.open_structure``.
    voxel_size
        Grid step in Angstrom (one number or x, y, z); default resolution / 3 (Chimera's); ignored with ``like``.
    resolution
        Resolution in Angstrom; the atom Gaussians have sigma = resolution / (pi sqrt(2)).
    box
        Voxels per side (one int or x, y, z): a box with voxel ``box // 2`` on ``center``. Without ``box`` and
        ``like``, the grid spans the model plus ``pad`` (default 3 x resolution, as Chimera) on each side.
    like
        A map whose Angstrom coords (``z``, ``y``, ``x``) are used as the grid, so the result overlays it.
    center
        Centre of a ``box`` grid (x, y, z, Angstrom); default the mean atom position.
    cutoff
        Gaussians are cut off at ``cutoff * sigma`` along each axis (Chimera's default 5).
    chunks
        z-planes per dask chunk (default: about ``PERC_CHUNK_BYTES`` per chunk); each chunk only sees the
        atoms within the cutoff of its planes.
    """
    ds = as_structure(structure)
    positions, numbers = atom_arrays(ds)
    sigma = molmap_sigma(resolution)
    if not cutoff > 0:
        raise ParameterError(f"cutoff={cutoff!r}: give a positive number of sigmas")
    voxel_size = resolution / 3.0 if voxel_size is None else voxel_size
    coords = _grid(positions, voxel_size, box, like, model_center(positions, center),
                   3.0 * resolution if pad is None else pad)
    weights = numbers / ((2.0 * np.pi) ** 1.5 * sigma**3)
    z, y, x = (coords[d] for d in VOLUME_DIMS)
    plane_bytes = 4 * y.size * x.size
    step = chunks or max(1, get_config().chunk_bytes // max(1, plane_bytes))
    reach = cutoff * sigma
    blocks = []
    for start in range(0, z.size, step):
        zs = z[start:start + step]
        near = (positions[:, 2] >= zs.min() - reach) & (positions[:, 2] <= zs.max() + reach)
        task = dask.delayed(render_slab, pure=True)(positions[near], weights[near], zs, y, x, sigma, cutoff)
        blocks.append(da.from_delayed(task, shape=(zs.size, y.size, x.size), dtype=np.float32))
    data = da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]
    line = (f"simulated molmap density at {resolution} A ({positions.shape[0]} atoms, sigma {sigma:.4g} A, "
            f"cutoff {cutoff} sigma)")
    attrs: dict[str, Any] = provenance(source_id=str(ds.attrs.get("source_id", "structure")),
                                       source_uri=str(ds.attrs.get("source_uri", "")), history=line)
    if ds.attrs.get("history"):
        attrs["history"] = f"{ds.attrs['history']}\n{attrs['history']}"
    fallback = _voxel3(voxel_size)
    steps = [float(coords[d][1] - coords[d][0]) if coords[d].size > 1 else float(fallback[i])
             for i, d in enumerate(("x", "y", "z"))]
    attrs.update(voxel_size=steps,
                 origin=[float(coords[d][0]) for d in ("x", "y", "z")], resolution=float(resolution), sigma=sigma)
    return xr.DataArray(data, dims=VOLUME_DIMS, coords=coords, name=DENSITY_NAME, attrs=attrs)
