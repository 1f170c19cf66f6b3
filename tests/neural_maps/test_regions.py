"""Tiling into regions of <= 64^3 with >= 4 voxels overlap; linear blending weights sum to one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from perc_platform.errors import ParameterError
from perc_platform.neural_maps import tile_map
from perc_platform.neural_maps._regions import tile_axis


@pytest.mark.parametrize("max_size,overlap", [(64, 4), (24, 4), (32, 8), (64, 6)])
def test_tiles_cover_the_axis_with_overlap(max_size: int, overlap: int) -> None:
    for n in range(1, 400):
        ranges = tile_axis(n, max_size, overlap)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(0 < stop - start <= max_size for start, stop in ranges)
        for (a0, a1), (b0, b1) in itertools.pairwise(ranges):
            assert a0 < b0 and a1 < b1
            assert a1 - b0 >= overlap  # shared voxels
        if n <= max_size:
            assert ranges == [(0, n)]


def test_emd_5168_sized_map_has_eight_regions() -> None:
    tiling = tile_map((100, 100, 100))
    assert tiling.n_regions == 8
    assert all(s.stop - s.start <= 64 for sl in tiling.region_slices() for s in sl)


@pytest.mark.parametrize("n", [20, 64, 100, 131])
def test_blend_weights_are_a_partition_of_unity(n: int) -> None:
    tiling = tile_map((n, n, n), 24, 4)
    u = torch.cat([torch.linspace(0, n - 1, 997, dtype=torch.float64),
                   torch.arange(n, dtype=torch.float64)])
    for axis in range(3):
        w = tiling.axis_weights(u, axis)
        assert torch.all(w >= 0)
        torch.testing.assert_close(w.sum(dim=1), torch.ones_like(u))
        for t, (start, stop) in enumerate(tiling.ranges[axis]):
            outside = (u < start) | (u > stop - 1)
            assert torch.all(w[outside, t] == 0)  # a region is used only inside its own voxels


def test_blend_weights_are_linear_in_the_overlap() -> None:
    tiling = tile_map((100, 100, 100))
    (_, e0), (s1, _) = tiling.ranges[0]
    a, b = s1, e0 - 1
    u = torch.tensor(np.linspace(a, b, 7))
    w = tiling.axis_weights(u, 0)
    torch.testing.assert_close(w[:, 1], (u - a) / (b - a))


def test_bad_tiling_is_refused() -> None:
    with pytest.raises(ParameterError):
        tile_axis(100, 4, 4)
    with pytest.raises(ParameterError):
        tile_map((10, 10))
