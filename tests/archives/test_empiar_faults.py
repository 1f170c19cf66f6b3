"""Acceptance 3 for EMPIAR: faults survived with correct data or reported clearly; downloads resume by Range."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from perc_platform.archives import empiar
from perc_platform.archives._resume import download_resumable, part_path
from perc_platform.cli.main import main
from perc_platform.datasets.empiar import open_empiar_imageset
from perc_platform.errors import DataNotFoundError, RangeNotSupportedWarning, RemoteError
from perc_platform.testing import LoopbackServer
from perc_platform.testing.empiar import empiar_archive
from tests.io.mrc_helpers import mrcfile_read

from .empiar_entry import EXTRACT, NUMBER, STACKS, build_tree

FILES = f"/empiar/files/{NUMBER}/{EXTRACT}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    return build_tree(tmp_path_factory.mktemp("empiar-faults"), shared)


@pytest.fixture(params=[False], ids=["ranges"])
def server(request: pytest.FixtureRequest, tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    monkeypatch.setenv("PERC_RETRIES", "3")
    monkeypatch.setenv("PERC_READ_TIMEOUT", "5")
    with empiar_archive(tree, ignore_range=request.param) as srv:
        yield srv


def all_stacks(tree: Path) -> np.ndarray:
    return np.concatenate([mrcfile_read(tree / NUMBER / EXTRACT / name) for name in sorted(STACKS)])


def open_stacks(chunk_size: int = 10) -> np.ndarray:
    return open_empiar_imageset(NUMBER, "particles", pattern="*.mrcs", chunk_size=chunk_size).values


# -- lazy reads -------------------------------------------------------------------------------------

def test_404_for_a_listed_file_names_it(server: LoopbackServer) -> None:
    server.add_fault(f"{FILES}/stack_002.mrcs", status=404, times=None)
    with pytest.raises(DataNotFoundError, match=r"stack_002\.mrcs"):
        open_stacks()


def test_500s_on_listing_metadata_and_chunks_are_retried(server: LoopbackServer, tree: Path) -> None:
    server.add_fault("/empiar/api/*", status=503, times=2)
    server.add_fault("/empiar/files/*/Extract/", status=500, times=1)
    server.add_fault(f"{FILES}/stack_003.mrcs", status=500, times=2)
    np.testing.assert_array_equal(open_stacks(), all_stacks(tree))
    assert server.count("GET", "/empiar/api/*") == 3
    assert any(r.status == 500 and r.path.endswith("stack_003.mrcs") for r in server.requests)


def test_persistent_500_is_reported_with_the_url(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_RETRIES", "1")
    images = open_empiar_imageset(NUMBER, "particles", pattern="*.mrcs", chunk_size=10)
    server.add_fault(f"{FILES}/stack_001.mrcs", status=500, times=None)
    with pytest.raises(RemoteError, match=r"stack_001\.mrcs failed after 2 attempts"):
        images.values  # noqa: B018


def test_connection_dropped_mid_chunk_gives_correct_data(server: LoopbackServer, tree: Path) -> None:
    images = open_empiar_imageset(NUMBER, "particles", pattern="*.mrcs", chunk_size=10)
    server.add_fault(f"{FILES}/stack_001.mrcs", kind="drop", times=2)
    server.add_fault(f"{FILES}/stack_003.mrcs", kind="drop", times=1)
    np.testing.assert_array_equal(images.values, all_stacks(tree))
    dropped = [r for r in server.requests if r.range and r.bytes_sent > 0 and r.path.endswith("stack_001.mrcs")]
    assert dropped  # the fault really cut a body short


@pytest.mark.parametrize("server", [True], indirect=True, ids=["range-ignored"])
def test_server_ignoring_range_still_gives_correct_data(server: LoopbackServer, tree: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = open_stacks()
    np.testing.assert_array_equal(values, all_stacks(tree))
    assert any(issubclass(w.category, RangeNotSupportedWarning) for w in caught)
    whole = [r for r in server.requests if r.path.endswith("stack_001.mrcs") and r.status == 200 and r.bytes_sent]
    assert len(whole) <= 2  # the header probe and one cached copy, not a whole file per chunk


# -- downloads --------------------------------------------------------------------------------------

def test_download_with_drops_resumes_by_range_and_ends_complete(server: LoopbackServer, tree: Path,
                                                                tmp_path: Path) -> None:
    files = empiar.list_files(NUMBER, "data/particles", pattern="*.mrcs")
    server.add_fault(f"{FILES}/stack_001.mrcs", kind="drop", times=2)
    seen: list[tuple[int, int]] = []
    outcomes = empiar.download_files(files, tmp_path / "out", jobs=2, progress=lambda d, t: seen.append((d, t)))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for name in STACKS:
        local = tmp_path / "out" / EXTRACT / name
        assert local.read_bytes() == (tree / NUMBER / EXTRACT / name).read_bytes()
        assert not part_path(local).exists()
    size = (tree / NUMBER / EXTRACT / "stack_001.mrcs").stat().st_size
    tries = [r for r in server.requests if r.path == f"{FILES}/stack_001.mrcs" and r.method == "GET"]
    # each resume asks from the last byte held (one byte of overlap, checked against the part)
    held = [0]
    for r in tries[:-1]:
        held.append(held[-1] + r.bytes_sent - (1 if held[-1] else 0))
    assert len(tries) == 3 and [r.range for r in tries] == [None, *(f"bytes={h - 1}-" for h in held[1:])]
    assert held[1] == size // 2
    assert sum(r.bytes_sent for r in tries) == size + len(tries) - 1  # resumed, not restarted
    assert seen[-1][0] == seen[-1][1] == sum(f.size or 0 for f in files)


def test_interrupted_run_leaves_a_part_file_and_the_next_run_resumes(server: LoopbackServer, tree: Path,
                                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    files = empiar.list_files(NUMBER, "data/particles", pattern="stack_002.mrcs")
    monkeypatch.setenv("PERC_RETRIES", "0")  # the first run gives up when the connection drops
    server.add_fault(f"{FILES}/stack_002.mrcs", kind="drop", times=1)
    (first,) = empiar.download_files(files, tmp_path)
    assert not first.ok and "stack_002.mrcs" in str(first.error)
    target = tmp_path / EXTRACT / "stack_002.mrcs"
    source = tree / NUMBER / EXTRACT / "stack_002.mrcs"
    assert not target.exists()  # never a partial file under the final name
    have = part_path(target).stat().st_size
    assert 0 < have < source.stat().st_size
    server.reset_counts()
    assert main(["empiar", "download", "--entry", NUMBER, "--dir", "data/particles", "--select", "stack_002.mrcs",
                 "--dest", str(tmp_path)]) == 0
    assert target.read_bytes() == source.read_bytes() and not part_path(target).exists()
    (resumed,) = [r for r in server.requests if r.path.endswith("stack_002.mrcs")]
    assert resumed.range == f"bytes={have - 1}-" and resumed.bytes_sent == source.stat().st_size - have + 1
    out, err = capsys.readouterr()
    assert "1/1 files" in err and str(target) in out  # the progress bar, then the paths


@pytest.mark.parametrize("server", [True], indirect=True, ids=["range-ignored"])
def test_resume_against_a_server_ignoring_range_starts_over(server: LoopbackServer, tree: Path,
                                                            tmp_path: Path) -> None:
    (f,) = empiar.list_files(NUMBER, "data/particles", pattern="stack_003.mrcs")
    target = tmp_path / "stack_003.mrcs"
    part_path(target).write_bytes(b"stale bytes from another file")
    download_resumable(f.url, target, what="stack_003", size=f.size)
    assert target.read_bytes() == (tree / NUMBER / EXTRACT / "stack_003.mrcs").read_bytes()


def test_checksum_and_size_are_checked_at_the_end(server: LoopbackServer, tree: Path, tmp_path: Path) -> None:
    (f,) = empiar.list_files(NUMBER, "data/particles", pattern="stack_001.mrcs")
    source = (tree / NUMBER / EXTRACT / "stack_001.mrcs").read_bytes()
    good = f"sha256:{hashlib.sha256(source).hexdigest()}"
    target = tmp_path / "a.mrcs"
    with pytest.raises(RemoteError, match="checksum"):
        download_resumable(f.url, target, what="stack_001", checksum="sha256:" + "0" * 64)
    assert not target.exists() and not part_path(target).exists()
    with pytest.raises(RemoteError, match="the listed size is 12"):
        download_resumable(f.url, target, what="stack_001", size=12)
    assert not target.exists() and not part_path(target).exists()
    assert download_resumable(f.url, target, what="stack_001", checksum=good).read_bytes() == source
    server.reset_counts()
    assert download_resumable(f.url, target, what="stack_001", size=len(source)) == target
    assert server.count() == 0  # already complete: no request


def test_cli_search_lists_urls_and_writes_them_for_download(server: LoopbackServer, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    urls = tmp_path / "urls.txt"
    assert main(["empiar", "search", "--entry", NUMBER, "--select", "*.mrcs", "--output", str(urls)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 5 and all(line.startswith(f"{server.url}/empiar/files/{NUMBER}/data/") for line in lines)
    assert "5 file(s)" in err and urls.read_text().splitlines() == [line.split("\t")[0] for line in lines]
    assert main(["empiar", "download", "--from", str(urls), "--dest", str(tmp_path / "d"), "-j", "3"]) == 0
    assert (tmp_path / "d" / "data/real/relion31.mrcs").stat().st_size == 1311744
    capsys.readouterr()
    assert main(["empiar", "info", "--entry", "10934"]) == 0
    assert "movies\tdata/CL44-1_20201106_111915\tmicrographs - multiframe\tTIFF" in capsys.readouterr().out
    assert main(["empiar", "download", "--from", str(tmp_path / "none.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
