"""bzip2/gzip TIFF movies read through a cached seek index: every frame equals tifffile on the decompressed bytes,
locally and over HTTP, where a frame read after opening moves only some of the compressed file."""

from __future__ import annotations

import bz2
import gzip
import io
from pathlib import Path

import numpy as np
import pytest
import tifffile

from perc_platform import open_particles
from perc_platform.errors import FormatError, TruncatedFileError
from perc_platform.io import StackArray, format_for, open_image_file
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer

COMPRESS = {".bz2": lambda b: bz2.compress(b, compresslevel=1), ".gz": lambda b: gzip.compress(b, compresslevel=1)}


def _movie(tmp_path: Path, name: str, frames: int = 6, shape: tuple[int, int] = (70, 90), **tiff: object) -> Path:
    rng = np.random.default_rng(7)
    bits = int(tiff.pop("bitspersample", 16))  # type: ignore[call-overload]
    data = rng.integers(0, 2**bits, (frames, *shape)).astype(np.uint8 if bits <= 8 else np.uint16)
    buffer = io.BytesIO()
    extra = {"bitspersample": bits} if bits < 8 else {}
    tifffile.imwrite(buffer, data, photometric="minisblack", **extra, **tiff)  # type: ignore[arg-type]
    (tmp_path / "plain.tif").write_bytes(buffer.getvalue())  # the reference, read by tifffile
    path = tmp_path / name
    path.write_bytes(COMPRESS["." + name.rsplit(".", 1)[1]](buffer.getvalue()))
    return path


@pytest.mark.parametrize("name", ["movie.tif.bz2", "movie.tiff.gz"])
@pytest.mark.parametrize("tiff", [{"compression": "lzw", "rowsperstrip": 16}, {"tile": (32, 48)},
                                  {"bitspersample": 4}, {"compression": "zlib", "predictor": True}],
                         ids=["lzw-strips", "tiles", "4bit", "zlib-predictor"])
def test_frames_equal_tifffile_on_the_decompressed_bytes(tmp_path: Path, isolated_cache: Path, name: str,
                                                         tiff: dict[str, object]) -> None:
    path = _movie(tmp_path, name, **dict(tiff))
    fmt = format_for(str(path))
    assert fmt is not None and fmt.name == "tiff-compressed"
    array = StackArray([open_image_file(str(path))])
    reference = tmp_path / "plain.tif"
    for frame in range(6):
        np.testing.assert_array_equal(array[frame], tifffile.imread(reference, key=frame))
    np.testing.assert_array_equal(array[np.array([5, 1, 1])], tifffile.imread(reference)[[5, 1, 1]])
    cached = [p for p in isolated_cache.rglob("*") if p.is_file() and p.suffix in (".gzidx", ".bz2idx")]
    assert len(cached) == 1  # the index is kept (and the IFDs' facts beside it), not a decompressed copy
    assert [p.name.endswith(".ifds.npz") for p in isolated_cache.rglob("*.npz")] == [True]
    assert not [p for p in isolated_cache.rglob("*.tif") if p.is_file()]


def test_remote_frame_reads_only_some_blocks(tmp_path: Path, isolated_cache: Path,
                                             server_factory: type[LoopbackServer]) -> None:
    # 80 frames of 256 x 256 uint16 noise: 10 MB of TIFF, about 100 bzip2 blocks at level 1, fetched over HTTP
    # in the ranged reader's 1 MiB blocks
    path = _movie(tmp_path, "movie.tif.bz2", frames=80, shape=(256, 256))
    server = server_factory(tmp_path)
    grant_host(server.url)
    images = open_particles(f"{server.url}/{path.name}")
    assert images.dims == ("particle", "y", "x") and images.shape == (80, 256, 256)
    first_open = server.bytes_sent  # the index scan, then the IFDs parsed through it
    server.reset_counts()
    again = open_particles(f"{server.url}/{path.name}")  # index and IFD facts from the cache
    assert again.shape == images.shape and server.bytes_sent < 1024 < first_open
    server.reset_counts()
    np.testing.assert_array_equal(images[17].values, tifffile.imread(tmp_path / "plain.tif", key=17))
    assert 0 < server.bytes_sent < path.stat().st_size / 4  # a few blocks, not the file
    np.testing.assert_array_equal(images.values, tifffile.imread(tmp_path / "plain.tif"))


def test_damaged_compressed_tiffs_fail_clearly(tmp_path: Path, isolated_cache: Path) -> None:
    path = _movie(tmp_path, "movie.tif.bz2")
    cut = tmp_path / "cut.tif.bz2"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((FormatError, TruncatedFileError), match=r"cut\.tif\.bz2"):
        StackArray([open_image_file(str(cut))])[5]
    junk = tmp_path / "junk.tiff.gz"
    junk.write_bytes(gzip.compress(b"not a tiff at all" * 20))
    with pytest.raises(FormatError, match=r"junk\.tiff\.gz: not a readable TIFF"):
        open_image_file(str(junk))
    assert not [p for p in isolated_cache.rglob("junk*") if p.suffix == ".gzidx"]  # no index kept for it
