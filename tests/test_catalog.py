"""The shipped catalogs through intake.open_catalog: discovery reads headers only, data are right."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import intake
import numpy as np
import pytest
import xarray as xr

from perc_platform.catalogs import catalog_path
from perc_platform.storage.policy import grant_host
from perc_platform.testing import write_stack, write_star
from tests.io.mrc_helpers import mrcfile_read


@pytest.fixture
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Shell command not executed", category=UserWarning)
        yield


def test_root_catalog_lists_entries(quiet: None) -> None:
    cat = intake.open_catalog(str(catalog_path()))
    assert {"demo", "local_map", "local_particles"} <= set(cat)
    assert set(cat.demo) >= {"particles", "map"}


def test_demo_catalog_local_entry(quiet: None, tmp_path: Path) -> None:
    write_stack(tmp_path / "particles.mrcs", 60, (16, 16), pixel_size=1.5)
    write_star(tmp_path / "particles.star", "particles.mrcs", 60, pixel_size=1.5)
    cat = intake.open_catalog(str(catalog_path("demo.yaml")))
    assert {"structure", "map", "particles", "local_particles"} <= set(cat)
    ds = cat.local_particles(data_dir=str(tmp_path)).to_dask()
    assert isinstance(ds, xr.Dataset)
    np.testing.assert_array_equal(ds["image"].values, mrcfile_read(tmp_path / "particles.mrcs"))
    assert ds["image"].attrs["pixel_size"] == pytest.approx(1.5)
    assert ds["class_number"].values.tolist()[:4] == [1, 2, 3, 1]


def test_discover_reads_headers_only_and_partitions_are_files(quiet: None, tmp_path: Path, server_factory) -> None:
    for i in range(3):
        write_stack(tmp_path / f"s{i}.mrcs", 20 + i, (16, 16), seed=i)
    srv = server_factory(tmp_path)
    grant_host(srv.url)
    cat = intake.open_catalog(str(catalog_path()))
    urls = [f"{srv.url}/s{i}.mrcs" for i in range(3)]
    source = cat.local_particles(urlpath=urls[0])
    info = source.discover()
    assert info["shape"] == (20, 16, 16) and info["npartitions"] == 1
    assert srv.bytes_sent == 1024
    from intake_perc.mrc_stack import MrcStackSource

    many = MrcStackSource(urlpath=urls)
    assert many.discover()["npartitions"] == 3
    srv.reset_counts()
    part = many.read_partition(1)
    np.testing.assert_array_equal(part["image"].values, mrcfile_read(tmp_path / "s1.mrcs"))
    assert srv.bytes_sent == 21 * 16 * 16 * 4  # only that file's data
    assert many.params.urlpath == urls
