"""EMPIAR imagesets of TIFF movies and micrographs open through the format table, by byte range."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from perc_platform.datasets.empiar import open_empiar_imageset
from perc_platform.errors import FormatError
from perc_platform.testing import LoopbackServer
from perc_platform.testing.empiar import empiar_archive

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
    odd = tmp_path / NUMBER / "data" / "eer"
    odd.mkdir()
    (odd / "movie_000.eer").write_bytes(b"II*\x00" + bytes(16))
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


def test_what_is_still_refused_names_the_format(archive: tuple[Path, LoopbackServer]) -> None:
    with pytest.raises(FormatError, match=r"imageset 'eer'.*cannot be read lazily: EER \(Falcon 4"):
        open_empiar_imageset(NUMBER, "eer", pattern="*.eer")
    with pytest.raises(FormatError, match=r"notes.txt.*no format in perc-platform's table reads \.txt"):
        open_empiar_imageset(NUMBER, "movies", pattern="*")
