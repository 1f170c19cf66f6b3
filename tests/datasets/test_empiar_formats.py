"""EMPIAR imagesets of TIFF and EER movies, tilt series and tomograms open through the format table, by byte
range; what is still refused names the format or category and why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from intake_perc.empiar import EmpiarImagesetSource

from perc_platform.datasets.empiar import open_empiar_imageset
from perc_platform.errors import FormatError
from perc_platform.storage._http_ranges import GAP_BUDGET
from perc_platform.testing import LoopbackServer
from perc_platform.testing.eer import random_events, write_eer
from perc_platform.testing.empiar import empiar_archive
from tests.datasets.test_tomography import write_tilt_stack, write_tlt
from tests.io.test_eer import SHAPE, histogram

NUMBER = "10288"


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[tuple[Path, LoopbackServer]]:
    movies = tmp_path / NUMBER / "data" / "movies"
    movies.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(3):
        data = rng.integers(0, 16, (4, 48, 40)).astype(np.uint8)
        tifffile.imwrite(movies / f"movie_{i:03d}.tif", data, photometric="minisblack", compression="lzw")
    (movies / "notes.txt").write_text("not an image")
    eer = tmp_path / NUMBER / "data" / "eer"
    eer.mkdir()
    for i in range(2):
        write_eer(eer / f"movie_{i:03d}.eer", random_events(6, SHAPE, 30, seed=40 + i), SHAPE, pixel_size=0.9)
    tilts = tmp_path / NUMBER / "data" / "tilt_series"
    tilts.mkdir()
    for i, angle_file in enumerate(("TS_01.tlt", "TS_02.rawtlt")):
        write_tilt_stack(tilts / f"TS_0{i + 1}.st", 5, seed=i)
        write_tlt(tilts / angle_file, np.arange(-20.0, 21.0, 10.0) + i)
    tomos = tmp_path / NUMBER / "data" / "tomograms"
    tomos.mkdir()
    for i in range(2):
        with mrcfile.new(tomos / f"tomo_{i}.rec") as mrc:
            mrc.set_data(np.random.default_rng(i).normal(size=(6, 8, 10)).astype(np.float32))
            mrc.voxel_size = 3.0
    with empiar_archive(tmp_path) as server:
        yield tmp_path, server


def test_tiff_movies_are_read_lazily_and_equal_tifffile(archive: tuple[Path, LoopbackServer]) -> None:
    root, server = archive
    movies = open_empiar_imageset(NUMBER, "movies")
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == (3, 4, 48, 40)
    assert movies.attrs["format"] == "tiff"
    folder = root / NUMBER / "data" / "movies"
    server.reset_counts()
    np.testing.assert_array_equal(movies[1, 2].values, tifffile.imread(folder / "movie_001.tif", key=2))
    with tifffile.TiffFile(folder / "movie_001.tif") as tif:  # one movie is one chunk: its strips, nothing else
        assert server.bytes_sent == sum(int(np.sum(page.databytecounts)) for page in tif.pages)
    expected = np.stack([tifffile.imread(folder / f"movie_{i:03d}.tif") for i in range(3)])
    np.testing.assert_array_equal(movies.values, expected)


def test_eer_movies_render_through_the_table(archive: tuple[Path, LoopbackServer]) -> None:
    root, server = archive
    movies = open_empiar_imageset(NUMBER, "eer", format_options={"super_resolution": 2, "frames_per_fraction": 3})
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == (2, 2, SHAPE[0] * 2, SHAPE[1] * 2)
    assert movies.attrs["format"] == "eer" and movies.attrs["pixel_size"] == pytest.approx(0.45)
    events = random_events(6, SHAPE, 30, seed=41)
    server.reset_counts()
    np.testing.assert_array_equal(movies[1, 1].values, histogram(events, 2)[3:6].sum(0))
    with tifffile.TiffFile(root / NUMBER / "data" / "eer" / "movie_001.eer") as tif:  # one movie: its strips
        needed = sum(int(np.sum(p.databytecounts)) for p in tif.pages)
    assert needed <= server.bytes_sent <= (1 + GAP_BUDGET) * needed  # IFD gaps may be read through
    source = EmpiarImagesetSource(entry=f"EMPIAR-{NUMBER}", imageset="eer", super_resolution="4",
                                  frames_per_fraction="6")  # the driver, with catalog-style text parameters
    image = source.to_dask()["image"]
    assert image.shape == (2, 1, SHAPE[0] * 4, SHAPE[1] * 4)
    np.testing.assert_array_equal(image[1, 0].values, histogram(events, 4).sum(0))


def test_tilt_series_and_tomograms_route_through_the_table(archive: tuple[Path, LoopbackServer]) -> None:
    root, _ = archive
    series = open_empiar_imageset(NUMBER, "tilt_series")
    assert series.dims == ("tilt_series", "tilt", "y", "x") and series.shape == (2, 5, 12, 10)
    np.testing.assert_allclose(series["tilt_angle"].values[1], np.arange(-20.0, 21.0, 10.0) + 1)  # from .rawtlt
    folder = root / NUMBER / "data" / "tilt_series"
    with mrcfile.open(folder / "TS_02.st") as mrc:
        np.testing.assert_array_equal(series[1, 3].values, mrc.data[3])
    one = open_empiar_imageset(NUMBER, "tilt_series", pattern="TS_01.st")
    assert one.dims == ("tilt", "y", "x") and list(one["tilt_angle"].values) == [-20.0, -10.0, 0.0, 10.0, 20.0]
    tomos = open_empiar_imageset(NUMBER, "tomograms")
    assert tomos.dims == ("tomogram", "z", "y", "x") and tomos.shape == (2, 6, 8, 10)
    with mrcfile.open(root / NUMBER / "data" / "tomograms" / "tomo_1.rec") as mrc:
        np.testing.assert_array_equal(tomos[1].values, mrc.data)
    assert float(tomos["x"].values[1] - tomos["x"].values[0]) == pytest.approx(3.0)


def test_what_is_still_refused_names_the_format(archive: tuple[Path, LoopbackServer]) -> None:
    root, _ = archive
    entry = root / "10999"
    for folder in ("diffraction", "dm4"):
        (entry / "data" / folder).mkdir(parents=True)
    (entry / "data" / "diffraction" / "pattern_000.mrc").write_bytes(b"\0" * 1024)
    (entry / "data" / "dm4" / "movie_000.dm4").write_bytes(b"\0" * 64)
    (entry / "entry.json").write_text(json.dumps({"EMPIAR-10999": {"title": "refusals", "imagesets": [
        {"name": "diffraction", "directory": "data/diffraction", "category": "diffraction images"},
        {"name": "dm4", "directory": "data/dm4", "category": "micrographs - multiframe", "data_format": "DM4"}]}}))
    with pytest.raises(FormatError, match=r"imageset 'diffraction' \(diffraction images\).*category "
                                          r"'diffraction images' is none of them"):
        open_empiar_imageset("10999", "diffraction")
    with pytest.raises(FormatError, match=r"imageset 'dm4'.*DM4 files.*Gatan DM4 is not read"):
        open_empiar_imageset("10999", "dm4")
    with pytest.raises(FormatError, match=r"notes.txt.*no format in perc-platform's table reads \.txt"):
        open_empiar_imageset(NUMBER, "movies", pattern="*")
    with pytest.raises(FormatError, match="format_options apply to movie imagesets"):
        open_empiar_imageset(NUMBER, "tomograms", format_options={"super_resolution": 2})
