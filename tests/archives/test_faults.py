"""Acceptance 3: injected faults are survived or reported clearly; killed and concurrent fetches are safe."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perc_platform import archives
from perc_platform.archives import _http
from perc_platform.errors import DataNotFoundError, NetworkPolicyError, RemoteError
from perc_platform.testing import Response
from perc_platform.testing.archive import ArchiveServer

from .conftest import cache_files, count_settled

CIF = "/rcsb/download/1AKI.cif"


def test_404_names_the_id_and_url(archive: ArchiveServer, isolated_cache: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        archives.fetch_pdb_file("9ZZZ")
    assert "PDB entry 9ZZZ" in str(info.value) and f"{archive.url}/rcsb/download/9ZZZ.cif" in str(info.value)
    assert count_settled(archive, "/rcsb/download/9ZZZ.cif") == 1  # a 404 is final, not retried
    assert cache_files(isolated_cache) == []


def test_429_with_retry_after_is_honoured(archive: ArchiveServer, shared: Path) -> None:
    archive.add_fault(CIF, status=429, headers={"Retry-After": "1"}, times=1)
    start = time.perf_counter()
    path = archives.fetch_pdb_file("1AKI")
    assert time.perf_counter() - start >= 1.0  # waited as asked, not just the 0.01 s backoff
    assert path.read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()
    assert count_settled(archive, CIF, expected=2) == 2


def test_retry_after_beyond_the_cap_is_reported_not_waited_for(archive: ArchiveServer) -> None:
    archive.add_fault(CIF, status=429, headers={"Retry-After": "3600"}, times=1)
    with pytest.raises(RemoteError, match=r"1AKI.*asked to retry after 3600 s"):
        archives.fetch_pdb_file("1AKI")


def test_500_is_retried_then_succeeds(archive: ArchiveServer, shared: Path) -> None:
    archive.add_fault(CIF, status=500, times=2)
    assert archives.fetch_pdb_file("1AKI").read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()
    assert count_settled(archive, CIF, expected=3) == 3


def test_persistent_500_is_reported_with_id_url_and_attempts(archive: ArchiveServer, isolated_cache: Path) -> None:
    archive.add_fault(CIF, status=503, times=None)
    with pytest.raises(RemoteError) as info:
        archives.fetch_pdb_file("1AKI")
    message = str(info.value)
    assert "PDB entry 1AKI" in message and f"{archive.url}{CIF}" in message and "after 4 attempt(s)" in message
    assert "HTTP 503" in message
    assert count_settled(archive, CIF, expected=4) == 4  # 1 + PERC_RETRIES=3, bounded
    assert count_settled(archive, CIF) == 4
    assert cache_files(isolated_cache) == []


def test_connection_dropped_mid_body_is_retried(archive: ArchiveServer, shared: Path) -> None:
    archive.add_fault(CIF, kind="drop", times=1)
    path = archives.fetch_pdb_file("1AKI")
    assert path.read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()
    count_settled(archive, CIF, expected=2)
    dropped = [r for r in archive.requests if r.path == CIF]
    assert len(dropped) == 2 and dropped[0].bytes_sent < dropped[1].bytes_sent


def test_connection_always_dropped_leaves_nothing(archive: ArchiveServer, isolated_cache: Path) -> None:
    archive.add_fault("/emdb/files/*", kind="drop", times=None)
    with pytest.raises(RemoteError, match=r"EMD-5168 map .*dropped mid-body"):
        archives.fetch_emdb_map("EMD-5168")
    assert cache_files(isolated_cache) == []


def test_slow_answer_times_out_then_retry_succeeds(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch,
                                                  shared: Path) -> None:
    monkeypatch.setenv("PERC_READ_TIMEOUT", "0.3")
    archive.add_fault(CIF, kind="slow", delay=1.0, times=1)
    assert archives.fetch_pdb_file("1AKI").read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()


def test_slow_answer_every_time_is_reported(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_READ_TIMEOUT", "0.2")
    monkeypatch.setenv("PERC_RETRIES", "1")
    archive.add_fault("/pdbe/api/*", kind="slow", delay=0.5, times=None)
    with pytest.raises(RemoteError, match=r"PDBe best_structures for P07550 .* after 2 attempt\(s\).*timed out"):
        archives.best_structures("P07550")


def test_redirect_to_a_foreign_host_is_refused(archive: ArchiveServer) -> None:
    archive.add_route("/rcsb/redirect", lambda path, query: Response(
        b"", 302, {"Location": "http://example.invalid/evil.cif"}))
    with pytest.raises(NetworkPolicyError, match=r"host 'example.invalid' is not a configured endpoint"):
        _http.get_bytes(f"{archive.url}/rcsb/redirect", what="a redirect test")
    with pytest.raises(NetworkPolicyError, match="not a configured endpoint"):
        _http.check_url("https://example.invalid/x")


def test_offline_refuses_the_network(archive: ArchiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="PERC_OFFLINE"):
        archives.fetch_pdb_file("1AKI")
    assert archive.count() == 0


# -- processes -------------------------------------------------------------------------------------

FETCH_MAP = """
import sys
from perc_platform.archives import fetch_emdb_map
def progress(done, total):
    if done:
        print("progress", done, total, flush=True)
print(fetch_emdb_map("EMD-5168", progress=progress), flush=True)
"""

FETCH_PDB = """
import sys
from perc_platform.archives import fetch_pdb_file
print("ready", flush=True)
sys.stdin.readline()  # start both processes' fetches at the same moment
print(fetch_pdb_file("1AKI"), flush=True)
"""


def spawn(code: str, archive: ArchiveServer, cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **archive.env, "PERC_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_download_leaves_no_file_and_the_next_fetch_succeeds(archive: ArchiveServer, shared: Path,
                                                                         isolated_cache: Path) -> None:
    archive.add_throttle("/emdb/files/*", 400_000)  # the ~3.7 MB gzipped map takes ~10 s
    child = spawn(FETCH_MAP, archive, isolated_cache)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the body has started to arrive
        assert line.startswith("progress"), child.stderr.read() if child.stderr else line
        time.sleep(0.3)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert cache_files(isolated_cache) == []  # no map, no partial file, no manifest line
    archive.throttles.clear()
    path = archives.fetch_emdb_map("EMD-5168")
    assert gzip.decompress(path.read_bytes()) == (shared / "maps" / "emd_5168.map").read_bytes()


@pytest.mark.slow
def test_two_processes_fetching_the_same_id_both_succeed_with_one_file(archive: ArchiveServer, shared: Path,
                                                                       isolated_cache: Path) -> None:
    archive.add_throttle(CIF, 100_000)  # ~1.6 s per download, so the two processes overlap
    children = [spawn(FETCH_PDB, archive, isolated_cache) for _ in range(2)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    path = Path(paths.pop())
    assert path.read_bytes() == (shared / "structures" / "1aki.cif").read_bytes()
    assert count_settled(archive, CIF, "GET") == 1  # the second process waited on the lock and found the file
    assert sorted(p.name for p in cache_files(isolated_cache)) == ["1AKI.cif", "manifest.jsonl"]


def test_without_o_tmpfile_a_named_part_file_is_used_and_swept(archive: ArchiveServer, isolated_cache: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from perc_platform.archives.pdb import pdb_cache_path
    from perc_platform.storage import cache

    target = pdb_cache_path("1AKI")
    target.parent.mkdir(parents=True)
    stale = target.with_name(f".{target.name}.99999.1.part")  # left by a writer killed earlier
    stale.write_bytes(b"data_partial")
    monkeypatch.delattr(cache.os, "O_TMPFILE")
    archive.add_fault(CIF, kind="drop", times=1)
    assert archives.fetch_pdb_file("1AKI") == target
    assert sorted(p.name for p in cache_files(isolated_cache)) == ["1AKI.cif", "manifest.jsonl"]


def test_a_200_that_is_not_json_is_reported(archive: ArchiveServer, isolated_cache: Path) -> None:
    archive.add_fault("/pdbe/api/*", status=200, times=1)  # answers 200 with a plain-text body
    with pytest.raises(RemoteError, match=r"PDBe best_structures for P07550 from .*: the answer is not JSON"):
        archives.best_structures("P07550")
    assert cache_files(isolated_cache) == []


def test_a_200_that_is_not_a_structure_is_not_cached(archive: ArchiveServer, isolated_cache: Path) -> None:
    from perc_platform.errors import FormatError

    archive.add_fault(CIF, status=200, times=1)
    with pytest.raises(FormatError, match=r"PDB entry 1AKI .* is not usable .*nothing was cached"):
        archives.fetch_pdb_file("1AKI")
    assert cache_files(isolated_cache) == []
    assert archives.fetch_pdb_file("1AKI").exists()  # the next fetch gets the real file
