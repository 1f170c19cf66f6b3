"""The loopback server speaks real HTTP with Range, listings and faults, and never serves outside its root."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "secret.txt").write_text("outside")
    return tmp_path / "data"


def test_binds_to_loopback_only(root: Path, server_factory) -> None:
    srv = server_factory(root)
    assert srv.url.startswith("http://127.0.0.1:")


def test_range_requests(root: Path, server_factory) -> None:
    srv = server_factory(root)
    data = (root / "blob.bin").read_bytes()
    status, body, headers = get(f"{srv.url}/blob.bin", {"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20] and headers["Content-Range"] == "bytes 10-19/1024"
    assert get(f"{srv.url}/blob.bin", {"Range": "bytes=1000-"})[1] == data[1000:]
    assert get(f"{srv.url}/blob.bin", {"Range": "bytes=-4"})[1] == data[-4:]
    assert get(f"{srv.url}/blob.bin", {"Range": "bytes=5000-6000"})[0] == 416
    status, body, _ = get(f"{srv.url}/blob.bin")
    assert status == 200 and body == data
    assert sum(r.bytes_sent for r in srv.requests if r.status in (200, 206)) == 10 + 24 + 4 + len(data)


def test_ignore_range_switch(root: Path, server_factory) -> None:
    srv = server_factory(root, ignore_range=True)
    status, body, _ = get(f"{srv.url}/blob.bin", {"Range": "bytes=10-19"})
    assert status == 200 and len(body) == 1024


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/a/../../secret.txt"])
def test_path_traversal_is_refused(root: Path, server_factory, path: str) -> None:
    srv = server_factory(root)
    connection = http.client.HTTPConnection("127.0.0.1", int(srv.url.rsplit(":", 1)[1]), timeout=5)
    connection.request("GET", path)  # sent as is, without client-side normalisation
    response = connection.getresponse()
    assert response.status in (403, 404)
    assert b"outside" not in response.read()


def test_listing_and_faults(root: Path, server_factory) -> None:
    srv = server_factory(root)
    (root / "sub").mkdir()
    status, body, _ = get(f"{srv.url}/")
    assert status == 200 and b'href="blob.bin"' in body and b'href="sub/"' in body
    srv.add_fault("/blob.bin", status=429, headers={"Retry-After": "1"}, times=1)
    status, _, headers = get(f"{srv.url}/blob.bin")
    assert status == 429 and headers["Retry-After"] == "1"
    assert get(f"{srv.url}/blob.bin")[0] == 200  # the fault fired once
    srv.add_fault("/blob.bin", kind="drop", times=1)
    with pytest.raises(http.client.IncompleteRead):
        get(f"{srv.url}/blob.bin")
    assert srv.count("GET", "/blob.bin") == 3
