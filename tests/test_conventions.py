"""The validate_* helpers refuse objects that break the data model."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from perc_platform.conventions import add_history, provenance, validate_particles, validate_volume
from perc_platform.errors import InputError


def test_validate_particles() -> None:
    good = xr.DataArray(np.zeros((2, 3, 3)), dims=("particle", "y", "x"), attrs={"pixel_size": 1.2})
    assert validate_particles(good) is good
    with pytest.raises(InputError, match="dims"):
        validate_particles(good.transpose("y", "particle", "x"))
    with pytest.raises(InputError, match="pixel_size"):
        validate_particles(good.assign_attrs(pixel_size=-1.0))


def test_validate_volume() -> None:
    coords = {d: np.arange(4) * 1.5 for d in ("z", "y", "x")}
    good = xr.DataArray(np.zeros((4, 4, 4)), dims=("z", "y", "x"), coords=coords)
    assert validate_volume(good) is good
    with pytest.raises(InputError, match="'x' coordinate"):
        validate_volume(good.drop_vars("x"))
    with pytest.raises(InputError, match="evenly"):
        validate_volume(good.assign_coords(x=[0.0, 1.0, 5.0, 6.0]))


def test_provenance_and_history() -> None:
    attrs = provenance("EMD-5168", "file:///x.map", "opened")
    assert attrs["source_id"] == "EMD-5168" and attrs["history"].endswith("opened")
    obj = xr.DataArray([1], attrs=attrs)
    add_history(obj, "filtered")
    assert obj.attrs["history"].splitlines()[-1].endswith("filtered") and len(obj.attrs["history"].splitlines()) == 2
