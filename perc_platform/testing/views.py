"""Synthetic views for tests and benchmarks: projections of Gaussian-blob objects with known poses.

Each *view* is the projection of a small 3-D object made of isotropic Gaussian blobs (exact, since a 3-D
Gaussian projects to a 2-D Gaussian of the same width). Particles are views turned in-plane by a random
angle and shifted by a random offset, plus white Gaussian noise at a given SNR (variance of the clean image
over the box / variance of the noise, as in REFERENCE.md). Everything derives from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticViews", "make_views", "render"]


@dataclass(frozen=True)
class SyntheticViews:
    """Noisy particles with their ground truth."""

    images: np.ndarray  # (n, box, box) float32
    view: np.ndarray  # (n,) int: which view each particle shows
    rotation: np.ndarray  # (n,) degrees, counter-clockwise in (x, y) pixel coordinates
    shift: np.ndarray  # (n, 2) pixels (x, y): where the view's centre lands relative to the box centre
    clean: np.ndarray  # (views, box, box) float32: each view unrotated and centred
    blobs: tuple[np.ndarray, ...]  # per view: (atoms, 3) x, y, weight of its projected blobs


def render(blobs: np.ndarray, box: int, sigma: float, angle: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)
           ) -> np.ndarray:
    """The image of projected blobs ``(x, y, weight)`` turned by ``angle`` degrees and shifted (pixels)."""
    t = np.deg2rad(angle)
    x = np.cos(t) * blobs[:, 0] - np.sin(t) * blobs[:, 1] + shift[0]
    y = np.sin(t) * blobs[:, 0] + np.cos(t) * blobs[:, 1] + shift[1]
    grid = np.arange(box) - box // 2
    gx = np.exp(-0.5 * ((grid[None, :] - x[:, None]) / sigma) ** 2)
    gy = np.exp(-0.5 * ((grid[None, :] - y[:, None]) / sigma) ** 2)
    return (gy * blobs[:, 2:3]).T @ gx


def _object(rng: np.random.Generator, atoms: int, radius: float) -> np.ndarray:
    points = rng.normal(size=(atoms, 3))
    points *= (radius * rng.uniform(0.3, 1.0, size=(atoms, 1))) / np.linalg.norm(points, axis=1, keepdims=True)
    return points - points.mean(axis=0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                     [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
                     [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def make_views(n: int, box: int = 64, views: int = 3, snr: float = 0.1, seed: int = 0, *, atoms: int = 8,
               sigma: float | None = None, max_shift: float | None = None, radius: float | None = None,
               blobs: tuple[np.ndarray, ...] | None = None) -> SyntheticViews:
    """``n`` noisy particles of ``views`` different projections of Gaussian-blob objects.

    Each view projects its own random object (``atoms`` blobs within ``radius`` pixels, default box / 4)
    along a random direction, so the views differ clearly. ``blobs`` reuses the objects of an earlier call
    (a second batch of the same views). Rotations are uniform in [0, 360), shifts uniform in
    ``[-max_shift, max_shift]`` pixels (default 5% of the box) on each axis.
    """
    rng = np.random.default_rng([seed, 9])
    sigma = box / 24 if sigma is None else float(sigma)
    radius = box / 4 if radius is None else float(radius)
    max_shift = 0.05 * box if max_shift is None else float(max_shift)
    if blobs is None:
        made = []
        for _ in range(views):
            points = _object(rng, atoms, radius) @ _random_rotation(rng).T
            made.append(np.column_stack([points[:, 0], points[:, 1], rng.uniform(0.5, 1.0, size=atoms)]))
        blobs = tuple(made)
    views = len(blobs)
    draw = np.random.default_rng([seed, 10])
    view = draw.integers(0, views, size=n)
    rotation = draw.uniform(0.0, 360.0, size=n)
    shift = draw.uniform(-max_shift, max_shift, size=(n, 2))
    clean = np.stack([render(b, box, sigma) for b in blobs]).astype(np.float32)
    images = np.empty((n, box, box), dtype=np.float32)
    for i in range(n):
        image = render(blobs[view[i]], box, sigma, rotation[i], (shift[i, 0], shift[i, 1]))
        noise = draw.standard_normal(image.shape) * np.sqrt(image.var() / snr)
        images[i] = image + noise
    return SyntheticViews(images, view, rotation, shift, clean, blobs)
