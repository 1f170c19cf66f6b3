from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from tests.simulate.helpers import gemmi_structure


@pytest.fixture(scope="session")
def actin(shared: Path) -> xr.Dataset:
    """3MFP actin protomer (2882 atoms), which fits EMD-5168."""
    return gemmi_structure(shared / "structures" / "3MFP_tempy.pdb")
