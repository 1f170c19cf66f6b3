"""Packed PCA features: a particle's band coefficients at trial centres -> real vectors, by matrix products.

The steerable basis (:mod:`._pca`) has components ``(m, j)``; packed (strongest first), component ``d`` has
angular frequency ``m_d``. With ``c_d`` a particle's complex coefficient scaled by ``sqrt(2)`` for ``m_d > 0``
(those stand for ``+m`` and ``-m``), its *features* are the real vector ``z = [Re c, Im c]``, so that
``z . z'`` is the (weighted, masked) image inner product and ``|z - z'|^2`` the squared image distance within
the basis. A turn by ``theta`` maps ``c_d -> c_d exp(-i m_d theta)`` (the search's table of turns); the mirror
``y -> -y`` about the centre maps ``c -> conj(c)``. The first ``d`` components are the coarse search's.
"""

from __future__ import annotations

import math

import torch

from perc_platform.processing.classify2d._fourier import Band, shift_phases
from perc_platform.processing.classify2d._pca import PolarGrid, SteerableBasis

__all__ = ["FeatureMap"]


class FeatureMap:
    """Features of the components of ``basis`` (packed strongest first); see the module docstring.

    ``q`` is :func:`._fourier.ring_matrix` of the band, ``grid`` the rings it was made for. Band coefficients
    enter as real vectors ``u = [Re X, Im X]`` ``(B, 2 F)``; features at ``S`` trial centres are ``u @``
    :meth:`matrix` -- the centre's phase factors folded into the map, so that a whole batch at all its trial
    centres is one matrix product.
    """

    def __init__(self, basis: SteerableBasis, grid: PolarGrid, band: Band, q: torch.Tensor, box: int) -> None:
        m_idx, j_idx = torch.nonzero(basis.valid, as_tuple=True)
        order = torch.argsort(basis.eigenvalues[m_idx, j_idx], descending=True)
        m_idx, j_idx = m_idx[order], j_idx[order]
        self.box, self.band = box, band
        self.m = m_idx  # (D,) angular frequency of each packed component
        self.n = int(m_idx.numel())
        scale = torch.where(m_idx > 0, math.sqrt(2.0), 1.0).to(torch.float32)
        vectors = basis.vectors[m_idx, :, j_idx].conj() * (grid.weights[None, :] * scale[:, None])  # (D, n_r)
        self._a = torch.einsum("dfr,dr->fd", q[m_idx], vectors.to(q.dtype))  # (F, D): c = Y_m @ a
        self._even = (m_idx % 2 == 0)

    @property
    def dims(self) -> int:
        """Length of a feature vector (twice the packed components)."""
        return 2 * self.n

    def matrix(self, centres: torch.Tensor, components: int | None = None) -> torch.Tensor:
        """``(2 F, S * 2 d)``: ``u @`` it gives the features of the first ``components`` (default all) at trial
        centres ``(S, 2)`` (x, y pixels from the box centre), ``(B, S * 2 d)``, centre major.

        Per frequency, with ``P`` the centre's phase factor and ``X' = X P``: a paired frequency adds
        ``2 Re(X') a`` to even-``m`` coefficients and ``2i Im(X') a`` to odd ones, an unpaired one ``X' a``.
        """
        d = self.n if components is None else min(self.n, int(components))
        a, even = self._a[:, :d], self._even[:d]
        phase = shift_phases(self.band, centres, self.box)[:, :, None]  # (S, F, 1)
        paired = (self.band.mirror > 0)[None, :, None]
        # coefficient of Re X and of Im X in c, per centre: (S, F, d) complex
        of_re = torch.where(paired, torch.where(even, 2.0 * phase.real * a, 2j * phase.imag * a), phase * a)
        of_im = torch.where(paired, torch.where(even, -2.0 * phase.imag * a, 2j * phase.real * a), 1j * phase * a)
        blocks = [torch.cat([part.real, part.imag], -1) for part in (of_re, of_im)]  # (S, F, 2 d) each
        return torch.cat(blocks, 1).permute(1, 0, 2).reshape(2 * a.shape[0], -1).contiguous()

    @staticmethod
    def inputs(spectra: torch.Tensor) -> torch.Tensor:
        """``u = [Re X, Im X]`` ``(B, 2 F)`` of band coefficients ``(B, F)``."""
        return torch.cat([spectra.real, spectra.imag], -1).contiguous()

    def complex(self, feats: torch.Tensor) -> torch.Tensor:
        """``c`` ``(..., d)`` from features ``(..., 2 d)``."""
        d = feats.shape[-1] // 2
        return torch.complex(feats[..., :d], feats[..., d:])
