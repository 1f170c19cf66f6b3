"""bzip2/gzip MRC stacks read lazily through a cached seek index: values equal mrcfile, nothing decompressed whole."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from perc_platform import open_particles
from perc_platform.errors import FormatError, TruncatedFileError
from perc_platform.io import open_image_file, write_stack
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer

OPENERS = {".bz2": bz2.open, ".gz": gzip.open}


def _compressed(tmp_path: Path, suffix: str, n: int = 30) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(2)
    data = (rng.standard_normal((n, 64, 64)) * 40).astype(np.int16)  # 8 KiB a frame: bz2 makes several blocks
    plain = write_stack(tmp_path / "movie.mrc", data, pixel_size=0.83)
    target = tmp_path / f"movie.mrc{suffix}"
    with open(plain, "rb") as src, OPENERS[suffix](target, "wb", compresslevel=1) as dst:
        dst.write(src.read())
    plain.unlink()
    return target, data


@pytest.mark.parametrize("suffix", [".bz2", ".gz"])
def test_frames_equal_mrcfile_and_only_an_index_is_cached(tmp_path: Path, isolated_cache: Path, suffix: str) -> None:
    path, data = _compressed(tmp_path, suffix)
    with mrcfile.open(_decompress(path, suffix, tmp_path)) as mrc:
        np.testing.assert_array_equal(mrc.data, data)  # the reference: mrcfile on the decompressed bytes
    images = open_particles(path)
    assert images.shape == (30, 64, 64) and images.attrs["pixel_size"] == pytest.approx(0.83)
    np.testing.assert_array_equal(images[[29, 3, 4, 20]].values, data[[29, 3, 4, 20]])
    np.testing.assert_array_equal(images.values, data)
    (tmp_path / "reference.mrc").unlink()
    assert not [p for p in isolated_cache.rglob("*.mrc") if p.is_file()]  # no decompressed copy
    cached = [p for p in isolated_cache.rglob("*") if p.is_file() and p.suffix in (".gzidx", ".bz2idx")]
    assert len(cached) == 1 and cached[0].stat().st_size < path.stat().st_size / 4  # an index, not the data
    stamp = cached[0].stat().st_mtime_ns
    np.testing.assert_array_equal(open_particles(path)[7].values, data[7])
    assert cached[0].stat().st_mtime_ns == stamp  # reused


def _decompress(path: Path, suffix: str, tmp_path: Path) -> Path:
    out = tmp_path / "reference.mrc"
    out.write_bytes(OPENERS[suffix](path, "rb").read())
    return out


def test_remote_compressed_stack(tmp_path: Path, server_factory: type[LoopbackServer]) -> None:
    path, data = _compressed(tmp_path, ".bz2")
    server = server_factory(tmp_path)
    grant_host(server.url)
    images = open_particles(f"{server.url}/{path.name}")
    np.testing.assert_array_equal(images[[2, 25]].values, data[[2, 25]])


def test_damaged_and_truncated_files_fail_clearly(tmp_path: Path, isolated_cache: Path) -> None:
    path, _ = _compressed(tmp_path, ".gz")
    cut = tmp_path / "cut.mrc.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((FormatError, TruncatedFileError), match="cut.mrc.gz"):
        open_image_file(str(cut))
    junk = tmp_path / "junk.mrc.bz2"
    junk.write_bytes(b"BZh9" + bytes(200))
    with pytest.raises(FormatError, match="junk.mrc.bz2"):
        open_image_file(str(junk))
    assert not [p for p in isolated_cache.rglob("*") if p.is_file() and p.suffix in (".gzidx", ".bz2idx")]
