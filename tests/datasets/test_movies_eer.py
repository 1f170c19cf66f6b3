"""EER movies as data: open_movies with super-resolution and fractions, dose per fraction, gain at the rendered
size, the ``perc movies`` command and the ``movies`` driver; values against numpy histograms of known events."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from intake_perc.movies import MoviesSource

from perc_platform import open_movies
from perc_platform.cli.main import main
from perc_platform.datasets import apply_gain, sum_frames
from perc_platform.errors import ParameterError
from perc_platform.testing.eer import random_events, write_eer
from tests.io.test_eer import SHAPE, histogram

RAW = 8


@pytest.fixture
def eer_movies(tmp_path: Path) -> tuple[list[Path], list[list[np.ndarray]]]:
    events = [random_events(RAW, SHAPE, 40, seed=20 + i) for i in range(2)]
    paths = [write_eer(tmp_path / f"movie_{i}.eer", ev, SHAPE, pixel_size=0.8, exposure_time=3.0)
             for i, ev in enumerate(events)]
    return paths, events


def test_open_movies_renders_fractions_with_dose(eer_movies: tuple[list[Path], list[list[np.ndarray]]]) -> None:
    paths, events = eer_movies
    movies = open_movies([str(p) for p in paths], super_resolution=2, frames_per_fraction=3, remainder="keep")
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == (2, 3, 48, 80)
    assert movies.attrs["format"] == "eer" and movies.attrs["super_resolution"] == 2
    assert movies.attrs["pixel_size"] == pytest.approx(0.4)
    np.testing.assert_array_equal(movies["raw_frames"].values, [[3, 3, 2], [3, 3, 2]])
    for m, ev in enumerate(events):
        raw = histogram(ev, 2)
        expected = np.stack([raw[0:3].sum(0), raw[3:6].sum(0), raw[6:8].sum(0)])
        np.testing.assert_array_equal(movies[m].values, expected)
        per_raw = sum(len(e) for e in ev) / (SHAPE[0] * SHAPE[1]) / 0.8**2 / RAW
        assert movies["dose_per_frame"].values[m] == pytest.approx(3 * per_raw)  # one full fraction
    assert np.allclose(movies["exposure_time"].values, 3.0)
    total = sum_frames(movies)  # every fraction summed: all raw frames, nothing lost with remainder="keep"
    np.testing.assert_array_equal(total[1].values, histogram(events[1], 2).sum(0))
    dropped = open_movies(str(paths[0]), frames_per_fraction=3)
    assert dropped.shape == (1, 2, *SHAPE)
    np.testing.assert_array_equal(dropped[0, 1].values, histogram(events[0], 1)[3:6].sum(0))


def test_gain_applies_at_the_rendered_size(tmp_path: Path,
                                           eer_movies: tuple[list[Path], list[list[np.ndarray]]]) -> None:
    paths, events = eer_movies
    gain = np.random.default_rng(2).uniform(0.5, 1.5, (SHAPE[0] * 4, SHAPE[1] * 4)).astype(np.float32)
    tifffile.imwrite(tmp_path / "gain.tif", gain)  # an EPU-style TIFF gain at 16k for a 4k sensor
    movies = open_movies(str(paths[0]), super_resolution=4, frames_per_fraction=4)
    out = apply_gain(movies, tmp_path / "gain.tif")
    # TIFF gain on a TIFF-container movie: both in TIFF row order, so applied as stored
    np.testing.assert_allclose(out[0, 1].values, histogram(events[0], 4)[4:8].sum(0) * gain, rtol=1e-6)
    with mrcfile.new(tmp_path / "gain.mrc") as mrc:
        mrc.set_data(gain)
    flipped = apply_gain(movies, tmp_path / "gain.mrc")  # an MRC gain is flipped into TIFF row order
    np.testing.assert_allclose(flipped[0, 0].values, histogram(events[0], 4)[0:4].sum(0) * gain[::-1], rtol=1e-6)
    at_2x = open_movies(str(paths[0]), super_resolution=2)
    with pytest.raises(ParameterError, match=r"gain\.tif.*160x96.*80x48.*super_resolution=2.*fits super_resolution=4"):
        apply_gain(at_2x, tmp_path / "gain.tif")


def test_eer_options_are_refused_for_other_formats(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(ParameterError, match=r"m\.tif: frames_per_fraction given, but the file is TIFF"):
        open_movies(str(tmp_path / "m.tif"), frames_per_fraction=2)


def test_perc_movies_and_the_driver_read_eer(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             eer_movies: tuple[list[Path], list[list[np.ndarray]]]) -> None:
    paths, events = eer_movies
    assert main(["movies", "describe", str(paths[0]), "--super-resolution", "2", "--frames-per-fraction", "4"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["format"] == "eer" and described["shape"] == [1, 2, 48, 80]
    assert described["super_resolution"] == 2 and described["frames_per_fraction"] == 4
    assert described["raw_frames"] == RAW
    out = tmp_path / "sums.mrcs"
    assert main(["movies", "sum", str(paths[1]), "--frames-per-fraction", "2", "--out", str(out)]) == 0
    with mrcfile.open(out) as mrc:
        np.testing.assert_array_equal(mrc.data.reshape(-1, *SHAPE)[0], histogram(events[1], 1).sum(0))  # one image
        assert mrc.voxel_size.x == pytest.approx(0.8)
    source = MoviesSource(urlpath=str(paths[1]), super_resolution="4", frames_per_fraction="8", mdoc="false")
    data = source.read()
    image = data["image"] if hasattr(data, "data_vars") else data
    np.testing.assert_array_equal(np.asarray(image.values)[0, 0], histogram(events[1], 4).sum(0))
    with pytest.raises(ParameterError, match="super_resolution"):
        MoviesSource(urlpath=str(paths[1]), super_resolution=3).read()
