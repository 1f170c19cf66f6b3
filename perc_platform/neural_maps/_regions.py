"""Tiling a map into overlapping regions and blending them linearly where they overlap.

Everything here works in continuous voxel-index space ``u`` (voxel ``i`` has its centre at ``u = i``), per
axis in ``(z, y, x)`` order. A region covers the voxel centres ``start .. stop - 1`` of each axis; its
SIREN sees them scaled to ``[-1, 1]``. Where two neighbouring regions share voxels ``a .. b``, their
weights ramp linearly (``(u - a) / (b - a)`` and ``(b - u) / (b - a)``), so the weights of all regions
sum to one everywhere in the map and each region is used only inside its own voxel centres.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from perc_platform.errors import ParameterError

__all__ = ["Tiling", "local_coords", "tile_axis", "tile_map"]


def tile_axis(n: int, max_size: int = 64, overlap: int = 4) -> list[tuple[int, int]]:
    """``(start, stop)`` voxel ranges of at most ``max_size`` covering ``0 .. n`` with >= ``overlap`` shared."""
    if n < 1:
        raise ParameterError(f"cannot tile an axis of {n} voxels; the map is empty")
    if overlap < 1 or max_size <= overlap + 1:
        raise ParameterError(f"max_size={max_size}, overlap={overlap}: need overlap >= 1 and max_size > overlap + 1")
    if n <= max_size:
        return [(0, n)]
    count = math.ceil((n - overlap) / (max_size - overlap))
    while True:
        size = math.ceil((n + (count - 1) * overlap) / count)
        starts = [(k * (n - size)) // (count - 1) for k in range(count)]
        ranges = [(s, s + size) for s in starts]
        if size <= max_size and all(b[0] <= a[1] - overlap for a, b in itertools.pairwise(ranges)):
            return ranges
        count += 1


@dataclass(frozen=True)
class Tiling:
    """A grid of regions over a map of ``shape`` (z, y, x): per-axis ``(start, stop)`` ranges."""

    shape: tuple[int, int, int]
    ranges: tuple[tuple[tuple[int, int], ...], ...]  # per axis (z, y, x)

    @property
    def grid(self) -> tuple[int, int, int]:
        return (len(self.ranges[0]), len(self.ranges[1]), len(self.ranges[2]))

    @property
    def n_regions(self) -> int:
        gz, gy, gx = self.grid
        return gz * gy * gx

    def region_tiles(self) -> list[tuple[int, int, int]]:
        """Per region (in C order over the grid) its tile index along z, y, x."""
        gz, gy, gx = self.grid
        return list(itertools.product(range(gz), range(gy), range(gx)))

    def region_slices(self) -> list[tuple[slice, slice, slice]]:
        return [tuple(slice(*self.ranges[a][t]) for a, t in enumerate(tiles))  # type: ignore[misc]
                for tiles in self.region_tiles()]

    def region_bounds(self) -> torch.Tensor:
        """``(R, 2, 3)`` float64: first and last voxel centre (z, y, x) of every region."""
        rows = [[[self.ranges[a][t][0] for a, t in enumerate(tiles)],
                 [self.ranges[a][t][1] - 1 for a, t in enumerate(tiles)]] for tiles in self.region_tiles()]
        return torch.tensor(rows, dtype=torch.float64)

    def axis_weights(self, u: torch.Tensor, axis: int) -> torch.Tensor:
        """Blending weights ``(P, n_tiles)`` along one axis at continuous indices ``u`` ``(P,)``.

        Piecewise linear in ``u`` (so autograd differentiates through them); rows sum to one for
        ``0 <= u <= n - 1``.
        """
        ranges = self.ranges[axis]
        columns = []
        for t, (start, stop) in enumerate(ranges):
            w = torch.ones_like(u)
            if t > 0:  # ramp up over the voxels shared with the previous tile
                a, b = start, ranges[t - 1][1] - 1
                w = w * ((u - a) / (b - a)).clamp(0.0, 1.0)
            if t < len(ranges) - 1:  # ramp down over the voxels shared with the next tile
                a, b = ranges[t + 1][0], stop - 1
                w = w * ((b - u) / (b - a)).clamp(0.0, 1.0)
            inside = (u >= start) & (u <= stop - 1)
            columns.append(torch.where(inside, w, torch.zeros_like(w)))
        return torch.stack(columns, dim=-1)

    def to_dict(self) -> dict[str, object]:
        return {"shape": list(self.shape), "ranges": [[list(r) for r in axis] for axis in self.ranges]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Tiling:
        shape = tuple(int(n) for n in data["shape"])  # type: ignore[attr-defined]
        ranges = tuple(tuple((int(a), int(b)) for a, b in axis) for axis in data["ranges"])  # type: ignore[attr-defined]
        return cls(shape=shape, ranges=ranges)  # type: ignore[arg-type]


def tile_map(shape: tuple[int, ...], max_size: int = 64, overlap: int = 4) -> Tiling:
    """Regions of at most ``max_size`` voxels per axis, neighbours sharing at least ``overlap`` voxels."""
    if len(shape) != 3:
        raise ParameterError(f"expected a 3-D map shape (z, y, x), got {shape}")
    ranges = tuple(tuple(tile_axis(int(n), max_size, overlap)) for n in shape)
    return Tiling(shape=(int(shape[0]), int(shape[1]), int(shape[2])), ranges=ranges)


def local_coords(u: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """Continuous indices ``u`` ``(..., 3)`` in a region with voxel centres ``lower .. upper``, scaled to [-1, 1]."""
    span = (upper - lower).clamp(min=1.0)
    return 2.0 * (u - lower) / span - 1.0
