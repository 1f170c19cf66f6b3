"""Tilt series and tomograms: written by mrcfile, angles in IMOD/SerialEM files, opened lazily (locally and
over the loopback server, where the bytes moved at open are counted)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dask.array as da
import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.errors import DataNotFoundError, FormatError
from perc_platform.io.tilt_angles import read_tilt_angles
from perc_platform.storage.policy import grant_host


def write_tilt_stack(path: Path, n: int, shape: tuple[int, int] = (12, 10), seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).integers(-300, 300, size=(n, *shape)).astype(np.int16)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
        mrc.voxel_size = 2.5
    return data


def write_tlt(path: Path, angles: np.ndarray) -> None:
    path.write_text("".join(f"{a:8.2f}\n" for a in angles))


@pytest.mark.parametrize("stack_name, angle_name", [("TS_03.st", "TS_03.tlt"), ("TS_03.ali", "TS_03.rawtlt"),
                                                    ("TS_03.mrc", "TS_03.tlt")])
def test_tilt_series_with_imod_angles_beside_it(tmp_path: Path, stack_name: str, angle_name: str) -> None:
    angles = np.arange(-60, 61, 6.0)
    data = write_tilt_stack(tmp_path / stack_name, angles.size)
    write_tlt(tmp_path / angle_name, angles)
    series = pp.open_tilt_series(tmp_path / stack_name)
    assert series.dims == ("tilt", "y", "x") and series.shape == data.shape
    assert isinstance(series.data, da.Array)
    np.testing.assert_allclose(series["tilt_angle"].values, angles)
    np.testing.assert_array_equal(series.values, data)
    np.testing.assert_array_equal(series.sel(tilt=series["tilt_angle"] == 0).values[0], data[angles.size // 2])
    assert series.attrs["pixel_size"] == pytest.approx(2.5)
    assert series.attrs["tilt_angles_from"] == str(tmp_path / angle_name)


def test_tilt_series_with_serialem_mdoc(shared: Path, tmp_path: Path) -> None:
    text = (shared / "metadata" / "tilt_series.mdoc").read_text()
    sections = re.findall(r"\[ZValue = (\d+)\]\s*\nTiltAngle = (\S+)", text)
    doses = re.findall(r"ExposureDose = (\S+)", text)
    by_z = sorted((int(z), float(a)) for z, a in sections)
    data = write_tilt_stack(tmp_path / "TS_01.mrc", len(by_z))
    shutil.copyfile(shared / "metadata" / "tilt_series.mdoc", tmp_path / "TS_01.mrc.mdoc")  # SerialEM's naming
    series = pp.open_tilt_series(tmp_path / "TS_01.mrc")
    np.testing.assert_allclose(series["tilt_angle"].values, [a for _, a in by_z])
    np.testing.assert_allclose(series["dose"].values, [float(d) for d in doses][: len(by_z)])
    assert series.attrs["pixel_size"] == 5.4  # PixelSpacing of the mdoc beats the header's 2.5
    np.testing.assert_array_equal(series.values, data)


def test_tilt_series_angles_given_and_mismatches(tmp_path: Path) -> None:
    write_tilt_stack(tmp_path / "ts.st", 5)
    series = pp.open_tilt_series(tmp_path / "ts.st", angles=[-20, -10, 0, 10, 20])
    assert series["tilt_angle"].values.tolist() == [-20, -10, 0, 10, 20]
    with pytest.raises(DataNotFoundError, match=r"ts\.tlt.*pass angles="):
        pp.open_tilt_series(tmp_path / "ts.st")
    write_tlt(tmp_path / "ts.tlt", np.arange(4.0))
    with pytest.raises(FormatError, match="holds 5 images but .*ts.tlt gives 4"):
        pp.open_tilt_series(tmp_path / "ts.st")
    (tmp_path / "ts.tlt").write_text("10\nsteep\n")
    with pytest.raises(FormatError, match="line 2 is 'steep'"):
        read_tilt_angles(tmp_path / "ts.tlt")
    (tmp_path / "ts.tlt").write_text("10\n900\n")
    with pytest.raises(FormatError, match="within"):
        read_tilt_angles(tmp_path / "ts.tlt")


def test_remote_tilt_series_and_tomogram_read_only_headers_at_open(tmp_path: Path, server_factory) -> None:
    angles = np.linspace(-54, 54, 19)
    data = write_tilt_stack(tmp_path / "TS_07.st", angles.size, (64, 48))
    write_tlt(tmp_path / "TS_07.tlt", angles)
    tomogram = np.random.default_rng(2).normal(size=(16, 40, 36)).astype(np.float32)
    with mrcfile.new(tmp_path / "TS_07.rec") as mrc:
        mrc.set_data(tomogram)
        mrc.voxel_size = 7.5
    srv = server_factory(tmp_path)
    grant_host(srv.url)
    series = pp.open_tilt_series(f"{srv.url}/TS_07.st")
    angle_bytes = (tmp_path / "TS_07.tlt").stat().st_size
    assert srv.bytes_sent == 1024 + angle_bytes  # the MRC header and the angle file, no image
    before = srv.bytes_sent
    volume = pp.open_tomogram(f"{srv.url}/TS_07.rec")
    assert srv.bytes_sent - before == 1024 and volume.dims == ("z", "y", "x") and volume.shape == tomogram.shape
    assert volume.attrs["kind"] == "tomogram"
    np.testing.assert_allclose(np.diff(volume["x"].values), 7.5)
    np.testing.assert_array_equal(series.values, data)
    np.testing.assert_allclose(series["tilt_angle"].values, np.round(angles, 2))
    np.testing.assert_array_equal(volume.values, tomogram)


def test_tiff_tilt_series_through_the_format_table(tmp_path: Path) -> None:
    import tifffile

    data = np.random.default_rng(9).integers(0, 255, size=(5, 16, 12)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "TS_09.tif", data, compression="zlib")
    write_tlt(tmp_path / "TS_09.tlt", np.arange(-20.0, 21.0, 10.0))
    series = pp.open_tilt_series(tmp_path / "TS_09.tif")
    np.testing.assert_array_equal(series.values, tifffile.imread(tmp_path / "TS_09.tif"))
    assert series["tilt_angle"].values.tolist() == [-20.0, -10.0, 0.0, 10.0, 20.0]
