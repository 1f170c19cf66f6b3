"""The pose search: every particle against every reference (and its mirror), as a few batched matrix products.

Two stages, both on packed PCA features (:mod:`._features`), no Python loop per particle:

1. **coarse**: the strongest components only, at the coarse trial centres, against every reference turned to
   ``n_coarse`` angles (one ``(B * S, d) @ (d, 2 K * n_coarse)`` product); the ``candidates`` best
   (reference, mirror) pairs of each particle go on;
2. **fine**: all components at the fine centres around the best coarse centre, against each candidate turned
   to the angles within one coarse step of its coarse angle, in steps of at most ``angular_step`` (one
   batched product per particle block). The best angle is refined by a parabola through its neighbours, the
   best centre to sub-pixel by a parabola per axis (:func:`._align.subpixel_offsets`).

Distances are ``|z|^2 + |r|^2 - 2 z . r`` with ``z`` the particle's features at a trial centre and ``r`` the
turned reference's. A mirrored match is the particle against the conjugated reference, read as in
:mod:`._align` (``particle(centre + s + R(theta) M x) = reference(x)``).
"""

from __future__ import annotations

import math

import torch

from perc_platform.processing.classify2d._align import Alignment, subpixel_offsets
from perc_platform.processing.classify2d._features import FeatureMap

__all__ = ["PoseSearch"]


class PoseSearch:
    """Search settings and precomputed maps; :meth:`run` aligns band coefficients to the current references.

    ``full`` maps band coefficients to features; the coarse stage reads its first ``coarse_components``.
    """

    def __init__(self, full: FeatureMap, coarse_components: int, coarse_centres: torch.Tensor,
                 fine_offsets: torch.Tensor | None, step: float, coarse_step: float, max_shift: float,
                 angular_step: float, *, mirror: bool = True, subpixel: bool = True, candidates: int = 4) -> None:
        self.full, self.dc = full, max(1, min(coarse_components, full.n))
        self.coarse_centres, self.fine_offsets = coarse_centres, fine_offsets
        self.step, self.coarse_step, self.max_shift = step, coarse_step, max_shift
        self.mirror, self.subpixel, self.candidates = mirror, subpixel, candidates
        self.n_coarse = max(36, 4 * int(full.m[: self.dc].max()))
        spacing = 360.0 / self.n_coarse
        half = math.ceil(spacing / angular_step)
        self.fine_step = spacing / half
        device = coarse_centres.device
        self._centre = full.matrix(torch.zeros((1, 2), device=device))
        self._coarse = full.matrix(coarse_centres, self.dc)  # (2 F, Sc * 2 d)
        if fine_offsets is None:  # the fine stage reads the coarse centres themselves
            self._fine = full.matrix(coarse_centres)[None]
        else:  # one map per coarse centre: the fine grid around it
            self._fine = torch.stack([full.matrix(c + fine_offsets) for c in coarse_centres])
        # every angle either stage visits is a multiple of fine_step: one table of turns for all of them
        self.n_angles = self.n_coarse * half
        turns = torch.arange(self.n_angles, dtype=torch.float32, device=device) * self.fine_step
        phase = torch.deg2rad(turns)[:, None] * full.m.to(torch.float32)  # (A, D)
        self._turns = torch.polar(torch.ones_like(phase), -phase)  # exp(-i m theta)
        self._half = half
        self._table = torch.zeros(0)  # (K2, A, 2 D) every reference turned to every angle
        self._bank = torch.zeros(0)  # (2 d, K2 * n_coarse)
        self._bank_norms = torch.zeros(0)
        self._norms = torch.zeros(0)

    def set_references(self, spectra: torch.Tensor) -> None:
        """References given by their band coefficients ``(K, F)``: features at the box centre, mirrored copies
        (conjugates) added, every reference turned to every angle of the search."""
        refs = self.full.complex(self.full.inputs(spectra) @ self._centre)
        if self.mirror:  # the mirrored particle against a reference = the particle against its conjugate
            refs = torch.cat([refs, refs.conj()])
        turned = refs[:, None, :] * self._turns[None]  # (K2, A, D)
        self._table = torch.cat([turned.real, turned.imag], -1).contiguous()
        self._norms = self._table[:, 0].square().sum(-1)  # (K2,): turning keeps the norm
        d = self.dc
        coarse = turned[:, :: self._half, :d]  # (K2, n_coarse, d)
        bank = torch.cat([coarse.real, coarse.imag], -1)
        self._bank = bank.reshape(-1, 2 * d).T.contiguous()  # (2 d, K2 * n_coarse)
        self._bank_norms = bank[:, 0].square().sum(-1)  # (K2,)

    def run(self, spectra: torch.Tensor) -> Alignment:
        """Distance, angle, centre and mirror flag ``(B, K)`` of band coefficients ``spectra`` ``(B, F)``;
        ``inf`` distance for the references that were not among a particle's candidates."""
        u = self.full.inputs(spectra)
        b, k2 = u.shape[0], self._table.shape[0]
        rows = torch.arange(b, device=u.device)
        # 1. coarse: every reference at every coarse angle and centre
        sc = self.coarse_centres.shape[0]
        zc = (u @ self._coarse).reshape(b * sc, -1)  # (B * Sc, 2 d)
        corr = (zc @ self._bank).reshape(b, sc, k2, self.n_coarse)
        dist = zc.square().sum(-1).reshape(b, sc, 1) + self._bank_norms - 2.0 * corr.amax(dim=-1)  # (B, Sc, K2)
        dist_c, where_c = dist.min(dim=1)  # (B, K2)
        t = min(self.candidates, k2)
        cand = dist_c.topk(t, dim=1, largest=False).indices  # (B, T)
        at = where_c.gather(1, cand)  # (B, T) each candidate's best coarse centre
        turn = corr[rows[:, None], at, cand].argmax(dim=-1)  # (B, T) and its best coarse angle
        # 2. fine: all components, the candidates only, around the best coarse centre and angle
        if self.fine_offsets is None:
            zf = (u @ self._fine[0]).reshape(b, sc, -1)
            centres = self.coarse_centres[None].expand(b, -1, -1)
            grid_step = self.coarse_step
        else:
            group = at[:, 0]  # (B,) the best candidate's coarse centre
            order = torch.argsort(group)
            sizes = torch.bincount(group, minlength=sc).tolist()
            parts, start = [], 0
            for g, size in enumerate(sizes):  # one product per coarse centre, on contiguous rows
                if size:
                    parts.append(u[order[start: start + size]] @ self._fine[g])
                start += size
            zf = torch.empty((b, parts[0].shape[1]), device=u.device)
            zf[order] = torch.cat(parts)
            zf = zf.reshape(b, self.fine_offsets.shape[0], self.full.dims)
            centres = self.coarse_centres[group][:, None, :] + self.fine_offsets[None]  # (B, Sf, 2)
            grid_step = self.step
        steps = torch.arange(-self._half, self._half + 1, device=u.device)
        index = (turn[..., None] * self._half + steps) % self.n_angles  # (B, T, W) into the table of turns
        w = index.shape[-1]
        bank = self._table[cand[..., None], index].reshape(b, t * w, -1)  # (B, T * W, 2 D)
        corr_f = torch.bmm(bank, zf.transpose(1, 2).contiguous()).reshape(b, t, w, -1)  # (B, T, W, Sf)
        dist_f = zf.square().sum(-1)[:, None, None, :] + self._norms[cand][..., None, None] - 2.0 * corr_f
        per_shift = dist_f.amin(dim=2)  # (B, T, Sf)
        best_per_t, s_best = per_shift.min(dim=2)  # (B, T)
        line = dist_f.gather(3, s_best[:, :, None, None].expand(-1, -1, w, 1))[..., 0]  # (B, T, W)
        w_best = line.argmin(-1)
        angle = index.gather(2, w_best[..., None])[..., 0].to(torch.float32) * self.fine_step \
            + self.fine_step * _vertex(line, w_best)
        shift = centres.gather(1, s_best[..., None].expand(-1, -1, 2))  # (B, T, 2)
        if self.subpixel and centres.shape[1] > 1:
            top = best_per_t.argmin(dim=1)
            offset = subpixel_offsets(per_shift[rows, top]) * grid_step  # (B, 2)
            shift = shift.clone()
            shift[rows, top] = (shift[rows, top] + offset).clamp(-self.max_shift - self.step,
                                                                  self.max_shift + self.step)
        return self._fold(cand, best_per_t, angle % 360.0, shift, k2)

    def _fold(self, cand: torch.Tensor, dist: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, k2: int
              ) -> Alignment:
        """Candidates' results scattered to ``(B, K2)``, then each class's better of plain and mirrored."""
        b = cand.shape[0]
        full = torch.full((b, k2), float("inf"), device=dist.device).scatter(1, cand, dist)
        full_angle = torch.zeros((b, k2), device=dist.device).scatter(1, cand, angle)
        full_shift = torch.zeros((b, k2, 2), device=dist.device).scatter(1, cand[..., None].expand(-1, -1, 2), shift)
        if not self.mirror:
            return Alignment(full, full_angle, full_shift, torch.zeros_like(full, dtype=torch.bool))
        k = k2 // 2
        mirrored = full[:, k:] < full[:, :k]
        pick = torch.arange(k, device=dist.device)[None, :] + k * mirrored.long()
        return Alignment(full.gather(1, pick), full_angle.gather(1, pick),
                         full_shift.gather(1, pick[..., None].expand(-1, -1, 2)), mirrored)


def _vertex(line: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Offset (in steps, within half a step) of the parabola's vertex through ``line[at - 1 : at + 2]``."""
    w = line.shape[-1]
    inside = (at > 0) & (at < w - 1)
    mid = at.clamp(1, w - 2)
    lo, centre, hi = (line.gather(-1, (mid + d)[..., None])[..., 0] for d in (-1, 0, 1))
    curvature = lo - 2.0 * centre + hi
    ok = inside & torch.isfinite(curvature) & (curvature > 0)
    vertex = 0.5 * (lo - hi) / torch.where(ok, curvature, torch.ones_like(curvature))
    return torch.where(ok, vertex, torch.zeros_like(vertex)).clamp(-0.5, 0.5)
