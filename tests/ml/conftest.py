"""Fixtures for the torch adapters: the real particle stacks of ../shared/data, opened lazily."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

import perc_platform


@pytest.fixture
def relion31(shared: Path) -> xr.DataArray:
    """5 real 256 x 256 particles with RELION 3.1 metadata (class column included)."""
    return perc_platform.open_particles(star=shared / "particles" / "relion31.star")


@pytest.fixture
def sta(shared: Path) -> xr.DataArray:
    """219 real 64 x 64 tilt images, chunked by 16 so that streams cross many chunks."""
    return perc_platform.open_particles(star=shared / "particles" / "sta_testing_bin8.star", chunk_size=16)
