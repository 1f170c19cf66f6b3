"""OME-Zarr volumes (NGFF 0.4 as the CZ cryoET Data Portal serves them, and 0.5), written with zarr itself."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

import perc_platform as pp
from perc_platform.errors import FormatError, ParameterError
from perc_platform.storage.policy import grant_host


def write_ome_zarr(path: Path, volume: np.ndarray, *, voxel: float = 10.0, unit: str = "angstrom",
                   version: str = "0.4", translation: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
    """A three-level pyramid (1x, 2x, 4x by striding) with the NGFF multiscales block."""
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    datasets = []
    for level in range(3):
        step = 2**level
        group.create_array(str(level), data=np.ascontiguousarray(volume[::step, ::step, ::step]), chunks=(8, 8, 8))
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [voxel * step] * 3},
            {"type": "translation", "translation": list(translation)}]})
    block = {"version": version, "name": "tomogram", "datasets": datasets,
             "axes": [{"name": n, "type": "space", "unit": unit} for n in ("z", "y", "x")]}
    if version == "0.4":
        group.attrs["multiscales"] = [block]
    else:
        group.attrs["ome"] = {"version": version, "multiscales": [block]}


@pytest.fixture(scope="module")
def tomogram() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(24, 32, 40)).astype(np.float32)


def test_portal_layout_over_http_opens_lazily(tmp_path: Path, tomogram: np.ndarray, server_factory) -> None:
    write_ome_zarr(tmp_path / "TS_01.zarr", tomogram, voxel=13.48)
    srv = server_factory(tmp_path)
    grant_host(srv.url.split("://", 1)[1])
    volume = pp.open_ome_zarr(f"{srv.url}/TS_01.zarr", level=1)
    chunk_requests = [r.path for r in srv.requests if r.method == "GET" and r.status == 200
                      and not r.path.rsplit("/", 1)[-1].startswith(".")]
    assert chunk_requests == []  # only .zgroup/.zattrs/.zarray metadata was read at open
    assert isinstance(volume.data, da.Array) and volume.dims == ("z", "y", "x")
    assert volume.shape == (12, 16, 20) and volume.attrs["voxel_size"] == [26.96] * 3
    np.testing.assert_allclose(np.diff(volume["x"].values), 26.96)
    reference = zarr.open_group(tmp_path / "TS_01.zarr", mode="r")["1"][...]
    np.testing.assert_array_equal(volume.values, reference)
    np.testing.assert_array_equal(volume.values, tomogram[::2, ::2, ::2])


def test_ngff_05_with_nanometres_and_translation(tmp_path: Path, tomogram: np.ndarray) -> None:
    write_ome_zarr(tmp_path / "t.zarr", tomogram, voxel=0.5, unit="nanometer", version="0.5",
                   translation=(1.0, 2.0, 3.0))
    volume = pp.open_ome_zarr(tmp_path / "t.zarr")
    assert volume.attrs["voxel_size"] == [5.0, 5.0, 5.0] and volume.attrs["origin"] == [30.0, 20.0, 10.0]
    assert volume["z"].values[0] == 10.0 and volume["x"].values[1] == 35.0
    np.testing.assert_array_equal(volume.values, tomogram)


def test_bad_ome_zarr_gives_clear_errors(tmp_path: Path, tomogram: np.ndarray) -> None:
    write_ome_zarr(tmp_path / "t.zarr", tomogram)
    with pytest.raises(ParameterError, match="levels 0 to 2"):
        pp.open_ome_zarr(tmp_path / "t.zarr", level=3)
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=2)
    plain.create_array("0", data=tomogram)
    with pytest.raises(FormatError, match="no 'multiscales'"):
        pp.open_ome_zarr(tmp_path / "plain.zarr")
    group = zarr.open_group(tmp_path / "t.zarr", mode="r+")
    group.attrs["multiscales"] = [{**group.attrs["multiscales"][0],
                                   "axes": [{"name": n, "type": "space", "unit": "parsec"} for n in "zyx"]}]
    with pytest.raises(FormatError, match="unit 'parsec'"):
        pp.open_ome_zarr(tmp_path / "t.zarr")
