"""STAR files that name whole image files (no ``@``): single-image files and subtomograms, as RELION writes them."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.errors import FormatError, StarFormatError
from perc_platform.testing import write_stack


def _star(path: Path, names: list[str]) -> Path:
    rows = "".join(f"{name} 1 {10000 + 100 * i}\n" for i, name in enumerate(names))
    path.write_text("data_optics\nloop_\n_rlnOpticsGroup\n_rlnImagePixelSize\n1 1.25\n\ndata_particles\nloop_\n"
                    "_rlnImageName\n_rlnOpticsGroup\n_rlnDefocusU\n" + rows, encoding="utf-8")
    return path


def _image(path: Path, index: int = 0) -> np.ndarray:
    data = mrcfile.read(path)
    return data.reshape(-1, *data.shape[-2:])[index]


def test_single_image_files_named_without_at_are_read(tmp_path: Path) -> None:
    singles = [write_stack(tmp_path / "singles" / f"p{i}.mrc", 1, (16, 16), seed=i) for i in range(3)]
    stack = write_stack(tmp_path / "s.mrcs", 4, (16, 16), seed=9)
    star = _star(tmp_path / "run.star", ["singles/p0.mrc", "singles/p2.mrc", "000003@s.mrcs", "singles/p1.mrc"])
    images = pp.open_particles(star=star)
    expected = [_image(singles[0]), _image(singles[2]), _image(stack, 2), _image(singles[1])]
    np.testing.assert_array_equal(images.values, np.stack(expected))
    assert images["defocus_u"].values.tolist() == [10000, 10100, 10200, 10300]
    assert images.attrs["pixel_size"] == 1.25


def test_a_subtomogram_star_file_reads_one_volume_per_row(tmp_path: Path) -> None:
    subs = [write_stack(tmp_path / "subtomo" / f"s{i}.mrc", 8, (16, 16), seed=20 + i) for i in range(3)]
    star = _star(tmp_path / "run.star", ["subtomo/s2.mrc", "subtomo/s0.mrc", "subtomo/s1.mrc"])
    cubes = pp.open_particles(star=star)
    assert cubes.dims == ("particle", "z", "y", "x") and cubes.shape == (3, 8, 16, 16)
    for row, i in enumerate([2, 0, 1]):
        with mrcfile.open(subs[i], permissive=True) as mrc:
            np.testing.assert_array_equal(cubes[row].values, mrc.data)
    assert cubes["defocus_u"].values.tolist() == [10000, 10100, 10200]


def test_a_whole_3d_file_beside_images_is_refused(tmp_path: Path) -> None:
    write_stack(tmp_path / "sub.mrc", 8, (16, 16))
    write_stack(tmp_path / "s.mrcs", 2, (16, 16))
    star = _star(tmp_path / "run.star", ["sub.mrc", "000001@s.mrcs"])
    with pytest.raises(StarFormatError, match="holds 8 sections"):
        pp.open_particles(star=star)


def test_subtomograms_of_different_boxes_are_refused(tmp_path: Path) -> None:
    write_stack(tmp_path / "a.mrc", 8, (16, 16))
    write_stack(tmp_path / "b.mrc", 6, (16, 16))
    with pytest.raises(FormatError, match="share their box"):
        pp.open_particles(star=_star(tmp_path / "run.star", ["a.mrc", "b.mrc"]))
