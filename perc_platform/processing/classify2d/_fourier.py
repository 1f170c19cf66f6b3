"""Polar angular spectra of band-limited images straight from their 2-D Fourier transform (Jacobi-Anger).

A low-passed image is the trigonometric sum ``img(c + p) = N^-2 sum_f X_f exp(2 pi i f.(c + p))`` over its
band (``X = fft2(img)``, ``f`` in cycles per pixel). On a ring of radius ``r`` about ``c``, with
``f = rho (cos a, sin a)``, ``exp(2 pi i rho r cos(phi - a)) = sum_m i^m J_m(2 pi rho r) exp(i m (phi - a))``,
so the ring's angular Fourier coefficient ``m`` (the coefficient of ``exp(i m phi)``) is

    S[m, r] = N^-2 sum_f X_f exp(2 pi i f.c) i^m J_m(2 pi rho r) exp(-i m a):

a matrix product of the band's Fourier coefficients, exact (no interpolation on a polar grid), and a trial
centre ``c + s`` is a phase factor ``exp(2 pi i f.s)`` on ``X_f``. This is what makes the search a few large
matrix products (:mod:`._search`). Real images have ``X_-f = conj(X_f)`` and the term of ``-f`` is ``(-1)^m``
times that of ``f``, so the ``rfft2`` half-plane suffices: ``S = (X + (-1)^m d conj(X)) Q`` with ``d = 1`` for
the columns whose mirror the half-plane does not hold (``0 < kx < N / 2``) and 0 for the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

__all__ = ["Band", "band_of", "noise_covariance", "ring_matrix", "shift_phases"]


@dataclass(frozen=True)
class Band:
    """The ``rfft2`` coefficients an image keeps after the low-pass, and their frequencies."""

    index: torch.Tensor  # (F,) flat positions in the (N, N // 2 + 1) rfft2 grid
    fx: torch.Tensor  # (F,) cycles per pixel
    fy: torch.Tensor  # (F,)
    mirror: torch.Tensor  # (F,) 1 where -f is not stored in the half-plane, else 0
    gain: torch.Tensor  # (F,) the low-pass at these frequencies


def band_of(lowpass: torch.Tensor) -> Band:
    """The frequencies of the ``rfft2`` grid where ``lowpass`` ``(N, N // 2 + 1)`` is not zero."""
    n = lowpass.shape[0]
    device = lowpass.device
    fy = torch.fft.fftfreq(n, device=device)[:, None].expand(-1, lowpass.shape[1])
    fx = torch.fft.rfftfreq(n, device=device)[None, :].expand(n, -1)
    keep = (lowpass > 0).flatten()
    index = torch.nonzero(keep).flatten()
    kx = torch.arange(lowpass.shape[1], device=device)[None, :].expand(n, -1).flatten()[index]
    mirror = ((kx > 0) & (2 * kx != n)).to(torch.float32)
    return Band(index, fx.flatten()[index].float(), fy.flatten()[index].float(), mirror,
                lowpass.flatten()[index].float())


def ring_matrix(band: Band, radii: torch.Tensor, n_m: int, box: int) -> torch.Tensor:
    """``Q`` ``(n_m, F, n_r)`` complex64: ``S[m] = Y_m @ Q[m]`` for the centred band coefficients ``Y_m``
    (:func:`shift_phases` applied, then ``X + (-1)^m d conj(X)``)."""
    rho = torch.sqrt(band.fx**2 + band.fy**2).cpu().double().numpy()
    alpha = torch.atan2(band.fy, band.fx).cpu().double().numpy()
    r = radii.cpu().double().numpy()
    m = np.arange(n_m)
    bessel = special.jv(m[:, None, None], 2.0 * math.pi * rho[None, :, None] * r[None, None, :])  # (n_m, F, n_r)
    phase = (1j ** m)[:, None] * np.exp(-1j * m[:, None] * alpha[None, :])  # (n_m, F)
    q = bessel * phase[:, :, None] / float(box * box)
    return torch.from_numpy(q.astype(np.complex64)).to(radii.device)


def shift_phases(band: Band, centres: torch.Tensor, box: int) -> torch.Tensor:
    """``exp(2 pi i f.(N // 2 + s))`` for trial centres ``s`` ``(..., 2)`` (x, y pixels from the box centre):
    ``(..., F)`` complex64; multiply the band's coefficients by it to put ``centre + s`` at the polar origin."""
    x = centres[..., 0:1] + box // 2
    y = centres[..., 1:2] + box // 2
    angle = 2.0 * math.pi * (x * band.fx + y * band.fy)
    return torch.polar(torch.ones_like(angle), angle)


def noise_covariance(band: Band, q: torch.Tensor, box: int) -> torch.Tensor:
    """``(n_m, n_r, n_r)`` real: covariance of ``S[m]`` for white noise of unit pixel variance after the low-pass.

    ``E|X_f|^2 = N^2`` per frequency of the full plane, independent across ``f``; a half-plane frequency with
    ``d = 1`` stands for ``f`` and ``-f``, whose terms in ``S[m]`` have the same modulus.
    """
    count = (1.0 + band.mirror) * band.gain**2 * float(box * box)  # (F,)
    cov = torch.einsum("mfr,f,mfs->mrs", q, count.to(q.dtype), q.conj())
    return cov.real
