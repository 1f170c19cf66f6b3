"""Subtomograms around picks equal NumPy slices of the full volume (read with mrcfile / zarr), edges refused or
padded as asked, picks from STAR and CSV files in voxels or Angstrom, streamed by the torch loader."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import zarr

import perc_platform as pp
from perc_platform.errors import FormatError, ParameterError
from perc_platform.ml import ParticleLoader
from perc_platform.storage.policy import grant_host
from tests.datasets.test_ome_zarr import write_ome_zarr

SHAPE, BOX, VOXEL = (40, 48, 56), 10, 6.25


@pytest.fixture(scope="module")
def tomogram(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("tomo")
    data = np.random.default_rng(11).normal(size=SHAPE).astype(np.float32)
    with mrcfile.new(folder / "TS_01.rec") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = VOXEL
    with mrcfile.open(folder / "TS_01.rec") as mrc:  # the independent reference
        return folder / "TS_01.rec", mrc.data.copy()


def inside_picks(n: int, seed: int = 3) -> np.ndarray:
    """``(x, y, z)`` voxel centres whose cubes lie inside the volume."""
    rng = np.random.default_rng(seed)
    half = BOX // 2
    return np.stack([rng.integers(half, s - (BOX - half) + 1, n) for s in SHAPE[::-1]], axis=1).astype(float)


def numpy_cube(volume: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    x, y, z = (round(float(v)) - BOX // 2 for v in xyz)
    return volume[z:z + BOX, y:y + BOX, x:x + BOX]


def test_fifty_subtomograms_equal_numpy_slices(tomogram: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, reference = tomogram
    picks = inside_picks(50)
    star = tmp_path / "picks.star"
    starfile.write(pd.DataFrame({"rlnCoordinateX": picks[:, 0], "rlnCoordinateY": picks[:, 1],
                                 "rlnCoordinateZ": picks[:, 2]}), star)
    cubes = pp.open_subtomograms(pp.open_tomogram(path), star, box=BOX, units="pixel", chunk_size=8)
    assert cubes.dims == ("particle", "z", "y", "x") and cubes.shape == (50, BOX, BOX, BOX)
    assert cubes.data.chunks[0] == (8,) * 6 + (2,)
    values = cubes.values
    for i, xyz in enumerate(picks):
        np.testing.assert_array_equal(values[i], numpy_cube(reference, xyz), err_msg=f"pick {i}")
    np.testing.assert_array_equal(cubes["coordinate_x"].values, picks[:, 0])
    assert cubes.attrs["pixel_size"] == pytest.approx(VOXEL)


def test_angstrom_picks_from_csv_and_edges(tomogram: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, reference = tomogram
    volume = pp.open_tomogram(path)
    picks = np.array([[3.0, 20.0, 20.0], [28.0, 24.0, 20.0], [55.0, 47.0, 39.0]])  # x, y, z voxels
    csv = tmp_path / "picks.csv"
    pd.DataFrame(picks * VOXEL, columns=["X", "Y", "Z"]).to_csv(csv, index=False)
    with pytest.raises(ParameterError, match="2 of 3 picks .*pick 0.*edge='pad'"):
        pp.open_subtomograms(volume, csv, box=BOX, units="angstrom")
    cubes = pp.open_subtomograms(volume, csv, box=BOX, units="angstrom", edge="pad", pad_value=-7.0).values
    padded = np.pad(reference, BOX, constant_values=-7.0)
    for i, xyz in enumerate(picks):
        shifted = xyz + BOX
        np.testing.assert_array_equal(cubes[i], numpy_cube(padded, shifted), err_msg=f"pick {i}")
    corner = BOX // 2 + 1  # the cube of the last voxel: its centre is inside, the far corner outside
    assert (cubes[2][corner:, corner:, corner:] == -7.0).all() and cubes[2][BOX // 2, BOX // 2, BOX // 2] != -7.0


def test_ome_zarr_subtomograms_equal_zarr_slices(tmp_path: Path) -> None:
    data = np.random.default_rng(8).normal(size=SHAPE).astype(np.float32)
    write_ome_zarr(tmp_path / "t.zarr", data, voxel=VOXEL)
    picks = inside_picks(12, seed=9)
    cubes = pp.open_subtomograms(pp.open_ome_zarr(tmp_path / "t.zarr"), picks * VOXEL, box=BOX, units="angstrom")
    reference = zarr.open_group(tmp_path / "t.zarr", mode="r")["0"]
    for i, xyz in enumerate(picks):
        np.testing.assert_array_equal(cubes[i].values, numpy_cube(reference[...], xyz))


def test_remote_cubes_read_rows_not_the_volume(tomogram: tuple[Path, np.ndarray], server_factory) -> None:
    path, reference = tomogram
    srv = server_factory(path.parent)
    grant_host(srv.url)
    volume = pp.open_tomogram(f"{srv.url}/{path.name}")
    picks = inside_picks(3, seed=4)
    cubes = pp.open_subtomograms(volume, picks, box=BOX, units="pixel")
    assert srv.bytes_sent == 1024
    values = cubes.values
    rows = 3 * BOX * BOX * SHAPE[2] * 4  # each cube: BOX sections x BOX rows of the full width
    assert srv.bytes_sent - 1024 == rows < reference.nbytes / 5
    for i, xyz in enumerate(picks):
        np.testing.assert_array_equal(values[i], numpy_cube(reference, xyz))


def test_torch_loader_streams_subtomograms(tomogram: tuple[Path, np.ndarray]) -> None:
    path, reference = tomogram
    picks = inside_picks(20, seed=6)
    cubes = pp.open_subtomograms(pp.open_tomogram(path), picks, box=BOX, units="pixel", chunk_size=4)
    loader = ParticleLoader(cubes, batch_size=6, mode="stream", device="cpu", seed=1)
    seen = 0
    for batch in loader:
        images, index = batch["image"].numpy(), batch["index"].numpy()
        assert images.shape[1:] == (BOX, BOX, BOX)
        for image, i in zip(images, index, strict=True):
            np.testing.assert_array_equal(image, numpy_cube(reference, picks[i]))
        seen += len(index)
    assert seen == 20


def test_bad_picks(tomogram: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    volume = pp.open_tomogram(tomogram[0])
    with pytest.raises(ParameterError, match="units="):
        pp.open_subtomograms(volume, inside_picks(2), box=BOX, units="voxel")  # type: ignore[arg-type]
    (tmp_path / "p.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FormatError, match="do not include x, y and z"):
        pp.open_subtomograms(volume, tmp_path / "p.csv", box=BOX, units="pixel")
    (tmp_path / "p.star").write_text("data_\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1 2\n")
    with pytest.raises(FormatError, match="rlnCoordinateZ"):
        pp.open_subtomograms(volume, tmp_path / "p.star", box=BOX, units="pixel")
    with pytest.raises(ParameterError, match="box="):
        pp.open_subtomograms(volume, inside_picks(2), box=0, units="pixel")
