"""Plain HTTP range reads straight into buffers: kept-alive connections, many ranges, odd answers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from perc_platform.errors import RemoteError
from perc_platform.storage import _http_ranges, read_bytes, read_ranges_into
from perc_platform.storage.policy import grant_host
from perc_platform.storage.ranges import read_runs_into
from perc_platform.testing import Response
from tests.storage.conftest import settled_count


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    return path


def test_many_ranges_in_one_call_fill_their_buffers(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    raw = blob.read_bytes()
    ranges = [(s, min(n, len(raw) - s)) for s, n in zip(range(0, 290_000, 9_999), range(1, 30_000, 1_000),
                                                        strict=False)]
    buffers = [np.empty(n, np.uint8) for _, n in ranges]
    assert read_ranges_into(f"{srv.url}/blob.bin", ranges, buffers) == [n for _, n in ranges]
    for (start, n), buf in zip(ranges, buffers, strict=True):
        assert buf.tobytes() == raw[start:start + n]
    covered = np.zeros(len(raw), dtype=bool)  # the union of the ranges (many overlap), byte by byte
    for start, n in ranges:
        covered[start:start + n] = True
    # overlapping ranges are sent once; gaps read through stay within the budget
    assert covered.sum() <= srv.bytes_sent <= covered.sum() + _http_ranges.GAP_BUDGET * sum(n for _, n in ranges)


def test_a_stale_kept_alive_connection_is_replaced(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    url = f"{srv.url}/blob.bin"
    assert read_bytes(url, 10, 5) == blob.read_bytes()[10:15]
    conn = _http_ranges._connections()[_http_ranges._key(url)]
    os.close(conn.sock.fileno())  # the connection dies while idle (as when a server times it out)
    conn.sock.detach()
    assert read_bytes(url, 100, 7) == blob.read_bytes()[100:107]
    assert _http_ranges._connections()[_http_ranges._key(url)] is not conn  # a fresh one


def test_whole_file_answer_is_accepted_when_it_is_what_was_asked(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent, ignore_range=True)
    grant_host(srv.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RangeNotSupportedWarning: nothing needs caching
        assert read_bytes(f"{srv.url}/blob.bin", 0, blob.stat().st_size) == blob.read_bytes()


def test_reads_past_the_end(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    size = blob.stat().st_size
    assert read_bytes(f"{srv.url}/blob.bin", size - 4, 100) == blob.read_bytes()[-4:]
    assert read_bytes(f"{srv.url}/blob.bin", size + 10, 100) == b""


def test_a_wrong_content_range_is_not_trusted(server_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_RETRIES", "1")
    monkeypatch.setenv("PERC_BACKOFF", "0")
    srv = server_factory(None)
    grant_host(srv.url)
    srv.add_route("/odd", lambda path, query: Response(b"x" * 10, 206, {"Content-Range": "bytes 0-9/100"}))
    with pytest.raises(RemoteError, match=r"asked for bytes from 50.*bytes 0-9/100"):
        read_bytes(f"{srv.url}/odd", 50, 10)


def test_ranges_coalesce_into_runs_and_gaps_within_the_budget(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    raw, url = blob.read_bytes(), f"{srv.url}/blob.bin"
    # 20 touching ranges in shuffled order, then 2 ranges with a 100-byte gap between them, then a far one
    touching = [(1000 + 500 * i, 500) for i in np.random.default_rng(1).permutation(20)]
    ranges = [*touching, (50_000, 10_000), (60_100, 10_000), (250_000, 100)]
    buffers = [np.empty(n, np.uint8) for _, n in ranges]
    srv.reset_counts()
    assert read_ranges_into(url, ranges, buffers) == [n for _, n in ranges]
    for (start, n), buf in zip(ranges, buffers, strict=True):
        assert buf.tobytes() == raw[start:start + n]
    assert settled_count(srv, "/blob.bin", expected=3) == 3  # one request per run
    assert srv.bytes_sent == sum(n for _, n in ranges) + 100  # the one gap, read through


def test_far_apart_ranges_are_asked_for_one_by_one(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    raw, url = blob.read_bytes(), f"{srv.url}/blob.bin"
    ranges = [(start, 1000) for start in range(0, 290_000, 29_000)]  # gaps of 28,000 bytes: 2,800 % of a range
    buffers = [np.empty(n, np.uint8) for _, n in ranges]
    srv.reset_counts()
    read_ranges_into(url, ranges, buffers)
    assert all(buf.tobytes() == raw[s:s + n] for (s, n), buf in zip(ranges, buffers, strict=True))
    assert settled_count(srv, "/blob.bin", expected=len(ranges)) == len(ranges)
    assert srv.bytes_sent == 1000 * len(ranges)


def test_many_runs_are_one_coalesced_read_straight_into_the_views(blob: Path, server_factory) -> None:
    srv = server_factory(blob.parent)
    grant_host(srv.url)
    raw = np.frombuffer(blob.read_bytes(), np.uint8)
    slabs = [np.empty((3, 100), np.uint8), np.empty((2, 100), np.uint8), np.empty((1, 100), np.uint8)]
    # run 1: 300 bytes at 1,000 into slab 0; run 2: 200 + 100 bytes at 200,000 into slabs 1 and 2
    runs = [(1_000, [slabs[0]]), (200_000, [slabs[1], slabs[2]])]
    for url in (str(blob), f"{srv.url}/blob.bin"):
        for slab in slabs:
            slab.fill(0)
        srv.reset_counts()
        read_runs_into(url, runs)
        np.testing.assert_array_equal(slabs[0].ravel(), raw[1_000:1_300])
        np.testing.assert_array_equal(np.concatenate([slabs[1].ravel(), slabs[2].ravel()]), raw[200_000:200_300])
    assert settled_count(srv, "/blob.bin", expected=2) == 2  # one request per run, both from one call
    assert srv.bytes_sent == 600
