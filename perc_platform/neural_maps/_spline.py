"""The neural map's base: a cubic B-spline through the (normalised) voxels, differentiable in torch.

The coefficients come from ``scipy.ndimage.spline_filter`` (mirror boundary), so the base agrees with
``scipy.ndimage.map_coordinates(values, indices, order=3, mode="mirror")``; it is evaluated here in torch
(rather than with scipy) so autograd gives its gradient at any point, which the density graph climbs.

With ``refine=2`` (the ``"fourier"`` base) the spline goes through the map's band-limited interpolation
on the half-voxel grid (:func:`band_limited_refinement`) instead: it still passes through every voxel,
and at every half voxel it equals Fourier zero-padding of the map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage, signal

from perc_platform.errors import InputError, ParameterError

__all__ = ["FOURIER_PAD", "SplineBase", "band_limited_refinement"]

_PAD = 2  # the four B-spline taps around a point inside [0, n - 1] reach one voxel below and two above
#: Voxels of mirrored map around the map before its Fourier refinement, so that the FFT's periodic
#: wrap-around does not bring the opposite face into the edge voxels (16 was best of 4, 8, 16 in the sweep
#: in benchmarks/results/neural.md).
FOURIER_PAD = 16


class SplineBase:
    """Cubic B-spline of ``values`` ``(z, y, x)``, evaluated at continuous voxel indices ``(N, 3)``.

    ``refine``: 1, the spline through the voxels; 2, through their band-limited refinement to half voxels.
    """

    def __init__(self, values: np.ndarray, refine: int = 1) -> None:
        data = np.asarray(values, dtype=np.float32)
        if data.ndim != 3 or min(data.shape) < 2:
            raise InputError(f"a spline base needs a 3-D map at least 2 voxels along each axis, got {data.shape}")
        if refine not in (1, 2):
            raise ParameterError(f"refine={refine}: use 1 (the voxels) or 2 (their band-limited half voxels)")
        self.values = data
        self.refine = refine
        grid = data.astype(np.float64) if refine == 1 else band_limited_refinement(data)
        coefficients = ndimage.spline_filter(grid, order=3, mode="mirror")
        padded = np.pad(coefficients, _PAD, mode="reflect")  # numpy 'reflect' is scipy's 'mirror'
        self._coefficients = torch.from_numpy(padded.astype(np.float32))
        self._strides = torch.tensor([padded.shape[1] * padded.shape[2], padded.shape[2], 1])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    def to(self, device: torch.device) -> SplineBase:
        self._coefficients = self._coefficients.to(device)
        self._strides = self._strides.to(device)
        return self

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Values at indices ``u`` ``(N, 3)`` (z, y, x), clamped to the map; differentiable in ``u``."""
        upper = torch.tensor([n - 1 for n in self.shape], dtype=u.dtype, device=u.device)
        inside = ((u >= 0) & (u <= upper)).to(u.dtype)  # the clamped value does not move outside the map
        u = torch.minimum(torch.maximum(u, torch.zeros_like(upper)), upper) * self.refine
        return _SplineValue.apply(u, inside, self._coefficients.to(u.device), self._strides.to(u.device))


class _SplineValue(torch.autograd.Function):
    """Value of the tensor-product spline; its gradient in closed form (the separable derivative weights)."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, inside: torch.Tensor, coefficients: torch.Tensor,
                strides: torch.Tensor) -> torch.Tensor:
        base = torch.floor(u)
        t = u - base
        w, dw = _bspline_weights(t), _bspline_derivatives(t)  # (N, 3, 4)
        start = base.to(torch.long) - 1 + _PAD
        taps = torch.arange(4, device=u.device)
        index = ((start[:, 0, None, None, None] + taps[:, None, None]) * strides[0]
                 + (start[:, 1, None, None, None] + taps[None, :, None]) * strides[1]
                 + (start[:, 2, None, None, None] + taps[None, None, :]))
        c = coefficients.reshape(-1)[index.reshape(-1)].reshape(index.shape).to(u.dtype)  # (N, 4, 4, 4)
        cx = torch.einsum("nijk,nk->nij", c, w[:, 2])
        cxy = torch.einsum("nij,nj->ni", cx, w[:, 1])
        value = torch.einsum("ni,ni->n", cxy, w[:, 0])
        if ctx.needs_input_grad[0]:
            dz = torch.einsum("ni,ni->n", cxy, dw[:, 0])
            dy = torch.einsum("nij,nj,ni->n", cx, dw[:, 1], w[:, 0])
            dx = torch.einsum("nijk,nk,nj,ni->n", c, dw[:, 2], w[:, 1], w[:, 0])
            ctx.save_for_backward(torch.stack([dz, dy, dx], dim=-1) * inside)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (derivative,) = ctx.saved_tensors
        return grad[:, None] * derivative, None, None, None


def _bspline_weights(t: torch.Tensor) -> torch.Tensor:
    """Cubic B-spline weights of the taps at offsets -1, 0, 1, 2 for fractional positions ``t`` ``(..., 3)``."""
    t2, t3 = t * t, t * t * t
    one = 1.0 - t
    return torch.stack([one * one * one / 6.0, (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
                        (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t3 / 6.0], dim=-1)


def _bspline_derivatives(t: torch.Tensor) -> torch.Tensor:
    """d/dt of :func:`_bspline_weights`."""
    t2 = t * t
    one = 1.0 - t
    return torch.stack([-0.5 * one * one, (9.0 * t2 - 12.0 * t) / 6.0, (-9.0 * t2 + 6.0 * t + 3.0) / 6.0,
                        0.5 * t2], dim=-1)


def band_limited_refinement(values: np.ndarray, pad: int = FOURIER_PAD) -> np.ndarray:
    """``values`` at every half voxel, ``(2n - 1)`` per axis, by Fourier zero-padding of the mirrored map.

    ``scipy.signal.resample`` (the FFT method, Nyquist bin split) along one axis at a time: zero-padding
    the 3-D spectrum is separable, and one axis at a time needs memory for the result only.
    """
    out = np.pad(np.asarray(values, dtype=np.float64), pad, mode="reflect")
    for axis in range(out.ndim):
        out = signal.resample(out, 2 * out.shape[axis], axis=axis)
    return out[tuple(slice(2 * pad, 2 * pad + 2 * n - 1) for n in np.shape(values))]


def fourier_upsample(values: np.ndarray) -> np.ndarray:
    """Band-limited (trigonometric) interpolation of ``values`` at every half voxel: ``(2n - 1)`` per axis.

    The spectrum is zero-padded to twice the size (the Nyquist bin of an even axis split between its two
    mirrors), so the result passes through the voxels and has no frequency above the map's Nyquist.
    """
    spectrum = np.fft.fftn(values.astype(np.float64))
    for axis, n in enumerate(values.shape):
        spectrum = _pad_axis(spectrum, axis, n)
    out = np.fft.ifftn(spectrum).real * (2 ** values.ndim)
    return out[tuple(slice(0, 2 * n - 1) for n in values.shape)]


def _pad_axis(spectrum: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The spectrum along ``axis`` zero-padded from ``n`` to ``2 n`` frequencies."""
    half = (n + 1) // 2  # frequencies 0 .. half - 1, then -(n - half) .. -1
    low = np.take(spectrum, np.arange(half), axis=axis)
    high = np.take(spectrum, np.arange(half, n), axis=axis)

    def zeros(count: int) -> np.ndarray:
        shape = list(spectrum.shape)
        shape[axis] = count
        return np.zeros(shape, dtype=spectrum.dtype)

    if n % 2:
        return np.concatenate([low, zeros(n), high], axis=axis)
    nyquist = np.take(high, [0], axis=axis) / 2  # split between +n/2 and -n/2: the result stays real
    rest = np.take(high, np.arange(1, n - half), axis=axis)
    return np.concatenate([low, nyquist, zeros(n - 1), nyquist, rest], axis=axis)


def residual_targets(values: np.ndarray, slices: list[tuple[slice, slice, slice]], subdivisions: int,
                     pad: int = 8) -> list[np.ndarray]:
    """Per region: the target minus the cubic base on a grid of ``subdivisions`` points per voxel.

    With 1 the target is the voxels themselves (residual zero up to rounding); with 2 the half-voxel
    points take the band-limited interpolation of the region and ``pad`` voxels around it (mirrored at the
    map's edges), so the region's borders see no wrap-around from the FFT.
    """
    out = []
    for region in slices:
        shape = tuple(s.stop - s.start for s in region)
        grid = [np.arange((n - 1) * subdivisions + 1) / subdivisions + s.start for n, s in zip(shape, region,
                                                                                             strict=True)]
        index = np.meshgrid(*grid, indexing="ij")
        base = ndimage.map_coordinates(values.astype(np.float64), index, order=3, mode="mirror")
        if subdivisions == 1:
            target = values[region].astype(np.float64)
        else:
            lo = [max(0, s.start - pad) for s in region]
            hi = [min(n, s.stop + pad) for n, s in zip(values.shape, region, strict=True)]
            block = values[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
            widths = [(pad - (s.start - a), pad - (b - s.stop)) for a, b, s in zip(lo, hi, region, strict=True)]
            block = np.pad(block, widths, mode="reflect")
            fine = fourier_upsample(block)
            target = fine[tuple(slice(2 * pad, 2 * pad + 2 * (n - 1) + 1) for n in shape)]
        out.append((target - base).astype(np.float32))
    return out
