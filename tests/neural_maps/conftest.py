"""Fixtures: small neural maps fitted once per session on real maps from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

import perc_platform.neural_maps as nm
from perc_platform import open_volume

#: A deliberately small SIREN for the fast tests (the default is 4 x 256); the tests that need the
#: reference-sized model say so.
TINY = nm.SirenConfig(hidden_layers=2, hidden_width=32)
TINY_FIT = {"max_steps": 100, "batch_size": 1024, "learning_rate": 1e-3, "target_mae": 1e-3, "check_every": 20}


@pytest.fixture(scope="session")
def segment(shared: Path) -> xr.DataArray:
    """The 28 x 43 x 41 actin segment of EMD-5168 (ORIGIN-field placement), loaded."""
    return open_volume(shared / "maps" / "emd_5168_monomer_segment.mrc").load()


@pytest.fixture(scope="session")
def tiny_map(segment: xr.DataArray) -> nm.NeuralMap:
    """A tiny SIREN per region, regions of <= 24^3 so the segment has several regions and overlaps."""
    return nm.fit_neural_map(segment, config=TINY, max_region=24, overlap=4, device="cpu", **TINY_FIT)
