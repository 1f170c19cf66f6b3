"""Every remote read passes the network policy: ranged reads, fsspec paths, the Range-ignored fallback, STAR
files and the stacks they name, redirects. A second loopback listener (``foreign``) stands for a host
nobody allowed; it must receive nothing. Also: Retry-After and 410 on ranged reads."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.errors import DataNotFoundError, NetworkPolicyError, RemoteError
from perc_platform.io.star import read_star
from perc_platform.storage import file_size, local_copy, read_bytes
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer, Response, write_stack, write_star
from tests.storage.conftest import settled_count

N, BOX = 12, 16


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_stack(tmp_path / "x.mrcs", N, (BOX, BOX), seed=3)
    write_star(tmp_path / "p.star", "x.mrcs", N, seed=3)
    return tmp_path


def _values(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data)


def _redirect(home: LoopbackServer, path: str, to: str, status: int = 302) -> None:
    home.add_route(path, lambda p, q: Response(b"", status, {"Location": to}))


@pytest.fixture
def home(folder: Path, server_factory) -> LoopbackServer:
    """The allowed server (the user's own), serving the stack and its STAR file."""
    srv = server_factory(folder)
    grant_host(srv.url)
    return srv


def test_ranged_read_redirected_to_a_foreign_host_is_refused(home: LoopbackServer, foreign: LoopbackServer) -> None:
    _redirect(home, "/moved.mrcs", f"{foreign.url}/x.mrcs")
    with pytest.raises(NetworkPolicyError, match=f"{foreign.url.split('://')[1]}.*PERC_EXTRA_HOSTS"):
        read_bytes(f"{home.url}/moved.mrcs", 0, 1024)
    assert settled_count(home, "/moved.mrcs") == 1  # asked once: a refusal is not retried


def test_ranged_read_follows_a_redirect_inside_the_policy(home: LoopbackServer, folder: Path,
                                                          server_factory) -> None:
    other = server_factory(folder)
    grant_host(other.url)
    _redirect(home, "/moved.mrcs", f"{other.url}/x.mrcs", status=301)
    images = pp.open_particles(f"{home.url}/moved.mrcs")
    np.testing.assert_array_equal(images.values, _values(folder / "x.mrcs"))
    assert other.count(pattern="/x.mrcs") >= 2


def test_fsspec_read_with_storage_options_does_not_follow_a_foreign_redirect(
        home: LoopbackServer, foreign: LoopbackServer) -> None:
    _redirect(home, "/moved.mrcs", f"{foreign.url}/x.mrcs")
    with pytest.raises(NetworkPolicyError, match=foreign.url.split("://")[1]):
        pp.open_particles(f"{home.url}/moved.mrcs", storage_options={"headers": {"X-Lab": "1"}})
    with pytest.raises(NetworkPolicyError, match=foreign.url.split("://")[1]):  # HEAD (size) as well as GET
        file_size(f"{home.url}/moved.mrcs", storage_options={"headers": {"X-Lab": "1"}})
    with pytest.raises(NetworkPolicyError, match=foreign.url.split("://")[1]):  # the http layer of a chain
        pp.open_particles(f"simplecache::{home.url}/moved.mrcs")


def test_range_ignored_fallback_does_not_follow_a_foreign_redirect(home: LoopbackServer, folder: Path,
                                                                   foreign: LoopbackServer) -> None:
    body = (folder / "x.mrcs").read_bytes()
    answers = iter([Response(body, 200)])  # the first answer ignores Range; the download is then redirected
    home.add_route("/ignores.mrcs", lambda p, q: next(answers, Response(b"", 302,
                                                                        {"Location": f"{foreign.url}/x.mrcs"})))
    with pytest.warns(pp.errors.RangeNotSupportedWarning), pytest.raises(NetworkPolicyError, match="redirect"):
        pp.open_particles(f"{home.url}/ignores.mrcs")
    with pytest.raises(NetworkPolicyError):
        local_copy(f"{home.url}/ignores.mrcs")


def test_star_file_naming_a_stack_on_a_foreign_host_is_refused(home: LoopbackServer, folder: Path,
                                                               foreign: LoopbackServer) -> None:
    write_star(folder / "foreign.star", f"{foreign.url}/x.mrcs", N)
    with pytest.raises(NetworkPolicyError, match=r"stack .* named in .*foreign\.star"):
        pp.open_particles(star=f"{home.url}/foreign.star")
    write_star(folder / "local.star", str(folder / "x.mrcs"), N)  # a remote STAR may not name local files
    with pytest.raises(NetworkPolicyError, match="local file"):
        pp.open_particles(star=f"{home.url}/local.star")


def test_star_file_redirected_to_a_foreign_host_is_refused(home: LoopbackServer, foreign: LoopbackServer) -> None:
    _redirect(home, "/moved.star", f"{foreign.url}/p.star")
    with pytest.raises(NetworkPolicyError, match=foreign.url.split("://")[1]):
        read_star(f"{home.url}/moved.star")


def test_star_and_stack_on_an_allowed_host_still_read(home: LoopbackServer, folder: Path) -> None:
    images = pp.open_particles(star=f"{home.url}/p.star")
    np.testing.assert_array_equal(images.values, _values(folder / "x.mrcs"))


def test_unallowed_host_is_refused_before_any_request(folder: Path, foreign: LoopbackServer) -> None:
    # (a URL the caller passes to open_particles itself is theirs to read: tests/storage/test_caller_urls.py)
    for call in (lambda: read_bytes(f"{foreign.url}/x.mrcs", 0, 1024),
                 lambda: read_bytes(f"{foreign.url}/x.mrcs", 0, 1024, storage_options={"headers": {}}),
                 lambda: read_bytes(f"simplecache::{foreign.url}/x.mrcs", 0, 1024),
                 lambda: file_size(f"{foreign.url}/x.mrcs"),
                 lambda: read_star(f"{foreign.url}/p.star")):
        with pytest.raises(NetworkPolicyError, match="PERC_EXTRA_HOSTS"):
            call()


def test_ranged_reads_honour_retry_after(home: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
                                         folder: Path) -> None:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    home.add_fault("/x.mrcs", status=503, headers={"Retry-After": "1"}, times=1)
    started = time.monotonic()
    assert read_bytes(f"{home.url}/x.mrcs", 0, 100) == (folder / "x.mrcs").read_bytes()[:100]
    assert time.monotonic() - started >= 0.9  # waited what the server asked, not the 0.01 s backoff
    assert settled_count(home, "/x.mrcs", expected=2) == 2


def test_retry_after_beyond_the_cap_is_reported(home: LoopbackServer) -> None:
    home.add_fault("/x.mrcs", status=429, headers={"Retry-After": "3600"}, times=1)
    with pytest.raises(RemoteError, match="retry after 3600 s"):
        read_bytes(f"{home.url}/x.mrcs", 0, 100)


@pytest.mark.parametrize("options", [None, {"headers": {"X-Lab": "1"}}], ids=["plain", "fsspec"])
@pytest.mark.parametrize("status", [410, 403])
def test_gone_and_forbidden_are_not_retried(home: LoopbackServer, options: dict | None, status: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    home.add_fault("/x.mrcs", status=status, times=None)
    expected = DataNotFoundError if status == 410 else RemoteError
    with pytest.raises(expected, match=str(status) if status != 410 or options else "x.mrcs"):
        read_bytes(f"{home.url}/x.mrcs", 0, 100, storage_options=options)
    time.sleep(0.05)
    assert home.count(pattern="/x.mrcs") == 1


def test_file_url_stacks_read_correctly(folder: Path) -> None:
    images = pp.open_particles(f"file://{folder / 'x.mrcs'}")
    np.testing.assert_array_equal(images.values, _values(folder / "x.mrcs"))
    assert images.attrs["stack_files"] == [str(folder / "x.mrcs")]
    with open(folder / "x.mrcs", "rb") as raw, gzip.open(folder / "x.mrcs.gz", "wb") as packed:
        packed.write(raw.read())
    squeezed = pp.open_particles(f"file://{folder / 'x.mrcs.gz'}")
    np.testing.assert_array_equal(squeezed.values, _values(folder / "x.mrcs"))
    volume = pp.open_volume(f"file://{folder / 'x.mrcs'}")
    np.testing.assert_array_equal(volume.values, _values(folder / "x.mrcs"))


def test_simplecache_chained_urls_read_correctly(home: LoopbackServer, folder: Path, tmp_path: Path) -> None:
    options = {"simplecache": {"cache_storage": str(tmp_path / "fsspec-cache")}}
    for url in [f"simplecache::{home.url}/x.mrcs", f"simplecache::file://{folder / 'x.mrcs'}"]:
        images = pp.open_particles(url, storage_options=options)
        np.testing.assert_array_equal(images.values, _values(folder / "x.mrcs"))
    star = pp.open_particles(star=f"simplecache::{home.url}/p.star", storage_options=options)
    np.testing.assert_array_equal(star.values, _values(folder / "x.mrcs"))
