"""Batched image transforms for particle batches, run on the batch's device.

Every transform takes a tensor ``(batch, y, x)`` (on any device) and returns one; random transforms also take
a ``torch.Generator`` on that device (the loaders pass one seeded by seed, epoch, shard and batch, so runs
repeat exactly). Plain callables ``f(images) -> images`` mix in freely; a list is composed in order.
:class:`Rotate` (any angle, bilinear or Fourier) and :class:`Rescale` (up or down, to a box or a pixel size)
live in ``perc_platform.ml._resample`` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from perc_platform.errors import ParameterError

__all__ = [
    "CircularMask",
    "Compose",
    "FourierCrop",
    "GaussianBlur",
    "Lambda",
    "MinMax",
    "PercentileNormalize",
    "RandomFlip",
    "RandomRotate90",
    "Rescale",
    "Rotate",
    "Standardize",
    "Transform",
    "compose",
    "gaussian_kernel",
    "soft_circular_mask",
]


class Transform:
    """Base of the batched transforms: ``transform(images, generator=None) -> images``."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Lambda(Transform):
    """A plain callable ``f(images) -> images`` as a transform."""

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.function = function

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.function(images)


class Compose(Transform):
    """Transforms (or plain callables) applied in order."""

    def __init__(self, transforms: Sequence[Transform | Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = [t if isinstance(t, Transform) else Lambda(t) for t in transforms]
        for t in self.transforms:
            if isinstance(t, Lambda) and not callable(t.function):
                raise ParameterError(f"transform {t.function!r} is not callable")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            images = t(images, generator)
        return images


def compose(transforms: Transform | Callable[..., torch.Tensor] | Sequence[Any] | None) -> Transform | None:
    """``None``, one transform or callable, or a sequence of them, as one :class:`Transform`."""
    if transforms is None:
        return None
    if isinstance(transforms, Transform):
        return transforms
    if callable(transforms):
        return Lambda(transforms)
    if isinstance(transforms, Sequence) and not isinstance(transforms, str):
        return Compose(list(transforms))
    raise ParameterError(f"transforms={transforms!r}: give a callable or a list of callables")


def _check(images: torch.Tensor) -> None:
    if images.ndim != 3:
        raise ParameterError(f"transforms work on batches (batch, y, x); got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ParameterError(f"transforms need floating-point images, got {images.dtype}; keep dtype='float32'")


class Standardize(Transform):
    """Per image: subtract the mean, divide by the standard deviation (population, ddof 0)."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        mean = images.mean(dim=(-2, -1), keepdim=True)
        std = images.std(dim=(-2, -1), keepdim=True, correction=0)
        return (images - mean) / std.clamp_min(self.eps)


def _percentiles(images: torch.Tensor, qs: Sequence[float]) -> list[torch.Tensor]:
    """Per-image percentiles with NumPy's default (linear) interpolation, any image size."""
    flat = images.reshape(images.shape[0], -1).sort(dim=1).values
    n = flat.shape[1]
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out.append((flat[:, lo] + (flat[:, hi] - flat[:, lo]) * frac).reshape(-1, 1, 1))
    return out


class PercentileNormalize(Transform):
    """Per image: map the ``(100 - q)``-th percentile to 0 and the ``q``-th to 1, then clip to [0, 1].

    Robust to hot pixels and outliers where min-max scaling is not; ``clip=False`` keeps the tails.
    """

    def __init__(self, q: float = 95.0, clip: bool = True, eps: float = 1e-8) -> None:
        if not 50.0 < q <= 100.0:
            raise ParameterError(f"q={q}: the upper percentile must lie in (50, 100]")
        self.q, self.clip, self.eps = q, clip, eps

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        lo, hi = _percentiles(images, (100.0 - self.q, self.q))
        out = (images - lo) / (hi - lo).clamp_min(self.eps)
        return out.clamp(0.0, 1.0) if self.clip else out


class MinMax(Transform):
    """Per image: shift and scale to [0, 1] (a constant image becomes 0)."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        lo = images.amin(dim=(-2, -1), keepdim=True)
        hi = images.amax(dim=(-2, -1), keepdim=True)
        return (images - lo) / (hi - lo).clamp_min(self.eps)


class FourierCrop(Transform):
    """Downsample ``N x N`` images to ``size x size`` by keeping the central block of the centred FFT.

    Values are kept (multiplied by ``(D/N)^2`` as NumPy's ``fft2``/``ifft2`` pair requires); the pixel size
    grows by ``N / D`` (:meth:`pixel_size`).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ParameterError(f"size={size}: the output box must be at least 1 pixel")
        self.size = int(size)

    def pixel_size(self, pixel_size: float, box: int) -> float:
        return pixel_size * box / self.size

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        ny, nx = images.shape[-2:]
        d = self.size
        if d > min(ny, nx):
            raise ParameterError(f"FourierCrop(size={d}) cannot enlarge {ny}x{nx} images")
        spectrum = torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1))
        y0, x0 = ny // 2 - d // 2, nx // 2 - d // 2
        kept = torch.fft.ifftshift(spectrum[..., y0:y0 + d, x0:x0 + d], dim=(-2, -1))
        return torch.fft.ifft2(kept).real.to(images.dtype) * (d * d / (ny * nx))


def soft_circular_mask(shape: tuple[int, int], radius: float | None = None, width: float | None = None,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """1 within ``radius`` of the centre pixel ``(ny // 2, nx // 2)``, a raised-cosine edge ``width`` wide, 0 beyond."""
    ny, nx = shape
    half = min(ny, nx) / 2.0
    width = 0.1 * half if width is None else float(width)
    radius = half - width if radius is None else float(radius)
    y = torch.arange(ny, device=device, dtype=torch.float64) - ny // 2
    x = torch.arange(nx, device=device, dtype=torch.float64) - nx // 2
    r = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    if width <= 0:
        return (r <= radius).to(dtype)
    edge = 0.5 * (1.0 + torch.cos(math.pi * (r - radius) / width))
    mask = torch.where(r <= radius, torch.ones_like(r), torch.where(r >= radius + width, torch.zeros_like(r), edge))
    return mask.to(dtype)


class CircularMask(Transform):
    """Multiply by a soft circular window (see :func:`soft_circular_mask`)."""

    def __init__(self, radius: float | None = None, width: float | None = None) -> None:
        self.radius, self.width = radius, width
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        shape = (int(images.shape[-2]), int(images.shape[-1]))
        key = (shape, images.device, images.dtype)
        if key not in self._cache:
            self._cache[key] = soft_circular_mask(shape, self.radius, self.width, images.device, images.dtype)
        return images * self._cache[key]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (as scipy.ndimage builds it)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class GaussianBlur(Transform):
    """Separable Gaussian blur of width ``sigma`` pixels, edges mirrored (scipy.ndimage ``mode="mirror"``)."""

    def __init__(self, sigma: float, truncate: float = 4.0) -> None:
        if sigma <= 0:
            raise ParameterError(f"sigma={sigma}: the blur width must be positive")
        self.sigma, self.truncate = float(sigma), float(truncate)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        kernel = gaussian_kernel(self.sigma, self.truncate).to(images.device, images.dtype)
        r = kernel.numel() // 2
        ny, nx = images.shape[-2:]
        if r >= min(ny, nx):
            raise ParameterError(f"GaussianBlur(sigma={self.sigma}) reaches {r} pixels, beyond {ny}x{nx} images")
        x = images.unsqueeze(1)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), kernel.view(1, 1, -1, 1))
        return x.squeeze(1)


class RandomFlip(Transform):
    """Flip each image left-right and, independently, up-down, each with probability ``p``."""

    def __init__(self, p: float = 0.5, horizontal: bool = True, vertical: bool = True) -> None:
        self.p, self.horizontal, self.vertical = p, horizontal, vertical

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        draws = torch.rand((images.shape[0], 2), generator=generator, device=images.device) < self.p
        if self.horizontal:
            images = torch.where(draws[:, 0, None, None], images.flip(-1), images)
        if self.vertical:
            images = torch.where(draws[:, 1, None, None], images.flip(-2), images)
        return images


class RandomRotate90(Transform):
    """Rotate each (square) image by a random multiple of 90 degrees (as ``numpy.rot90`` on the last axes)."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(images)
        if images.shape[-1] != images.shape[-2]:
            raise ParameterError(f"RandomRotate90 needs square images, got {tuple(images.shape[-2:])}")
        k = torch.randint(0, 4, (images.shape[0],), generator=generator, device=images.device)[:, None, None]
        out = images
        for turns in (1, 2, 3):
            out = torch.where(k == turns, torch.rot90(images, turns, dims=(-2, -1)), out)
        return out


from perc_platform.ml._resample import Rescale as Rescale  # noqa: E402  (it builds on Transform above)
from perc_platform.ml._resample import Rotate as Rotate  # noqa: E402
