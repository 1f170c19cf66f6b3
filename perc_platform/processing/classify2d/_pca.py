"""Steerable PCA on polar Fourier spectra: the space in which particles are aligned and classified.

An image's rings ``(r, phi)`` about a centre, Fourier-transformed along ``phi``, give angular frequencies
``m`` (:mod:`._fourier` computes them exactly from the image's 2-D transform); turning the image in-plane by
``theta`` multiplies frequency ``m`` by ``exp(-i m theta)``. The principal components are computed per
angular frequency (one radial basis per ``m``, Zhao & Singer's steerable PCA), so a rotation stays a phase
factor on the PCA coefficients and the particle-reference correlation at any in-plane angle is a dot
product with the rotated reference's coefficients (:mod:`._search`). Components are kept, largest first,
until they cover ``variance`` of the variance of the training images -- of the *signal* variance when the
noise is modelled (:func:`fit_basis`); angular frequencies beyond what the low-pass allows are dropped.

Images are low-passed to ``resolution`` (Angstrom; floored to the Nyquist limit ``2 * pixel_size``); the
radial components are real (each frequency's covariance is averaged with that of the mirrored images); ring
weights ``sqrt(2 pi r dr)`` make coefficient distances approximate 2-D image distances, and an optional
Gaussian mask multiplies each ring by ``exp(-r^2 / (2 sigma^2))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["PolarGrid", "SteerableBasis", "effective_resolution", "fit_basis", "lowpass_filter", "noise_level",
           "polar_grid"]


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
    """Rings of ``radii`` (pixels) about the centre, their ``weights`` and the highest angular frequency ``m_max``."""

    box: int
    radii: torch.Tensor  # (n_r,)
    weights: torch.Tensor  # (n_r,) sqrt(2 pi r dr) times the mask
    m_max: int

    @property
    def n_m(self) -> int:
        return self.m_max + 1

    def to(self, device: torch.device | str) -> PolarGrid:
        return PolarGrid(self.box, self.radii.to(device), self.weights.to(device), self.m_max)


def polar_grid(box: int, pixel_size: float, resolution: float, mask_sigma: float | None,
               device: torch.device | str = "cpu") -> PolarGrid:
    """The rings of a ``box`` image low-passed to ``resolution`` (A), with an optional Gaussian mask.

    Rings are spaced at half the low-pass period (at least one pixel); angular frequencies go as high as the
    low-pass lets the outer ring carry.
    """
    resolution = effective_resolution(resolution, pixel_size)
    spacing = max(1.0, 0.5 * resolution / pixel_size)  # pixels between rings: Nyquist of the low-passed image
    n_r = max(2, int((box // 2 - 1) / spacing))
    radii = (torch.arange(n_r, dtype=torch.float32, device=device) + 0.5) * spacing
    cycles = pixel_size / resolution  # cycles per pixel at the cut-off
    m_max = math.ceil(2.0 * math.pi * float(radii[-1]) * cycles) + 2
    weights = torch.sqrt(2.0 * math.pi * radii * spacing)  # ring areas: coefficient norms ~ image norms
    if mask_sigma is not None:
        weights = weights * torch.exp(-0.5 * (radii / float(mask_sigma)) ** 2)
    return PolarGrid(box, radii, weights, m_max)


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


def noise_level(covs: list[torch.Tensor], noises: list[torch.Tensor]) -> float:
    """Pixel variance of white noise that best explains covariances ``covs`` whose unit-noise shape is ``noises``.

    The median of the generalised eigenvalues ``C v = s N v`` over every angular frequency: pure noise gives
    ``s`` near the noise variance (spread by the finite sample), and the signal occupies few directions.
    """
    largest = max(float(torch.linalg.eigvalsh(n).max()) for n in noises)
    ratios = []
    for cov, noise in zip(covs, noises, strict=True):
        values, vectors = torch.linalg.eigh(noise)
        keep = values > 1e-6 * largest  # directions the band reaches at all
        if not bool(keep.any()):
            continue
        white = vectors[:, keep] / values[keep].sqrt()
        ratios.append(torch.linalg.eigvalsh(white.T @ cov @ white))
    return float(torch.cat(ratios).median()) if ratios else 0.0


def fit_basis(spectra: torch.Tensor, grid: PolarGrid, variance: float = 0.75, noise: torch.Tensor | None = None
              ) -> SteerableBasis:
    """Steerable PCA of training spectra ``(n_m, n, n_r)``: the components covering ``variance`` of the total.

    The spectra are weighted by the grid's ring weights first (area element and mask). Frequency ``m > 0``
    stands for both ``+m`` and ``-m`` (real images), so its variance counts twice. With ``noise``
    (``(n_m, n_r, n_r)``, the covariance of the spectra of white noise of unit pixel variance,
    :func:`._fourier.noise_covariance`), the noise variance is estimated (:func:`noise_level`), components
    whose variance does not clear the noise along them by the Marchenko-Pastur margin ``(1 + sqrt(n_r / n))^2``
    are dropped as well: at low SNR most of the variance is noise, and components that only carry noise blur
    the alignment (so the kept share of the variance can fall short of ``variance``).
    """
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance={variance!r}: give the share of variance to keep, in (0, 1]")
    n_m, n, n_r = spectra.shape
    # small (n_r x n_r per frequency): done on the CPU in double precision, whatever the device
    weights = grid.weights.detach().cpu().to(torch.float64)
    data = spectra.detach().cpu().to(torch.complex128) * weights
    covs = []
    for m in range(n_m):
        a = data[m]
        if m == 0:
            a = a.real - a.real.mean(dim=0, keepdim=True)
            covs.append(a.T @ a / max(1, n))
        else:
            # E[a a^H] averaged with its mirror image's (conj(a)): real, so the radial components are real
            # and a mirrored particle's coefficients are the conjugates of its own (mirror search, ._search)
            covs.append((a.T @ a.conj() / max(1, n)).real)
    noises = None if noise is None else \
        [noise[m].detach().cpu().double() * weights[:, None] * weights[None, :] for m in range(n_m)]
    sigma2 = 0.0 if noises is None else noise_level(covs, noises)
    margin = (1.0 + math.sqrt(n_r / max(1, n))) ** 2
    values, vectors, passing = [], [], []
    for m in range(n_m):
        w, v = torch.linalg.eigh(covs[m])
        w, v = w.clamp(min=0.0).flip(0) * (1.0 if m == 0 else 2.0), v.flip(1)
        if noises is None:
            ok = torch.ones_like(w, dtype=torch.bool)
        else:
            along = sigma2 * torch.einsum("rj,rs,sj->j", v, noises[m], v) * (1.0 if m == 0 else 2.0)
            ok = w > margin * along
        values.append(w)
        vectors.append(v)
        passing.append(ok)
    every = torch.stack(values).flatten()  # (n_m * n_r,)
    total = float(every.sum())
    order = torch.argsort(every, descending=True)
    cumulative = torch.cumsum(every[order], 0) / max(total, 1e-30)
    keep_count = int(torch.searchsorted(cumulative, torch.tensor(variance, dtype=cumulative.dtype))) + 1
    keep = torch.zeros(n_m * n_r, dtype=torch.bool)
    keep[order[:keep_count]] = True
    above = torch.stack(passing).flatten()
    if bool((keep & above).any()):  # else: nothing clears the noise; keep the strongest anyway
        keep &= above
    else:
        keep[order[1:]] = False
    keep = keep.reshape(n_m, n_r)
    width = max(1, int(keep.sum(dim=1).max()))
    basis = torch.zeros((n_m, n_r, width), dtype=torch.complex64)
    valid = torch.zeros((n_m, width), dtype=torch.bool)
    eig = torch.zeros((n_m, width), dtype=torch.float64)
    for m in range(n_m):
        cols = torch.nonzero(keep[m]).flatten()
        basis[m, :, : cols.numel()] = vectors[m][:, cols].to(torch.complex64)
        valid[m, : cols.numel()] = True
        eig[m, : cols.numel()] = values[m][cols]
    return SteerableBasis(basis, valid, eig.float(), float(eig.sum()) / max(total, 1e-30)).to(spectra.device)
