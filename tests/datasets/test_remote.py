"""Stacks over real HTTP on 127.0.0.1: header-only opening, byte-exact random reads, Range ignored."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import perc_platform as pp
from perc_platform.datasets import select_particles
from perc_platform.errors import DataNotFoundError, RangeNotSupportedWarning
from perc_platform.storage.policy import grant_host
from perc_platform.testing import write_stack
from tests.io.mrc_helpers import mrcfile_read

N, BOX = 4000, 32
IMAGE_BYTES = BOX * BOX * 4


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote")
    write_stack(folder / "big.mrcs", N, (BOX, BOX), seed=3)
    return folder


def test_opening_reads_only_the_header(stack_dir: Path, server_factory) -> None:
    srv = server_factory(stack_dir)
    grant_host(srv.url)
    images = pp.open_particles(f"{srv.url}/big.mrcs")
    assert images.shape == (N, BOX, BOX)
    gets = [r for r in srv.requests if r.method == "GET"]
    assert len(gets) == 1 and gets[0].range == "bytes=0-1023"
    assert srv.bytes_sent == 1024


@pytest.mark.parametrize("how", ["select_particles", "engine"])
def test_one_percent_at_random_moves_about_those_bytes(stack_dir: Path, server_factory, how: str) -> None:
    srv = server_factory(stack_dir)
    grant_host(srv.url)
    rng = np.random.default_rng(7)
    picks = rng.choice(N, N // 100, replace=False)
    if how == "select_particles":
        images = pp.open_particles(f"{srv.url}/big.mrcs")
        header_bytes = srv.bytes_sent
        values = select_particles(images, picks).values
    else:
        ds = xr.open_dataset(f"{srv.url}/big.mrcs", engine="mrc")
        header_bytes = srv.bytes_sent
        values = ds["image"][picks].values
    moved = srv.bytes_sent - header_bytes
    needed = picks.size * IMAGE_BYTES
    assert moved <= 1.1 * needed, f"moved {moved / needed:.2f}x the bytes of the particles read"
    np.testing.assert_array_equal(values, mrcfile_read(stack_dir / "big.mrcs")[picks])


def test_sequential_chunks_over_http(stack_dir: Path, server_factory) -> None:
    srv = server_factory(stack_dir)
    grant_host(srv.url)
    images = pp.open_particles(f"{srv.url}/big.mrcs", chunk_size=500)
    np.testing.assert_array_equal(images.values, mrcfile_read(stack_dir / "big.mrcs"))
    ranged = [r for r in srv.requests if r.method == "GET" and r.status == 206]
    assert len(ranged) == 1 + 8  # header + one ranged request per chunk


def test_server_ignoring_range_still_gives_the_right_values(stack_dir: Path, server_factory,
                                                            isolated_cache: Path) -> None:
    srv = server_factory(stack_dir, ignore_range=True)
    grant_host(srv.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = pp.open_particles(f"{srv.url}/big.mrcs", chunk_size=700)
        values = images[::13].values
    np.testing.assert_array_equal(values, mrcfile_read(stack_dir / "big.mrcs")[::13])
    assert any(issubclass(w.category, RangeNotSupportedWarning) for w in caught)
    cached = [p for p in isolated_cache.rglob("big.mrcs")]
    assert len(cached) == 1 and cached[0].stat().st_size == (stack_dir / "big.mrcs").stat().st_size
    full_downloads = [r for r in srv.requests if r.method == "GET" and r.status == 200]
    assert len(full_downloads) <= 2  # the header probe and the one cached copy, not one per chunk


def test_http_404_names_the_url(server_factory, tmp_path: Path) -> None:
    srv = server_factory(tmp_path)
    grant_host(srv.url)
    with pytest.raises(DataNotFoundError, match="missing.mrcs"):
        pp.open_particles(f"{srv.url}/missing.mrcs")


def test_remote_star_and_stack(shared: Path, server_factory) -> None:
    srv = server_factory(shared / "particles")
    grant_host(srv.url)
    images = pp.open_particles(star=f"{srv.url}/relion31.star")
    assert images.attrs["pixel_size"] == pytest.approx(2.806)
    np.testing.assert_array_equal(images.values, mrcfile_read(shared / "particles" / "relion31.mrcs"))


def test_cached_copy_is_verified_and_never_partial(stack_dir: Path, server_factory, isolated_cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from perc_platform.errors import RemoteError
    from perc_platform.storage import local_copy

    monkeypatch.setenv("PERC_RETRIES", "1")
    monkeypatch.setenv("PERC_BACKOFF", "0")
    srv = server_factory(stack_dir)
    grant_host(srv.url)
    srv.add_fault("/big.mrcs", kind="drop", times=None)  # every body is cut in half
    with pytest.raises(RemoteError, match="big.mrcs"):
        local_copy(f"{srv.url}/big.mrcs")
    assert not [p for p in isolated_cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    srv.faults.clear()
    copy = local_copy(f"{srv.url}/big.mrcs")
    assert copy.read_bytes() == (stack_dir / "big.mrcs").read_bytes()
