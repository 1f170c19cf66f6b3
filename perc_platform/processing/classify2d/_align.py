"""Pose conventions, trial-centre grids, sub-pixel refinement and warping particles onto references.

Convention: a particle aligned with ``(theta, s)`` matches its reference as
``particle(centre + s + R(theta) x) = reference(x)``, ``R`` a counter-clockwise turn in (x, y) pixel coords;
a mirrored match reads ``particle(centre + s + R(theta) M x) = reference(x)`` with ``M = diag(1, -1)``. With a
real radial basis, the coefficients of a particle mirrored about its trial centre (``y -> -y``) are the
complex conjugates of its own, and the mirrored particle at angle ``theta`` matches a reference exactly as
the particle itself matches the conjugated reference; so mirror search is alignment against the references
and their conjugates at once (:mod:`._search`). Sub-pixel centres: a parabola per axis through the distances
at the best trial centre and its grid neighbours (:func:`subpixel_offsets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Alignment", "shift_grid", "subpixel_offsets", "warp"]


def shift_grid(max_shift: float, step: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Trial centres ``(S, 2)`` (x, y pixels) on a square grid of ``step`` within ``max_shift`` of the centre."""
    if step <= 0:
        raise ValueError(f"shift step {step!r} must be positive")
    n = math.floor(max_shift / step + 1e-9)
    axis = torch.arange(-n, n + 1, dtype=torch.float32, device=device) * step
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


@dataclass
class Alignment:
    """Per particle and reference: squared distance, angle (degrees), centre (x, y pixels) and mirror flag."""

    distance: torch.Tensor  # (B, K); inf where the reference was not searched
    angle: torch.Tensor  # (B, K) degrees in [0, 360)
    shift: torch.Tensor  # (B, K, 2) pixels (x, y)
    mirror: torch.Tensor  # (B, K) bool: the mirrored particle matched


def subpixel_offsets(trials: torch.Tensor) -> torch.Tensor:
    """Offsets (x, y) in grid steps of the minimum of distances on a square trial grid, from its best point.

    ``trials`` ``(B, G * G)`` are distances on a :func:`shift_grid` (``y`` major). Per axis, a parabola
    through three neighbouring grid points (the best and its neighbours, moved inside the grid at an edge)
    gives the vertex, kept within half a step of the best point; a grid of one point gives no offset.
    """
    b, count = trials.shape
    g = math.isqrt(count)
    if g * g != count:
        raise ValueError(f"{count} trial centres do not form a square grid")
    out = torch.zeros((b, 2), dtype=trials.dtype, device=trials.device)
    if g < 3:
        return out
    grid = trials.reshape(b, g, g)
    best = trials.argmin(dim=1)
    iy, ix = best // g, best % g
    rows = torch.arange(b, device=trials.device)
    along = (grid, grid.transpose(1, 2))  # x varies along the last axis of the first, y of the second
    for axis, at, other in ((0, ix, iy), (1, iy, ix)):
        mid = at.clamp(1, g - 2)
        line = along[axis][rows, other]  # (B, G): the grid line through the best point
        lo, centre, hi = (line.gather(1, (mid + d)[:, None])[:, 0] for d in (-1, 0, 1))
        curvature = lo - 2.0 * centre + hi
        ok = torch.isfinite(curvature) & (curvature > 0)
        vertex = mid.to(trials.dtype) + 0.5 * (lo - hi) / torch.where(ok, curvature, torch.ones_like(curvature))
        offset = torch.where(ok, vertex - at.to(trials.dtype), torch.zeros_like(vertex)).clamp(-0.5, 0.5)
        out[:, axis] = offset
    return out


def warp(images: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, mirror: torch.Tensor | None = None
         ) -> torch.Tensor:
    """Particles ``(B, N, N)`` brought onto their reference: ``out(x) = image(centre + shift + R(angle) x)``.

    ``angle`` ``(B,)`` in degrees, ``shift`` ``(B, 2)`` (x, y) in pixels; ``mirror`` ``(B,)`` bool reads
    ``R(angle) M x`` (``M = diag(1, -1)``) for those particles. Bilinear, zero outside the box.
    """
    b, ny, nx = images.shape
    t = torch.deg2rad(angle.to(images.dtype))
    cos, sin = torch.cos(t), torch.sin(t)
    sign = torch.ones_like(cos) if mirror is None else 1.0 - 2.0 * mirror.to(images.dtype)
    a = torch.stack([torch.stack([cos, -sign * sin], -1), torch.stack([sin, sign * cos], -1)], -2)  # (B, 2, 2)
    # the same map in grid_sample's normalised coordinates (align_corners: pixel p <-> p / r - 1, r = (n - 1) / 2)
    r = torch.tensor([(nx - 1) / 2.0, (ny - 1) / 2.0], dtype=images.dtype, device=images.device)
    c = torch.tensor([nx // 2, ny // 2], dtype=images.dtype, device=images.device)
    linear = a * r[None, None, :] / r[None, :, None]
    offset = (c + shift.to(images.dtype) + (a @ (r - c)[:, None])[..., 0]) / r - 1.0
    theta = torch.cat([linear, offset[..., None]], -1)  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, 1, ny, nx], align_corners=True)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]
