"""Both HTTP clients honour the environment's proxy (http_proxy / no_proxy), through a real loopback proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import perc_platform
from perc_platform.storage import read_bytes, read_ranges_into
from perc_platform.storage.policy import grant_host
from perc_platform.testing.proxy import LoopbackProxy
from tests.io.mrc_helpers import mrcfile_read


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackProxy]:
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with LoopbackProxy() as running:
        monkeypatch.setenv("http_proxy", running.url)
        yield running


def test_ranged_reads_and_a_lazy_stack_go_through_the_proxy(shared: Path, server_factory,  # type: ignore[no-untyped-def]
                                                             proxy: LoopbackProxy) -> None:
    folder = shared / "particles"
    srv = server_factory(folder)
    grant_host(srv.url)
    url = f"{srv.url}/relion31.mrcs"
    raw = (folder / "relion31.mrcs").read_bytes()
    assert read_bytes(url, 1000, 24) == raw[1000:1024]
    buffers = [np.empty(10, np.uint8), np.empty(7, np.uint8)]
    assert read_ranges_into(url, [(5, 10), (3000, 7)], buffers) == [10, 7]
    assert buffers[0].tobytes() == raw[5:15] and buffers[1].tobytes() == raw[3000:3007]
    images = perc_platform.open_particles(url)
    np.testing.assert_array_equal(images[[0, 3]].values, mrcfile_read(folder / "relion31.mrcs")[[0, 3]])
    relayed = [u for _, u, _ in proxy.requests]
    assert relayed and all(u == url for u in relayed)  # absolute URLs on the request line: via the proxy
    assert "bytes=1000-1023" in [r for _, _, r in proxy.requests]
    assert srv.count() == len(proxy.requests)  # every request the server saw came through the proxy


def test_fsspec_reads_with_storage_options_go_through_it_too(shared: Path, server_factory,  # type: ignore[no-untyped-def]
                                                              proxy: LoopbackProxy) -> None:
    srv = server_factory(shared / "particles")
    grant_host(srv.url)
    url = f"{srv.url}/relion31.mrcs"
    raw = (shared / "particles" / "relion31.mrcs").read_bytes()
    assert read_bytes(url, 2000, 16, {"headers": {"X-Lab": "perc"}}) == raw[2000:2016]  # fsspec's HTTP
    assert proxy.requests and all(u == url for _, u, _ in proxy.requests)
    assert srv.count() == len(proxy.requests)


def test_no_proxy_bypasses_it(shared: Path, server_factory, proxy: LoopbackProxy,  # type: ignore[no-untyped-def]
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    srv = server_factory(shared / "particles")
    grant_host(srv.url)
    assert read_bytes(f"{srv.url}/relion31.mrcs", 0, 4) == (shared / "particles" / "relion31.mrcs").read_bytes()[:4]
    assert proxy.requests == [] and srv.count("GET") == 1


def test_the_archive_client_goes_through_the_proxy(shared: Path, isolated_cache: Path,
                                                   proxy: LoopbackProxy) -> None:
    from perc_platform import archives
    from perc_platform.testing.archive import archive_server

    with archive_server(shared) as server:
        path = archives.fetch_pdb_file("1AKI")
        assert path.read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()
        assert any(u.startswith(server.url) and u.endswith("1AKI.cif") for _, u, _ in proxy.requests)


def test_the_demo_reaches_its_loopback_archive_directly_behind_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from perc_platform._environ import environment
    from perc_platform.demo._run import loopback_direct
    from perc_platform.storage._http_connect import proxy_for

    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "example.org")
    assert proxy_for("http://127.0.0.1:8000/x") == "proxy.invalid:3128"  # what a user behind a proxy has
    with environment(loopback_direct()):
        assert proxy_for("http://127.0.0.1:8000/x") is None
        assert proxy_for("http://localhost:8000/x") is None
        assert proxy_for("http://example.org/x") is None  # the user's own entries are kept
        assert proxy_for("http://files.rcsb.org/x") == "proxy.invalid:3128"
