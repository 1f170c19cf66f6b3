"""Catalog entries for tilt series, tomograms (MRC and OME-Zarr) and subtomograms, opened through intake."""

from __future__ import annotations

from pathlib import Path

import intake
import numpy as np
import pandas as pd
import pytest

import perc_platform as pp
from perc_platform.errors import ParameterError
from tests.datasets.test_ome_zarr import write_ome_zarr
from tests.datasets.test_tomography import write_tilt_stack, write_tlt


def test_tomography_catalog_entries(tmp_path: Path) -> None:
    angles = np.arange(-30.0, 31.0, 10.0)
    stack = write_tilt_stack(tmp_path / "TS_02.st", angles.size)
    write_tlt(tmp_path / "TS_02.rawtlt", angles)
    volume = np.random.default_rng(1).normal(size=(16, 20, 24)).astype(np.float32)
    write_ome_zarr(tmp_path / "TS_02.zarr", volume, voxel=8.0)
    pd.DataFrame({"x": [10.0, 12.0], "y": [9.0, 8.0], "z": [7.0, 6.0]}).to_csv(tmp_path / "picks.csv", index=False)
    (tmp_path / "tomo.yaml").write_text("""
sources:
  series:
    driver: tilt_series
    args: {urlpath: "{{ CATALOG_DIR }}/TS_02.st"}
  tomo:
    driver: tomogram
    args: {urlpath: "{{ CATALOG_DIR }}/TS_02.zarr", level: 1}
  cubes:
    driver: subtomograms
    args: {urlpath: "{{ CATALOG_DIR }}/TS_02.zarr", picks: "{{ CATALOG_DIR }}/picks.csv",
           box: 6, units: pixel}
""")

    catalog = pp.open_catalog(str(tmp_path / "tomo.yaml"))
    series = catalog.series.to_dask()["image"]
    np.testing.assert_allclose(series["tilt_angle"].values, angles)
    np.testing.assert_array_equal(series.values, stack)
    tomo = catalog.tomo.to_dask()["density"]
    assert tomo.attrs["voxel_size"] == [16.0] * 3
    np.testing.assert_array_equal(tomo.values, volume[::2, ::2, ::2])
    cubes = catalog.cubes.to_dask()["image"]
    assert cubes.dims == ("particle", "z", "y", "x")
    np.testing.assert_array_equal(cubes.values[0], volume[4:10, 6:12, 7:13])
    np.testing.assert_array_equal(cubes.values[1], volume[3:9, 5:11, 9:15])


def test_subtomograms_entry_needs_units(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("sources:\n  cubes:\n    driver: subtomograms\n"
                                     "    args: {urlpath: t.rec, picks: p.csv, box: 6}\n")
    with pytest.raises(ParameterError, match="units"):
        intake.open_catalog(str(tmp_path / "c.yaml")).cubes.to_dask()
