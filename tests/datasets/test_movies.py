"""open_movies: (movie, frame, y, x) from TIFF and MRC movies with dose and pixel size from an mdoc; sums, pairs."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from perc_platform import open_movies
from perc_platform.datasets import sum_frames
from perc_platform.errors import FormatError, ParameterError
from perc_platform.io import write_stack
from perc_platform.processing import extract_patches, noise2noise_pairs

FRAMES = 6

MDOC = """PixelSpacing = 0.83
ImageFile = {name}

[FrameSet = 0]
ExposureDose = 48.0
ExposureTime = 2.5
NumSubFrames = 6
PixelSpacing = 0.83
"""


@pytest.fixture
def tiff_movies(tmp_path: Path) -> tuple[list[Path], np.ndarray]:
    rng = np.random.default_rng(5)
    data = rng.integers(0, 16, (3, FRAMES, 40, 56)).astype(np.uint8)
    paths = []
    for i in range(3):
        path = tmp_path / f"movie_{i}.tif"
        tifffile.imwrite(path, data[i], photometric="minisblack", compression="zlib")
        (tmp_path / f"movie_{i}.tif.mdoc").write_text(MDOC.format(name=path.name))
        paths.append(path)
    return paths, data


def test_tiff_movies_with_mdoc_metadata(tiff_movies: tuple[list[Path], np.ndarray]) -> None:
    paths, data = tiff_movies
    movies = open_movies(str(paths[0].parent / "movie_*.tif"))
    assert movies.dims == ("movie", "frame", "y", "x") and movies.shape == data.shape
    assert movies.attrs["pixel_size"] == pytest.approx(0.83)
    assert movies.attrs["dose_per_frame"] == pytest.approx(48.0 / FRAMES)
    assert movies["exposure_time"].values.tolist() == [2.5] * 3
    assert movies["frame"].values.tolist() == list(range(1, FRAMES + 1))
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(movies[i].values, tifffile.imread(path))
    given = open_movies([str(p) for p in paths], dose_per_frame=1.5, pixel_size=1.1, mdoc=False)
    assert given.attrs["dose_per_frame"] == 1.5 and given.attrs["pixel_size"] == 1.1


def test_sums_and_noise2noise_pairs_equal_numpy(tiff_movies: tuple[list[Path], np.ndarray]) -> None:
    paths, data = tiff_movies
    movies = open_movies([str(p) for p in paths])
    np.testing.assert_allclose(sum_frames(movies).values, data.sum(axis=1, dtype=np.float32))
    fractions = sum_frames(movies, group=4)
    assert fractions.dims == ("movie", "fraction", "y", "x") and fractions.sizes["fraction"] == 1
    np.testing.assert_allclose(fractions.values[:, 0], data[:, :4].sum(axis=1, dtype=np.float32))
    assert fractions.attrs["dose_per_fraction"] == pytest.approx(4 * 48.0 / FRAMES)
    pairs = noise2noise_pairs(movies)
    np.testing.assert_allclose(pairs["input"].values, data[:, 0::2].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(pairs["target"].values, data[:, 1::2].mean(axis=1), rtol=1e-6)
    patches = extract_patches(pairs, 16, 8)
    assert hasattr(patches["input"].data, "dask")  # lazy
    k = 5
    s, y, x = (int(patches[c].values[k]) for c in ("source", "y0", "x0"))
    np.testing.assert_allclose(patches["target"].values[k], data[s, 1::2].mean(axis=0)[y:y + 16, x:x + 16],
                               rtol=1e-6)
    with pytest.raises(ParameterError, match="group"):
        sum_frames(movies, group=FRAMES + 1)


def test_mrc_movies_and_shape_mismatch(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((2, 4, 16, 16)).astype(np.float32)
    for i in range(2):
        write_stack(tmp_path / f"m{i}.mrc", data[i], pixel_size=1.3)
    movies = open_movies(str(tmp_path / "m*.mrc"))
    assert movies.attrs["pixel_size"] == pytest.approx(1.3)
    with mrcfile.open(tmp_path / "m1.mrc") as mrc:
        np.testing.assert_array_equal(movies[1].values, mrc.data)
    write_stack(tmp_path / "m2.mrc", data[0, :3])
    with pytest.raises(FormatError, match="one shape"):
        open_movies(str(tmp_path / "m*.mrc"))
