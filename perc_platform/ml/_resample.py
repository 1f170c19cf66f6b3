"""Geometric transforms that resample: :class:`Rotate` by any angle, :class:`Rescale` up or down.

Conventions (those of ``perc_platform.testing.views`` and the 2-D classifier): images are ``(batch, y, x)``
with ``y`` the row index, the centre is pixel ``(N // 2, N // 2)``, and a positive angle turns the content
counter-clockwise in (x, y) pixel coordinates: ``out(c + R(angle) q) = in(c + q)``.

* ``Rotate(method="bilinear")``: ``grid_sample`` with bilinear interpolation, zero outside the box (what
  ``scipy.ndimage.rotate(..., order=1, mode="constant")`` does, about the same centre for odd boxes).
* ``Rotate(method="fourier")``: the turn reduced to a multiple of 90 degrees (an exact, periodic pixel
  permutation) and a remainder within 45 degrees done as three shears (Unser, Thevenaz & Yaroslavsky 1995),
  each one phase ramp along rows or columns of the FFT: no interpolation blur, exact for band-limited images
  that fit the box, but periodic (content near the edges wraps around).
* ``Rescale``: Fourier cropping (down) or zero padding (up) of the centred spectrum, so the result is the
  same trigonometric interpolant sampled on the new grid (values kept: scaled by ``(D / N)^2``); the pixel
  size becomes ``pixel_size * N / D`` (:meth:`Rescale.pixel_size`). The target is a box or a pixel size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from perc_platform.errors import ParameterError
from perc_platform.ml.transforms import Transform, _check

__all__ = ["Rescale", "Rotate"]


def _angles(angle: float | tuple[float, float], n: int, generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """Per-image angles (degrees, float64): the fixed one, or uniform in ``[lo, hi)``."""
    if isinstance(angle, tuple):
        lo, hi = angle
        draw = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return lo + (hi - lo) * draw
    return torch.full((n,), float(angle), dtype=torch.float64, device=device)


def _bilinear(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    _b, ny, nx = images.shape
    t = torch.deg2rad(degrees).to(images.dtype)
    cos, sin = torch.cos(t)[:, None, None], torch.sin(t)[:, None, None]
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=images.dtype, device=images.device) - ny // 2,
                            torch.arange(nx, dtype=images.dtype, device=images.device) - nx // 2, indexing="ij")
    # out(c + p) = in(c + R(-angle) p)
    sx = nx // 2 + cos * xx + sin * yy
    sy = ny // 2 - sin * xx + cos * yy
    grid = torch.stack([sx / (nx - 1) * 2.0 - 1.0, sy / (ny - 1) * 2.0 - 1.0], dim=-1)
    return F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def _quarter_turns(images: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each image turned counter-clockwise by ``k`` (0..3) quarter turns about ``N // 2``, periodically."""
    n = images.shape[-1]
    idx = torch.arange(n, device=images.device) - n // 2
    out = images
    for turns in (1, 2, 3):
        # out(p) = in(R(-90 * turns) p); R(-90)(x, y) = (y, -x)
        if turns == 1:
            rows, cols = -idx[None, :].expand(n, n), idx[:, None].expand(n, n)
        elif turns == 2:
            rows, cols = -idx[:, None].expand(n, n), -idx[None, :].expand(n, n)
        else:
            rows, cols = idx[None, :].expand(n, n), -idx[:, None].expand(n, n)
        turned = images[:, (rows + n // 2) % n, (cols + n // 2) % n]
        out = torch.where((k == turns)[:, None, None], turned, out)
    return out


def _shear(images: torch.Tensor, amount: torch.Tensor, axis: int) -> torch.Tensor:
    """``out(x, y) = in(x + a y, y)`` (axis -1) or ``in(x, y + a x)`` (axis -2), by FFT phase ramps."""
    n = images.shape[-1]
    coord = (torch.arange(n, device=images.device, dtype=torch.float64) - n // 2)
    freq = torch.fft.fftfreq(n, device=images.device, dtype=torch.float64)
    spectrum = torch.fft.fft(images.to(torch.float64), dim=axis)
    # shift of row y (axis -1) or column x (axis -2) by a * coord: multiply by exp(2 pi i f d)
    d = amount[:, None, None] * (coord[None, :, None] if axis == -1 else coord[None, None, :])
    f = freq[None, None, :] if axis == -1 else freq[None, :, None]
    spectrum = spectrum * torch.exp(2j * math.pi * f * d)
    return torch.fft.ifft(spectrum, dim=axis).real


def _fourier(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    if images.shape[-1] != images.shape[-2]:
        raise ParameterError(f"Rotate(method='fourier') needs square images, got {tuple(images.shape[-2:])}")
    k = torch.round(degrees / 90.0)
    rest = torch.deg2rad(degrees - 90.0 * k)
    out = _quarter_turns(images, (k.long() % 4))
    # R(-t) = X(tan(t/2)) Y(-sin t) X(tan(t/2)) with X(a): x += a y, Y(b): y += b x
    t = torch.tan(rest / 2.0)
    out = _shear(out, t, -1)
    out = _shear(out, -torch.sin(rest), -2)
    out = _shear(out, t, -1)
    return out.to(images.dtype)


class Rotate(Transform):
    """Turn each image by ``angle`` degrees (counter-clockwise), or by an angle drawn uniformly per image from
    ``angle=(lo, hi)``; ``method`` ``"bilinear"`` (default) or ``"fourier"`` (see the module docstring)."""

    def __init__(self, angle: float | tuple[float, float] = (0.0, 360.0), method: str = "bilinear") -> None:
        if method not in ("bilinear", "fourier"):
            raise ParameterError(f"method={method!r}: use 'bilinear' or 'fourier'")
        if isinstance(angle, (list, tuple)):
            if len(angle) != 2 or not angle[0] <= angle[1]:
                raise ParameterError(f"angle={angle!r}: give one angle or a range (lo, hi) with lo <= hi, degrees")
            angle = (float(angle[0]), float(angle[1]))
        self.angle, self.method = angle, method

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        degrees = _angles(self.angle, images.shape[0], generator, images.device)
        return _bilinear(images, degrees) if self.method == "bilinear" else _fourier(images, degrees)


class Rescale(Transform):
    """Resample ``N x N`` images to ``D x D`` in Fourier space, up (zero padding) or down (cropping).

    Give ``box`` (the new side), or ``pixel_size`` (the new pixel size, Angstrom) with ``input_pixel_size``;
    then ``D = round(N * input_pixel_size / pixel_size)`` (even), and :meth:`pixel_size_after` tells the
    pixel size that D gives exactly.
    """

    def __init__(self, box: int | None = None, *, pixel_size: float | None = None,
                 input_pixel_size: float | None = None) -> None:
        if (box is None) == (pixel_size is None):
            raise ParameterError("Rescale needs either box= (pixels) or pixel_size= (Angstrom), not both")
        if box is not None and box < 2:
            raise ParameterError(f"box={box}: the output box must be at least 2 pixels")
        if pixel_size is not None and not (pixel_size > 0 and input_pixel_size and input_pixel_size > 0):
            raise ParameterError(f"pixel_size={pixel_size}, input_pixel_size={input_pixel_size}: give both, "
                                 "positive, in Angstrom")
        self.box, self.target_pixel, self.input_pixel = box, pixel_size, input_pixel_size

    def size_for(self, n: int) -> int:
        """The output side for ``n``-pixel images."""
        if self.box is not None:
            return int(self.box)
        assert self.target_pixel is not None and self.input_pixel is not None
        return max(2, 2 * round(n * self.input_pixel / self.target_pixel / 2))

    def pixel_size_after(self, pixel_size: float, n: int) -> float:
        return pixel_size * n / self.size_for(n)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        ny, nx = images.shape[-2:]
        if ny != nx:
            raise ParameterError(f"Rescale needs square images, got {ny}x{nx}")
        n, d = int(nx), self.size_for(int(nx))
        if d == n:
            return images
        spectrum = torch.fft.fftshift(torch.fft.fft2(images.to(torch.float64)), dim=(-2, -1))
        if d < n:
            a = n // 2 - d // 2
            spectrum = spectrum[..., a:a + d, a:a + d]
        else:
            a = d // 2 - n // 2
            spectrum = F.pad(spectrum, (a, d - n - a, a, d - n - a))
        out = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real * (d * d / (n * n))
        return out.to(images.dtype)
