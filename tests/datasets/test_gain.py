"""Gain references applied lazily with RELION/MotionCor2 rotation and flip options: a hand-built case.

The gain below is 2 x 3 in file order. Expected results are written out by hand from RELION's help text (quarter
turns clockwise as relion_display draws row 0 at the top, then flip Y = upside down or X = left to right) and its
rule that TIFF images are flipped along the slow axis when read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from perc_platform import open_movies
from perc_platform.datasets import apply_gain
from perc_platform.errors import InputError, ParameterError
from perc_platform.io import write_stack

GAIN = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)

MRC_GAIN_MRC_MOVIE = {  # (rotation, flip): gain as applied, in the movie's rows
    (0, 1): [[4, 5, 6], [1, 2, 3]],
    (0, 2): [[3, 2, 1], [6, 5, 4]],
    (1, 0): [[4, 1], [5, 2], [6, 3]],
    (1, 2): [[1, 4], [2, 5], [3, 6]],
    (2, 0): [[6, 5, 4], [3, 2, 1]],
    (3, 0): [[3, 6], [2, 5], [1, 4]],
}


def _movie(tmp_path: Path, shape: tuple[int, int], tiff: bool) -> Path:
    frames = np.stack([np.full(shape, k + 1, np.uint16) for k in range(3)])
    if tiff:
        path = tmp_path / "movie.tif"
        tifffile.imwrite(path, frames, photometric="minisblack")
    else:
        path = write_stack(tmp_path / "movie.mrc", frames)
    return path


def _gain(tmp_path: Path, tiff: bool) -> Path:
    if tiff:
        path = tmp_path / "gain.tif"
        tifffile.imwrite(path, GAIN, photometric="minisblack")
        return path
    return write_stack(tmp_path / "gain.mrc", GAIN[None])


@pytest.mark.parametrize(("rotation", "flip"), list(MRC_GAIN_MRC_MOVIE))
def test_mrc_gain_on_mrc_movies(tmp_path: Path, rotation: int, flip: int) -> None:
    expected = np.array(MRC_GAIN_MRC_MOVIE[rotation, flip], dtype=np.float32)
    movies = open_movies(str(_movie(tmp_path, expected.shape, tiff=False)), mdoc=False)
    corrected = apply_gain(movies, _gain(tmp_path, tiff=False), rotation=rotation, flip=flip)
    assert corrected.dtype == np.float32 and hasattr(corrected.data, "dask")
    for k in range(3):
        np.testing.assert_array_equal(corrected[0, k].values, (k + 1) * expected)


@pytest.mark.parametrize(("gain_tiff", "movie_tiff", "expected"), [
    (True, False, [[1, 4], [2, 5], [3, 6]]),  # RELION reads the TIFF gain upside down, then turns it
    (True, True, [[3, 6], [2, 5], [1, 4]]),   # both read upside down: in file order the turn looks the other way
    (False, True, [[6, 3], [5, 2], [4, 1]]),
])
def test_tiff_files_follow_relion_reading_tiff_upside_down(tmp_path: Path, gain_tiff: bool, movie_tiff: bool,
                                                           expected: list[list[int]]) -> None:
    want = np.array(expected, dtype=np.float32)
    movies = open_movies(str(_movie(tmp_path, want.shape, tiff=movie_tiff)), mdoc=False)
    corrected = apply_gain(movies, _gain(tmp_path, tiff=gain_tiff), rotation=1)
    np.testing.assert_array_equal(corrected[0, 1].values, 2 * want)


def test_a_gain_of_the_wrong_shape_or_option_is_refused(tmp_path: Path) -> None:
    movies = open_movies(str(_movie(tmp_path, (3, 2), tiff=False)), mdoc=False)
    with pytest.raises(ParameterError, match=r"gain is 3x2 after rotation=0.*movies are 2x3.*odd rotations"):
        apply_gain(movies, _gain(tmp_path, tiff=False))
    with pytest.raises(InputError, match="rotation=4"):
        apply_gain(movies, GAIN, rotation=4)
