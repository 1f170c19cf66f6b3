"""TIFF through the format layer: frame by frame equal to tifffile, locally and over HTTP, every compression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr

from perc_platform import open_particles
from perc_platform.errors import FormatError, TruncatedFileError
from perc_platform.io import StackArray, format_for, open_image_file
from perc_platform.storage._http_ranges import GAP_BUDGET
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer

FRAMES, NY, NX = 5, 70, 90  # 70 x 90 is not a multiple of the strips or tiles: edges are cut


def _movie(dtype: str, bits: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if bits is not None:
        return rng.integers(0, 2**bits, (FRAMES, NY, NX)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal((FRAMES, NY, NX)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (FRAMES, NY, NX), endpoint=True).astype(dtype)


CASES = [
    pytest.param(dtype, compression, predictor, tile, byteorder,
                 id=f"{dtype}-{compression or 'none'}-{'pred' if predictor else 'nopred'}-"
                    f"{'tiles' if tile else 'strips'}-{'BE' if byteorder == '>' else 'LE'}")
    for dtype in ("uint8", "uint16", "float32", "int8")
    for compression in (None, "lzw", "zlib", "zstd")
    for predictor in (False, True)
    for tile in (None, (32, 48))
    for byteorder in ("<", ">")
    if not (predictor and (compression is None or dtype == "int8"))
    and not (byteorder == ">" and (tile is not None or dtype == "int8"))
]


def _write(path: Path, data: np.ndarray, compression: str | None, predictor: bool, tile: tuple[int, int] | None,
           byteorder: str = "<", **kwargs: object) -> Path:
    layout: dict[str, object] = {"tile": tile} if tile else {"rowsperstrip": 16}
    tifffile.imwrite(path, data, photometric="minisblack", compression=compression, predictor=predictor or None,
                     byteorder=byteorder, **layout, **kwargs)
    return path


@pytest.mark.parametrize(("dtype", "compression", "predictor", "tile", "byteorder"), CASES)
def test_every_compression_and_layout_equals_tifffile_frame_by_frame(tmp_path: Path, dtype: str,
                                                                     compression: str | None, predictor: bool,
                                                                     tile: tuple[int, int] | None,
                                                                     byteorder: str) -> None:
    path = _write(tmp_path / "movie.tif", _movie(dtype), compression, predictor, tile, byteorder)
    array = StackArray([open_image_file(str(path))])
    assert array.shape == (FRAMES, NY, NX)
    for frame in range(FRAMES):
        expected = tifffile.imread(path, key=frame)
        got = array[frame]
        assert got.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(array[np.array([4, 1, 1, 3])], tifffile.imread(path)[[4, 1, 1, 3]])


@pytest.mark.parametrize("bits", [4, 8])
def test_counting_mode_4_and_8_bit_equal_tifffile(tmp_path: Path, bits: int) -> None:
    # Counting-mode K2/K3 movies store counts in 4 (packed two per byte, TIFF bit order) or 8 bits.
    data = _movie("uint8", bits=bits)
    path = tmp_path / "counts.tif"
    tifffile.imwrite(path, data, photometric="minisblack", bitspersample=bits)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].bitspersample == bits
        stored = int(np.sum(tif.pages[0].databytecounts))
    assert stored == NY * ((NX * bits + 7) // 8)  # really packed on disk
    array = StackArray([open_image_file(str(path))])
    for frame in range(FRAMES):
        np.testing.assert_array_equal(array[frame], tifffile.imread(path, key=frame))
    np.testing.assert_array_equal(array[:], data)


def test_frames_over_http_move_only_their_strips(tmp_path: Path, server_factory: type[LoopbackServer]) -> None:
    path = _write(tmp_path / "movie.tif", _movie("uint16"), "lzw", True, None)
    with tifffile.TiffFile(path) as tif:
        needed = {i: int(np.sum(p.databytecounts)) for i, p in enumerate(tif.pages)}
    server = server_factory(tmp_path)
    grant_host(server.url)
    images = open_particles(f"{server.url}/movie.tif")
    assert images.dims == ("particle", "y", "x") and images.dtype == np.uint16
    server.reset_counts()
    np.testing.assert_array_equal(images[3].values, tifffile.imread(path, key=3))
    assert server.bytes_sent == needed[3]
    server.reset_counts()
    np.testing.assert_array_equal(images.values, tifffile.imread(path))
    # every frame at once: the small gaps between frames' strips (IFDs) may be read through, within the budget
    assert sum(needed.values()) <= server.bytes_sent <= (1 + GAP_BUDGET) * sum(needed.values())


def test_xarray_engine_and_format_table(tmp_path: Path) -> None:
    path = _write(tmp_path / "mic.tiff", _movie("float32")[:1], "zstd", False, (32, 32))
    ds = xr.open_dataset(path, engine="mrc")
    np.testing.assert_array_equal(ds["image"].values, tifffile.imread(path, key=0)[None])
    fmt = format_for(str(path))
    assert fmt is not None and fmt.name == "tiff"
    nameless = tmp_path / "mic.data"
    nameless.write_bytes(path.read_bytes())
    sniffed = format_for(str(nameless), nameless.read_bytes()[:1024])
    assert sniffed is not None and sniffed.name == "tiff"  # by magic bytes
    assert open_image_file(str(nameless)).format == "tiff"


def test_bad_tiffs_fail_clearly(tmp_path: Path) -> None:
    path = _write(tmp_path / "movie.tif", _movie("uint8"), "zlib", False, None)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((TruncatedFileError, FormatError), match="cut.tif"):
        StackArray([open_image_file(str(cut))])[FRAMES - 1]
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(FormatError, match="samples per pixel"):
        open_image_file(str(rgb))
    jpeg = tmp_path / "j.tif"
    tifffile.imwrite(jpeg, np.zeros((16, 16), np.uint8), compression="jpeg")
    with pytest.raises(FormatError, match="compression.*not read lazily"):
        open_image_file(str(jpeg))
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(FormatError, match="junk.tif"):
        open_image_file(str(junk))
    eer = tmp_path / "movie.eer"
    eer.write_bytes(b"II*\x00")
    with pytest.raises(FormatError, match=r"movie\.eer: not a readable EER"):  # read now, so a junk one fails
        open_image_file(str(eer))
