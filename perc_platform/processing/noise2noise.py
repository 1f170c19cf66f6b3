"""Noise2Noise training data from movies: odd/even frame averages, patches, percentile normalisation.

Two averages of disjoint frames of one movie share the signal and carry independent noise, so a network
trained to map one to the other learns to denoise (Lehtinen et al., 2018; the EMPIAR-10025 plan).
``noise2noise_pairs`` returns them as a Dataset with ``input`` (odd frames) and ``target`` (even frames);
``extract_patches`` cuts both into the same patches, dropping near-empty ones; ``normalise_percentile``
scales each image by the 95th percentile of its positive values and clips.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import MOVIE_DIMS, add_history
from perc_platform.errors import ParameterError
from perc_platform.processing._images import normalise_block

__all__ = ["extract_patches", "noise2noise_pairs", "normalise_percentile"]

PAIR_NAMES = ("input", "target")


def noise2noise_pairs(movies: xr.DataArray) -> xr.Dataset:
    """Odd- and even-frame averages of each movie (lazy): Dataset of ``input`` and ``target`` ``(movie, y, x)``.

    ``movies`` has dims ``(movie, frame, y, x)`` or ``(frame, y, x)`` (one movie). Frames are numbered from 1
    as in motion correction, so ``input`` averages frames 1, 3, 5, ... and ``target`` frames 2, 4, 6, ...;
    with an odd number of frames the last one is left out so that both averages use as many frames.
    """
    if tuple(movies.dims) == MOVIE_DIMS[1:]:
        movies = movies.expand_dims(MOVIE_DIMS[0])
    if tuple(movies.dims) != MOVIE_DIMS:
        raise ParameterError(f"movies have dims {movies.dims}; expected {MOVIE_DIMS} or {MOVIE_DIMS[1:]}")
    frames = movies.sizes["frame"] // 2 * 2
    if frames < 2:
        raise ParameterError("a Noise2Noise pair needs at least two frames per movie")
    used = movies.isel(frame=slice(0, frames))
    odd = used.isel(frame=slice(0, None, 2)).mean("frame", dtype=np.float32)
    even = used.isel(frame=slice(1, None, 2)).mean("frame", dtype=np.float32)
    out = xr.Dataset({PAIR_NAMES[0]: odd, PAIR_NAMES[1]: even}, attrs=dict(movies.attrs))
    add_history(out, f"Noise2Noise pairs: averages of odd and even frames ({frames // 2} frames each)")
    return out


def _starts(length: int, size: int, stride: int) -> np.ndarray:
    return np.arange(0, length - size + 1, stride)


def _cut(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    """Patches of ``(n, y, x)`` images at corners ``ys`` x ``xs``: ``(n * len(ys) * len(xs), size, size)``, by
    plain slicing (a sliding-window view indexed by the corners would copy every window position first)."""
    out = np.empty((values.shape[0], ys.size, xs.size, size, size), dtype=values.dtype)
    for a, y in enumerate(ys.tolist()):
        for b, x in enumerate(xs.tolist()):
            out[:, a, b] = values[:, y:y + size, x:x + size]
    return out.reshape(-1, size, size)


def extract_patches(images: xr.DataArray | xr.Dataset, size: int, stride: int | None = None, *,
                    min_std: float | None = None, reject_fraction: float = 0.0) -> xr.DataArray | xr.Dataset:
    """Cut each image into ``size`` x ``size`` patches every ``stride`` pixels (default ``size``: tiles).

    ``images`` is a DataArray ``(n, y, x)`` or a Dataset of such arrays (e.g. Noise2Noise pairs), which are
    cut at the same places. Patches whose standard deviation (of the first variable for a Dataset) is
    below ``min_std``, or in the lowest ``reject_fraction`` of all patches, are dropped (empty carbon,
    vacuum). The result has dims ``(patch, y, x)`` with coords ``source`` (image index), ``y0`` and ``x0``
    (pixel of the patch corner). For dask-backed images only the patches' spread is computed here, one chunk
    of images at a time; the kept patches stay lazy (dask), so a stack larger than memory streams through.
    """
    first = images[next(iter(images.data_vars))] if isinstance(images, xr.Dataset) else images
    if first.ndim != 3:
        raise ParameterError(f"extract_patches needs (n, y, x) images; got dims {first.dims}")
    n, ny, nx = first.shape
    stride = size if stride is None else int(stride)
    if not (1 <= size <= min(ny, nx)) or stride < 1:
        raise ParameterError(f"size={size}, stride={stride}: give 1 <= size <= {min(ny, nx)} and stride >= 1")
    if not 0.0 <= reject_fraction < 1.0:
        raise ParameterError(f"reject_fraction={reject_fraction}: give a fraction in [0, 1)")
    ys, xs = _starts(ny, size, stride), _starts(nx, size, stride)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    source = np.repeat(np.arange(n), grid_y.size)
    y0, x0 = np.tile(grid_y.ravel(), n), np.tile(grid_x.ravel(), n)

    def cut(array: xr.DataArray) -> Any:
        data = array.data
        if not isinstance(data, da.Array):
            return _cut(np.asarray(data), ys, xs, size)
        data = data.rechunk({1: -1, 2: -1})
        per = ys.size * xs.size
        return data.map_blocks(_cut, ys, xs, size, dtype=data.dtype,
                               chunks=(tuple(c * per for c in data.chunks[0]), (size,), (size,)))

    reference = cut(first)
    spread = reference.std(axis=(1, 2))
    if isinstance(spread, da.Array):
        spread = spread.compute()  # streams: one chunk of images (and its patches) in memory at a time
    spread = np.asarray(spread)
    keep = np.ones(spread.size, dtype=bool)
    if min_std is not None:
        keep &= spread >= min_std
    if reject_fraction > 0:
        keep &= spread >= np.quantile(spread, reject_fraction)
    coords = {"source": ("patch", source[keep]), "y0": ("patch", y0[keep]), "x0": ("patch", x0[keep])}
    line = (f"patches {size}x{size} stride {stride}: kept {int(keep.sum())} of {keep.size} "
            f"(min_std {min_std}, reject_fraction {reject_fraction})")
    dims = ("patch", "y", "x")
    if isinstance(images, xr.Dataset):
        picked = np.flatnonzero(keep)
        patches: dict[str, Any] = {str(name): (dims, (reference if name == first.name else cut(var))[picked])
                                   for name, var in images.data_vars.items()}
        out_ds = xr.Dataset(patches, coords=coords, attrs=dict(images.attrs))
        add_history(out_ds, line)
        return out_ds
    out = xr.DataArray(reference[np.flatnonzero(keep)], dims=dims, coords=coords, name=images.name,
                       attrs=dict(images.attrs))
    add_history(out, line)
    return out


def normalise_percentile(images: xr.DataArray, q: float = 95.0,
                         clip: tuple[float, float] = (-1.0, 1.0)) -> xr.DataArray:
    """Divide each image by the ``q``-th percentile of its positive values, then clip to ``clip`` (lazy per chunk)."""
    if not 0 < q <= 100:
        raise ParameterError(f"q={q}: give a percentile in (0, 100]")
    lead = images.shape[:-2]
    flat = images.data.reshape((-1, *images.shape[-2:])) if lead else images.data[None]

    def block(x: np.ndarray) -> np.ndarray:
        return normalise_block(x, "percentile", q=q, clip=clip).astype(np.float32)

    if isinstance(flat, da.Array):
        result: Any = flat.rechunk({1: -1, 2: -1}).map_blocks(block, dtype=np.float32)
    else:
        result = block(np.asarray(flat))
    out = images.copy(data=result.reshape(images.shape))
    add_history(out, f"normalised by the {q}th percentile of positive values, clipped to {list(clip)}")
    return out
