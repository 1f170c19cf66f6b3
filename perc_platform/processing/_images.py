"""NumPy kernels on image blocks ``(n, y, x)``: soft circular window, Fourier crop, normalisation.

Each kernel takes and returns plain arrays; the chunked and distributed versions map them over blocks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.fft

from perc_platform.errors import ParameterError

__all__ = [
    "NORMALISE",
    "Normalise",
    "fourier_crop",
    "normalise_block",
    "percentile_scale",
    "preprocess_block",
    "window_mask",
]

Normalise = Literal["standard", "background", "percentile"] | None
NORMALISE = ("standard", "background", "percentile")


def window_mask(size: int, inner: float = 0.85, outer: float = 0.99) -> np.ndarray:
    """cryoDRGN's soft circular window: 1 inside ``inner``, linear to 0 at ``outer`` (fractions of the half box)."""
    if not 0 <= inner < outer:
        raise ParameterError(f"window radii ({inner}, {outer}): give 0 <= inner < outer (fractions of half the box)")
    return np.clip(1.0 - (_radius(size) - inner) / (outer - inner), 0.0, 1.0)


def _radius(size: int) -> np.ndarray:
    """Distance of each pixel from the centre (pixel size // 2) in units of half the box."""
    grid = np.linspace(-1.0, 1.0, size, endpoint=False)
    return np.sqrt(grid[None, :] ** 2 + grid[:, None] ** 2)


def fourier_crop(images: np.ndarray, size: int) -> np.ndarray:
    """Downsample ``(n, N, N)`` images to ``size`` by keeping the central ``size^2`` of the centred FFT.

    With NumPy's unnormalised ``fft2`` and normalised ``ifft2`` the result is scaled by ``(size / N)^2`` so
    pixel values keep their scale (REFERENCE.md); the pixel size grows by ``N / size``. float64 out.
    """
    n_y, n_x = images.shape[-2:]
    if size > min(n_y, n_x):
        raise ParameterError(f"box={size} is larger than the images ({n_x}x{n_y}); Fourier cropping only shrinks")
    if size == n_y == n_x:
        return np.asarray(images, dtype=np.float64)
    spectrum = scipy.fft.fft2(np.asarray(images, dtype=np.float64))
    # The central size^2 of the centred spectrum, taken straight from the uncentred one: frequencies
    # -(size // 2) .. size - size // 2 - 1, in the order ifft2 of that size expects (no shift copies).
    keep = np.fft.fftfreq(size, 1.0 / size).astype(np.int64)
    cropped = spectrum[..., keep[:, None] % n_y, keep[None, :] % n_x]
    return scipy.fft.ifft2(cropped).real * (size * size / (n_y * n_x))


def percentile_scale(images: np.ndarray, q: float = 95.0) -> np.ndarray:
    """Per image, the ``q``-th percentile of its positive values (1 where an image has none), shape ``(n, 1, 1)``."""
    flat = np.asarray(images, dtype=np.float64).reshape(images.shape[0], -1)
    scale = np.ones(flat.shape[0])
    for i, row in enumerate(flat):
        positive = row[row > 0]
        if positive.size:
            scale[i] = np.percentile(positive, q)
    return scale[:, None, None]


def normalise_block(images: np.ndarray, how: Normalise, *, background_radius: float = 0.85, q: float = 95.0,
                    clip: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Normalise each image: ``standard`` (zero mean, unit sd), ``background`` (mean and sd of the pixels
    outside ``background_radius`` of the half box, as RELION), ``percentile`` (divide by the ``q``-th percentile
    of the positive values, then clip to ``clip``), or None (unchanged). float64 out."""
    x = np.asarray(images, dtype=np.float64)
    if how is None:
        return x
    if how == "percentile":
        return np.clip(x / percentile_scale(x, q), *clip)
    if how == "standard":
        mean, sd = x.mean(axis=(-2, -1), keepdims=True), x.std(axis=(-2, -1), keepdims=True)
    elif how == "background":
        values = x[:, _radius(x.shape[-1]) > background_radius]
        mean, sd = values.mean(axis=1)[:, None, None], values.std(axis=1)[:, None, None]
    else:
        raise ParameterError(f"normalise={how!r}: use one of {NORMALISE} or None")
    return (x - mean) / np.where(sd > 0, sd, 1.0)


def preprocess_block(images: np.ndarray, box: int, window: tuple[float, float] | None, normalise: Normalise,
                     batch: int = 256) -> np.ndarray:
    """Window, Fourier-crop to ``box`` and normalise a block of images (float32 out), ``batch`` at a time."""
    images = np.asarray(images)
    mask = window_mask(images.shape[-1], *window) if window is not None else None
    out = np.empty((images.shape[0], box, box), dtype=np.float32)
    for start in range(0, images.shape[0], batch):
        part = np.asarray(images[start:start + batch], dtype=np.float64)
        if mask is not None:
            part = part * mask
        out[start:start + batch] = normalise_block(fourier_crop(part, box), normalise)
    return out
