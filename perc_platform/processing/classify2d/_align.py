"""In-plane alignment in steerable-PCA space, batched in torch, and warping particles onto references.

For a particle sampled around a trial centre ``s`` (coefficients ``c_p``) and a reference (``c_k``), the
squared distance at in-plane angle ``theta`` is ``|c_p|^2 + |c_k|^2 - 2 corr(theta)`` with
``corr(theta) = Re sum_m sum_j c_p[m, j] conj(c_k[m, j]) exp(i m theta)`` (frequencies ``m > 0`` twice), which
is one inverse real FFT over ``m`` for all angles at once. The best angle is refined by a parabola through
the peak. Convention: a particle aligned with ``(theta, s)`` matches its reference as
``particle(centre + s + R(theta) x) = reference(x)``, ``R`` a counter-clockwise turn in (x, y) pixel coords.

Mirrors: with a real radial basis, the coefficients of a particle mirrored about its trial centre
(``y -> -y``) are the complex conjugates of its own, and the mirrored particle at angle ``theta`` matches a
reference exactly as the particle itself matches the conjugated reference at ``-theta``; so mirror search
is alignment against the references and their conjugates at once (twice the references, the particle
samples taken once). A mirrored match reads ``particle(centre + s + R(theta) M x) = reference(x)`` with
``M = diag(1, -1)``. Sub-pixel centres: a parabola per axis through the distances at the best trial
centre and its grid neighbours (:func:`subpixel_offsets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Alignment", "align", "align_subset", "shift_grid", "squared_norms", "subpixel_offsets", "warp"]


def shift_grid(max_shift: float, step: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Trial centres ``(S, 2)`` (x, y pixels) on a square grid of ``step`` within ``max_shift`` of the centre."""
    if step <= 0:
        raise ValueError(f"shift step {step!r} must be positive")
    n = math.floor(max_shift / step + 1e-9)
    axis = torch.arange(-n, n + 1, dtype=torch.float32, device=device) * step
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


def squared_norms(coeffs: torch.Tensor) -> torch.Tensor:
    """``|c|^2`` of frequency-major coefficients ``(n_m, X, J)`` -> ``(X,)``, counting ``m > 0`` twice."""
    power = torch.view_as_real(coeffs).square().sum((-1, -2))  # (n_m, X)
    return power[0] + 2.0 * power[1:].sum(0)


@dataclass
class Alignment:
    """Per particle and reference: squared distance, best trial-centre index, angle (degrees) and centre."""

    distance: torch.Tensor  # (B, K)
    shift_index: torch.Tensor  # (B, K) int64
    angle: torch.Tensor  # (B, K) degrees in [0, 360)
    shift: torch.Tensor | None = None  # (B, K, 2) pixels (x, y), filled in by the caller that knows the grid
    trials: torch.Tensor | None = None  # (B, S, K) the distance at every trial centre (inf where not tried)
    mirror: torch.Tensor | None = None  # (B, K) bool: the mirrored particle matched


def align(coeffs: torch.Tensor, refs: torch.Tensor, n_theta: int, trials: int) -> Alignment:
    """Best angle and trial centre of every particle for every reference.

    ``coeffs`` ``(n_m, B * trials, J)`` are the particles' coefficients at ``trials`` centres each (particle
    major), ``refs`` ``(n_m, K, J)`` the references'.
    """
    n_m, x, _ = coeffs.shape
    k = refs.shape[1]
    b = x // trials
    if n_theta // 2 + 1 < n_m:
        raise ValueError(f"n_theta={n_theta} is too small for {n_m} angular frequencies")
    ref_norms = squared_norms(refs)  # (K,)
    prod = torch.bmm(coeffs, (refs.conj().transpose(1, 2) * n_theta).contiguous()).permute(1, 2, 0)  # (X, K, n_m)
    refined, angle = _peaks(prod, n_theta)  # (X, K)
    dist = (squared_norms(coeffs)[:, None] + ref_norms[None, :] - 2.0 * refined).reshape(b, trials, k)
    angle = angle.reshape(b, trials, k)
    best, best_s = dist.min(dim=1)  # (B, K)
    return Alignment(best, best_s, angle.gather(1, best_s[:, None, :])[:, 0] % 360.0, trials=dist)


def _peaks(prod: torch.Tensor, n_theta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Refined peak correlation and angle (degrees) over ``n_theta`` angles of products ``(..., n_m)``."""
    corr = torch.fft.irfft(prod, n=n_theta, dim=-1)
    peak, where = corr.max(dim=-1)
    left = corr.gather(-1, ((where - 1) % n_theta)[..., None])[..., 0]
    right = corr.gather(-1, ((where + 1) % n_theta)[..., None])[..., 0]
    curvature = left - 2.0 * peak + right
    offset = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp(max=-1e-12),
                         torch.zeros_like(peak)).clamp(-0.5, 0.5)
    return peak - 0.25 * (left - right) * offset, (where.to(peak.dtype) + offset) * (360.0 / n_theta)


def align_subset(coeffs: torch.Tensor, refs: torch.Tensor, chosen: torch.Tensor, n_theta: int, trials: int
                 ) -> Alignment:
    """Like :func:`align`, but each particle only against its own references ``chosen`` ``(B, T)``.

    The result is ``(B, K)`` with ``inf`` distance for the references not chosen.
    """
    n_m, _, j = coeffs.shape
    b, t = chosen.shape
    k = refs.shape[1]
    mine = refs[:, chosen]  # (n_m, B, T, J)
    per = coeffs.reshape(n_m * b, trials, j)
    prod = torch.bmm(per, (mine.conj() * n_theta).reshape(n_m * b, t, j).transpose(1, 2))  # (n_m*B, S, T)
    prod = prod.reshape(n_m, b, trials, t).permute(1, 2, 3, 0)  # (B, S, T, n_m)
    refined, angle = _peaks(prod, n_theta)
    norms = squared_norms(coeffs).reshape(b, trials, 1)
    dist = norms + squared_norms(refs)[chosen][:, None, :] - 2.0 * refined  # (B, S, T)
    best, best_s = dist.min(dim=1)  # (B, T)
    best_angle = angle.gather(1, best_s[:, None, :])[:, 0] % 360.0
    full = torch.full((b, k), float("inf"), dtype=best.dtype, device=best.device)
    every = torch.full((b, trials, k), float("inf"), dtype=best.dtype, device=best.device)
    every = every.scatter(2, chosen[:, None, :].expand(-1, trials, -1), dist)
    return Alignment(full.scatter(1, chosen, best), torch.zeros((b, k), dtype=torch.long, device=best.device)
                     .scatter(1, chosen, best_s), torch.zeros_like(full).scatter(1, chosen, best_angle), trials=every)


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
    _b, ny, nx = images.shape
    t = torch.deg2rad(angle.to(images.dtype))
    cos, sin = torch.cos(t)[:, None, None], torch.sin(t)[:, None, None]
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=images.dtype, device=images.device) - ny // 2,
                            torch.arange(nx, dtype=images.dtype, device=images.device) - nx // 2, indexing="ij")
    sign = torch.ones_like(cos) if mirror is None else (1.0 - 2.0 * mirror.to(images.dtype))[:, None, None]
    sx = nx // 2 + shift[:, 0, None, None].to(images.dtype) + cos * xx - sign * sin * yy
    sy = ny // 2 + shift[:, 1, None, None].to(images.dtype) + sin * xx + sign * cos * yy
    grid = torch.stack([sx / (nx - 1) * 2.0 - 1.0, sy / (ny - 1) * 2.0 - 1.0], dim=-1)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]
