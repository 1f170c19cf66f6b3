"""Steerable PCA on polar Fourier spectra: the space in which particles are aligned and classified.

An image sampled on a polar grid ``(r, phi)`` and Fourier-transformed along ``phi`` gives angular
frequencies ``m``; turning the image in-plane by ``theta`` multiplies frequency ``m`` by ``exp(-i m theta)``.
The principal components are computed per angular frequency (one radial basis per ``m``, Zhao & Singer's
steerable PCA), so a rotation stays a phase factor on the PCA coefficients and the correlation between a
particle and a reference at every in-plane angle is one inverse FFT of their coefficient products
(:mod:`._align`). Components are kept, largest variance first, until they cover ``variance`` of the total
variance of the training images; angular frequencies beyond what the low-pass allows are dropped.

Images are low-passed to ``resolution`` (Angstrom; floored to the Nyquist limit ``2 * pixel_size``) before
sampling; the radial components are real (each frequency's covariance is averaged with that of the
mirrored images); ring weights ``sqrt(r dr dphi)`` make coefficient distances approximate 2-D image distances, and an
optional Gaussian mask multiplies each ring by ``exp(-r^2 / (2 sigma^2))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PolarGrid", "SteerableBasis", "effective_resolution", "fit_basis", "lowpass_filter", "polar_grid",
           "polar_points", "polar_spectra", "project"]


def effective_resolution(resolution: float, pixel_size: float) -> float:
    """``resolution`` (A) floored to what the pixel size allows (Nyquist: ``2 * pixel_size``)."""
    return max(float(resolution), 2.0 * float(pixel_size))


def lowpass_filter(box: int, pixel_size: float, resolution: float, device: torch.device | str = "cpu"
                   ) -> torch.Tensor:
    """A raised-cosine low-pass on the ``rfft2`` grid of a ``box`` image: 1 below, 0 beyond ``resolution``."""
    cutoff = 1.0 / effective_resolution(resolution, pixel_size)  # 1/A
    fy = torch.fft.fftfreq(box, d=pixel_size, device=device)
    fx = torch.fft.rfftfreq(box, d=pixel_size, device=device)
    s = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    width = 2.0 / (box * pixel_size)  # two Fourier pixels of soft edge
    edge = ((s - (cutoff - width)) / width).clamp(0.0, 1.0)
    return (0.5 * (1.0 + torch.cos(math.pi * edge))).float()


@dataclass(frozen=True)
class PolarGrid:
    """Where images are sampled: ``radii`` (pixels) by ``n_phi`` angles; ``m_max`` highest angular frequency."""

    box: int
    radii: torch.Tensor  # (n_r,)
    weights: torch.Tensor  # (n_r,) sqrt(r dr dphi) times the mask
    n_phi: int
    m_max: int

    @property
    def n_m(self) -> int:
        return self.m_max + 1

    def to(self, device: torch.device | str) -> PolarGrid:
        return PolarGrid(self.box, self.radii.to(device), self.weights.to(device), self.n_phi, self.m_max)


def polar_grid(box: int, pixel_size: float, resolution: float, mask_sigma: float | None,
               device: torch.device | str = "cpu") -> PolarGrid:
    """The polar grid of a ``box`` image low-passed to ``resolution`` (A), with an optional Gaussian mask.

    Rings are spaced at half the low-pass period (at least one pixel) and have enough angles for the
    highest angular frequency the low-pass leaves.
    """
    resolution = effective_resolution(resolution, pixel_size)
    spacing = max(1.0, 0.5 * resolution / pixel_size)  # pixels between rings: Nyquist of the low-passed image
    n_r = max(2, int((box // 2 - 1) / spacing))
    radii = (torch.arange(n_r, dtype=torch.float32, device=device) + 0.5) * spacing
    cycles = pixel_size / resolution  # cycles per pixel at the cut-off
    m_max = math.ceil(2.0 * math.pi * float(radii[-1]) * cycles) + 2
    n_phi = max(32, 1 << math.ceil(math.log2(2 * m_max + 2)))
    m_max = min(m_max, n_phi // 2 - 1)
    weights = torch.sqrt(radii * spacing * (2.0 * math.pi / n_phi))
    if mask_sigma is not None:
        weights = weights * torch.exp(-0.5 * (radii / float(mask_sigma)) ** 2)
    return PolarGrid(box, radii, weights, n_phi, m_max)


def polar_points(grid: PolarGrid, box: int) -> torch.Tensor:
    """Normalised ``grid_sample`` coordinates ``(n_r, n_phi, 2)`` of the polar grid around the box centre."""
    phi = torch.arange(grid.n_phi, dtype=torch.float32, device=grid.radii.device) * (2.0 * math.pi / grid.n_phi)
    x = box // 2 + grid.radii[:, None] * torch.cos(phi)[None, :]
    y = box // 2 + grid.radii[:, None] * torch.sin(phi)[None, :]
    return torch.stack([x, y], dim=-1) / (box - 1) * 2.0 - 1.0


def polar_spectra(images: torch.Tensor, grid: PolarGrid, shifts: torch.Tensor | None = None,
                  points: torch.Tensor | None = None) -> torch.Tensor:
    """Angular spectra ``(n_m, B * S, n_r)`` (complex, frequency-major, unweighted) of ``images`` ``(B, N, N)``
    at ``S`` centres.

    ``shifts`` ``(S, 2)`` (or ``(B, S, 2)``, per particle) are offsets (x, y) in pixels from the box centre
    (``N // 2``); the particle content at ``centre + shift`` is what lands at the polar origin (default: no
    shift). Points outside the box read as zero. ``points`` passes :func:`polar_points` in when cached.
    """
    b, _ny, nx = images.shape
    if points is None:
        points = polar_points(grid, nx)
    if shifts is None:
        shifts = torch.zeros((1, 2), dtype=images.dtype, device=images.device)
    scale = 2.0 / (nx - 1)
    if shifts.ndim == 2:  # the same centres for every particle: one grid, the particles as channels
        s = shifts.shape[0]
        where = (points[None] + shifts[:, None, None, :] * scale).reshape(1, s * grid.radii.numel(), grid.n_phi, 2)
        samples = F.grid_sample(images[None], where, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    else:
        s = shifts.shape[1]
        where = (points[None, None] + shifts[:, :, None, None, :] * scale).reshape(b, s * grid.radii.numel(),
                                                                                grid.n_phi, 2)
        samples = F.grid_sample(images[:, None], where, mode="bilinear", padding_mode="zeros",
                                align_corners=True)[:, 0]
    samples = samples.reshape(b * s, grid.radii.numel(), grid.n_phi)
    spectra = torch.fft.rfft(samples, dim=-1)[..., : grid.n_m]  # (B * S, n_r, n_m)
    return spectra.permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class SteerableBasis:
    """Radial components per angular frequency: ``vectors[m, :, j]`` for the components with ``valid[m, j]``."""

    vectors: torch.Tensor  # (n_m, n_r, J) complex; unused columns are zero
    valid: torch.Tensor  # (n_m, J) bool
    eigenvalues: torch.Tensor  # (n_m, J) variance of each kept component (0 where unused)
    explained: float  # share of the total variance the kept components cover

    @property
    def n_components(self) -> int:
        """Real degrees of freedom: one per m = 0 component, two per m > 0 component."""
        per_m = self.valid.sum(dim=1)
        return int(per_m[0] + 2 * per_m[1:].sum())

    def to(self, device: torch.device | str) -> SteerableBasis:
        return SteerableBasis(self.vectors.to(device), self.valid.to(device), self.eigenvalues.to(device),
                              self.explained)


def fit_basis(spectra: torch.Tensor, grid: PolarGrid, variance: float = 0.75) -> SteerableBasis:
    """Steerable PCA of training spectra ``(n_m, n, n_r)``: the components covering ``variance`` of the total.

    The spectra are weighted by the grid's ring weights first (area element and mask). Frequency ``m > 0``
    stands for both ``+m`` and ``-m`` (real images), so its variance counts twice.
    """
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance={variance!r}: give the share of variance to keep, in (0, 1]")
    n_m, n, n_r = spectra.shape
    # small (n_r x n_r per frequency): done on the CPU in double precision, whatever the device
    data = spectra.detach().cpu().to(torch.complex128) * grid.weights.detach().cpu().to(torch.float64)
    values, vectors = [], []
    for m in range(n_m):
        a = data[m]
        if m == 0:
            a = a.real - a.real.mean(dim=0, keepdim=True)
            cov = (a.T @ a / max(1, n)).to(torch.complex128)
        else:
            # E[a a^H] averaged with its mirror image's (conj(a)): real, so the radial components are real
            # and a mirrored particle's coefficients are the conjugates of its own (mirror search, ._align)
            cov = (a.T @ a.conj() / max(1, n)).real.to(torch.complex128)
        w, v = torch.linalg.eigh(cov)
        w = w.clamp(min=0.0).flip(0) * (1.0 if m == 0 else 2.0)
        values.append(w)
        vectors.append(v.flip(1))
    every = torch.stack(values)  # (n_m, n_r), descending within each m
    total = float(every.sum())
    order = torch.argsort(every.flatten(), descending=True)
    cumulative = torch.cumsum(every.flatten()[order], 0) / max(total, 1e-30)
    keep_count = int(torch.searchsorted(cumulative, torch.tensor(variance, dtype=cumulative.dtype))) + 1
    keep = torch.zeros(n_m * n_r, dtype=torch.bool)
    keep[order[:keep_count]] = True
    keep = keep.reshape(n_m, n_r)
    width = max(1, int(keep.sum(dim=1).max()))
    basis = torch.zeros((n_m, n_r, width), dtype=torch.complex64)
    valid = torch.zeros((n_m, width), dtype=torch.bool)
    eig = torch.zeros((n_m, width), dtype=torch.float64)
    for m in range(n_m):
        cols = torch.nonzero(keep[m]).flatten()
        # eigenvalues are sorted, so the kept ones of a frequency are its leading ones
        basis[m, :, : cols.numel()] = vectors[m][:, cols].to(torch.complex64)
        valid[m, : cols.numel()] = True
        eig[m, : cols.numel()] = every[m, cols]
    explained = float(eig.sum()) / max(total, 1e-30)
    return SteerableBasis(basis, valid, eig.float(), explained).to(spectra.device)


def projector(basis: SteerableBasis, grid: PolarGrid) -> torch.Tensor:
    """``(n_m, n_r, J)``: multiply unweighted spectra ``(n_m, X, n_r)`` by it to get PCA coefficients."""
    return (basis.vectors.conj() * grid.weights.to(basis.vectors.device)[None, :, None]).resolve_conj().contiguous()


def project(spectra: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """PCA coefficients ``(n_m, X, J)`` of frequency-major spectra ``(n_m, X, n_r)`` (``matrix``: :func:`projector`)."""
    return torch.bmm(spectra, matrix)
