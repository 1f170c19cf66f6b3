"""The ``movies`` catalog driver and ``perc movies``: TIFF movies with an mdoc and a gain, read lazily."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import tifffile

import perc_platform as pp
from perc_platform.cli.main import main


def _movies(tmp_path: Path) -> np.ndarray:
    data = np.random.default_rng(9).integers(0, 8, (2, 4, 12, 10)).astype(np.uint8)
    for i in range(2):
        tifffile.imwrite(tmp_path / f"m_{i}.tif", data[i], photometric="minisblack", compression="lzw")
        (tmp_path / f"m_{i}.tif.mdoc").write_text("PixelSpacing = 1.05\n\n[FrameSet = 0]\nExposureDose = 8\n")
    tifffile.imwrite(tmp_path / "gain.tif", np.full((12, 10), 2.0, np.float32), photometric="minisblack")
    return data


def test_catalog_entry_and_cli(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = _movies(tmp_path)
    (tmp_path / "movies.yaml").write_text("""
sources:
  raw:
    driver: movies
    args: {urlpath: "{{ CATALOG_DIR }}/m_*.tif", gain: "{{ CATALOG_DIR }}/gain.tif"}
""")
    movies = pp.open_catalog(str(tmp_path / "movies.yaml")).raw.to_dask()["image"]
    assert movies.dims == ("movie", "frame", "y", "x") and movies.attrs["dose_per_frame"] == 2.0
    np.testing.assert_array_equal(movies.values, 2.0 * data)
    out = tmp_path / "sums.mrcs"
    assert main(["movies", "sum", str(tmp_path / "m_*.tif"), "--out", str(out)]) == 0
    assert '"pixel_size": 1.05' in capsys.readouterr().out
    with mrcfile.open(out) as mrc:
        np.testing.assert_array_equal(mrc.data, data.sum(axis=1, dtype=np.float32))
