"""Bad input gives a perc_platform error that names the input; nothing is left behind in the cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import intake
import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.catalogs import catalog_path
from perc_platform.errors import (
    DataNotFoundError,
    MrcFormatError,
    ParameterError,
    PercError,
    TruncatedFileError,
    UnsupportedModeError,
)
from perc_platform.storage.policy import grant_host
from perc_platform.testing import write_stack


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_stack(tmp_path / "good.mrcs", 10, (16, 16))


def test_truncated_header(tmp_path: Path, good: Path) -> None:
    bad = tmp_path / "cut.mrcs"
    bad.write_bytes(good.read_bytes()[:500])
    with pytest.raises(TruncatedFileError, match="cut.mrcs"):
        pp.open_particles(bad)


def test_header_size_mismatch(tmp_path: Path, good: Path) -> None:
    bad = tmp_path / "short.mrcs"
    bad.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(TruncatedFileError, match=r"short\.mrcs.*truncated"):
        pp.open_particles(bad)


def test_not_an_mrc_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mrc"
    bad.write_bytes(b"hello, this is a text file\n" * 100)
    with pytest.raises(MrcFormatError, match="notes.mrc"):
        pp.open_volume(bad)


def test_unsupported_mode(tmp_path: Path) -> None:
    path = tmp_path / "complex.mrc"
    with mrcfile.new(path, data=np.zeros((2, 4, 4), np.complex64)):
        pass
    with pytest.raises(UnsupportedModeError, match=r"complex\.mrc.*mode 4"):
        pp.open_volume(path)


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="absent.mrc"):
        pp.open_volume(tmp_path / "absent.mrc")
    with pytest.raises(FileNotFoundError):  # also the builtin a caller may catch
        pp.open_volume(tmp_path / "absent.mrc")


def test_missing_remote_file(server_factory, tmp_path: Path) -> None:
    srv = server_factory(tmp_path)
    grant_host(srv.url)
    with pytest.raises(DataNotFoundError, match="absent.mrc"):
        pp.open_volume(f"{srv.url}/absent.mrc")


def test_bad_catalog_parameter(good: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cat = intake.open_catalog(str(catalog_path()))
        entry = cat.local_particles
    with pytest.raises(ParameterError, match="chunk_size"):
        entry(urlpath=str(good), chunk_size="many")
    with pytest.raises(ParameterError, match="colour"):
        entry(urlpath=str(good), colour="blue")


def test_empty_catalog_path_is_a_clear_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cat = intake.open_catalog(str(catalog_path()))
        with pytest.raises(ParameterError, match="no MRC file given"):
            cat.local_map().to_dask()


def test_bad_input_leaves_no_partial_file(tmp_path: Path, isolated_cache: Path) -> None:
    import gzip

    bad = tmp_path / "broken.map.gz"
    bad.write_bytes(gzip.compress(b"x" * 5000)[:-20])  # truncated gzip stream
    with pytest.raises(PercError, match="broken.map.gz"):
        pp.open_volume(bad)
    assert [p for p in isolated_cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")] == []
