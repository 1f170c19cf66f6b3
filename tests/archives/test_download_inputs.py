"""Downloads given hostile or unlucky input (issue 15): paths that climb out of --dest, encoded bodies, a
part that already holds the whole file, a full disk, an unwritable cache. A correct file or a clear error."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from perc_platform.archives import _http
from perc_platform.archives._resume import download_resumable, part_path
from perc_platform.cli.main import main
from perc_platform.errors import RemoteError, StorageError
from perc_platform.testing import LoopbackServer
from perc_platform.testing.empiar import empiar_archive
from perc_platform.testing.server import Response

from .empiar_entry import EXTRACT, NUMBER, build_tree

FILES = f"/empiar/files/{NUMBER}/{EXTRACT}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    return build_tree(tmp_path_factory.mktemp("empiar-inputs"), shared)


@pytest.fixture
def server(tree: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("PERC_BACKOFF", "0.01")
    monkeypatch.setenv("PERC_RETRIES", "2")
    monkeypatch.setenv("PERC_READ_TIMEOUT", "5")
    with empiar_archive(tree) as srv:
        yield srv


def _all_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("tail", ["../../escaped.mrcs", "data/../../../escaped.mrcs", "data/%2e%2e/%2e%2e/x.mrcs",
                                  "data//x.mrcs", "./x.mrcs"])
def test_download_from_a_url_file_stays_inside_dest(server: LoopbackServer, tmp_path: Path, tail: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = f"{server.url}/empiar/files/{NUMBER}/{EXTRACT}/stack_001.mrcs"
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{good}\n{server.url}/empiar/files/{NUMBER}/{tail}\n", encoding="utf-8")
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    before = _all_files(tmp_path)
    assert main(["empiar", "download", "--from", str(urls), "--dest", str(dest)]) == 2
    assert "outside the download folder" in capsys.readouterr().err
    assert _all_files(tmp_path) == before  # refused before anything was written, inside or outside


def test_an_encoded_body_is_refused_not_stored(server: LoopbackServer, tree: Path, tmp_path: Path) -> None:
    raw = (tree / NUMBER / EXTRACT / "stack_001.mrcs").read_bytes()
    server.add_route("/gz/", lambda path, query: Response(gzip.compress(raw), 200,
                                                                       {"Content-Encoding": "gzip"}))
    target = tmp_path / "stack.mrcs"
    with pytest.raises(RemoteError, match="Content-Encoding 'gzip'"):
        download_resumable(f"{server.url}/gz/stack.mrcs", target, what="stack")
    assert not target.exists() and not part_path(target).exists()


def test_a_part_that_holds_the_whole_file_completes(server: LoopbackServer, tree: Path, tmp_path: Path) -> None:
    raw = (tree / NUMBER / EXTRACT / "stack_002.mrcs").read_bytes()
    target = tmp_path / "stack_002.mrcs"
    part_path(target).write_bytes(raw)  # an earlier run got every byte, then died before the rename
    url = f"{server.url}{FILES}/stack_002.mrcs"
    assert download_resumable(url, target, what="stack") == target  # size unknown: the server tells it
    assert target.read_bytes() == raw and not part_path(target).exists()
    (request,) = [r for r in server.requests if r.path.endswith("stack_002.mrcs")]
    assert request.range == f"bytes={len(raw) - 1}-" and request.bytes_sent == 1


def test_a_stale_part_longer_or_different_than_the_file_starts_over(server: LoopbackServer, tree: Path,
                                                                     tmp_path: Path) -> None:
    raw = (tree / NUMBER / EXTRACT / "stack_003.mrcs").read_bytes()
    url = f"{server.url}{FILES}/stack_003.mrcs"
    longer = tmp_path / "longer.mrcs"
    part_path(longer).write_bytes(raw + b"\0" * 100)  # 416 from the server: the remote file is shorter
    assert download_resumable(url, longer, what="stack").read_bytes() == raw
    different = tmp_path / "different.mrcs"
    part_path(different).write_bytes(bytes(b ^ 0xFF for b in raw[:5000]))  # the remote file changed
    assert download_resumable(url, different, what="stack").read_bytes() == raw


def _limited(script: str, limit: int) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a child whose files may not grow past ``limit`` bytes (RLIMIT_FSIZE: the kernel then
    fails writes with EFBIG, as a full disk fails them with ENOSPC)."""
    prelude = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    """)
    return subprocess.run([sys.executable, "-B", "-c", prelude + textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))


def test_a_full_disk_during_a_download_says_so(server: LoopbackServer, tmp_path: Path) -> None:
    url = f"{server.url}/empiar/files/{NUMBER}/data/real/relion31.mrcs"  # 1.3 MB
    target = tmp_path / "full" / "relion31.mrcs"
    done = _limited(f"""
        from pathlib import Path
        from perc_platform.archives._resume import download_resumable
        from perc_platform.errors import StorageError
        try:
            download_resumable({url!r}, Path({str(target)!r}), what="stack")
        except StorageError as exc:
            print("STORAGE:", exc)
    """, 100_000)
    assert "STORAGE:" in done.stdout, done.stdout + done.stderr
    assert "disk is full" in done.stdout and str(target.parent) in done.stdout
    assert "network" not in done.stdout and not target.exists()
    assert len([r for r in server.requests if r.path.endswith("relion31.mrcs")]) == 1  # not retried


def test_a_full_disk_while_decompressing_is_not_a_damaged_file(tmp_path: Path) -> None:
    archive = tmp_path / "map.mrc.gz"
    archive.write_bytes(gzip.compress(os.urandom(300_000)))
    done = _limited(f"""
        from perc_platform.storage.ranges import decompressed_copy
        from perc_platform.errors import StorageError
        try:
            decompressed_copy({str(archive)!r})
        except StorageError as exc:
            print("STORAGE:", exc)
    """, 150_000)
    assert "STORAGE:" in done.stdout and "PERC_CACHE_DIR" in done.stdout, done.stdout + done.stderr
    assert "damaged" not in done.stdout


def test_an_unwritable_cache_names_the_folder_and_the_setting(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from perc_platform.storage.cache import cache_dir
    from perc_platform.storage.ranges import decompressed_copy

    monkeypatch.setenv("PERC_CACHE_DIR", "/sys/perc-platform-cache")  # sysfs: no one may create folders there
    with pytest.raises(StorageError, match=r"/sys/perc-platform-cache.*PERC_CACHE_DIR"):
        cache_dir()
    archive = tmp_path / "map.mrc.gz"
    archive.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(StorageError, match="cannot be written"):
        decompressed_copy(str(archive))


def test_download_cli_no_match_skipped_totals_and_no_lock_files(server: LoopbackServer, tree: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "dest"
    assert main(["empiar", "download", "--entry", NUMBER, "--select", "*.nothing", "--dest", str(dest)]) == 2
    assert "matches --select '*.nothing'" in capsys.readouterr().err and not dest.exists()
    args = ["empiar", "download", "--entry", NUMBER, "--dir", EXTRACT, "--select", "*.mrcs", "--dest", str(dest)]
    assert main(args) == 0
    capsys.readouterr()
    sizes = sum((tree / NUMBER / EXTRACT / n).stat().st_size for n in ("stack_001.mrcs", "stack_002.mrcs",
                                                                        "stack_003.mrcs"))
    (dest / EXTRACT / "stack_002.mrcs").unlink()
    assert main(args) == 0  # two files skipped, one downloaded: the totals count all three
    err = capsys.readouterr().err
    final = err.rstrip().rsplit("\r", 1)[-1]
    assert "3/3 files" in final and final.count(f"{sizes / 1024:.1f} KB") == 2, final
    assert not [p for p in dest.rglob("*") if p.name.endswith((".lock", ".part"))]


def test_download_checks_checksums_from_a_file(server: LoopbackServer, tree: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    folder = tree / NUMBER / EXTRACT
    sums = tmp_path / "md5sum.txt"
    sums.write_text(f"{hashlib.md5((folder / 'stack_001.mrcs').read_bytes()).hexdigest()}  "
                    f"./{EXTRACT}/stack_001.mrcs\n"
                    f"{hashlib.sha256(b'not the file').hexdigest()} *stack_002.mrcs\n", encoding="utf-8")
    dest = tmp_path / "dest"
    assert main(["empiar", "download", "--entry", NUMBER, "--dir", EXTRACT, "--select", "stack_00[12].mrcs",
                 "--dest", str(dest), "--checksums", str(sums)]) == 1
    out = capsys.readouterr().out
    assert (dest / EXTRACT / "stack_001.mrcs").read_bytes() == (folder / "stack_001.mrcs").read_bytes()
    assert not (dest / EXTRACT / "stack_002.mrcs").exists() and "stack_002.mrcs\tFAILED" in out
    assert "checksum" in out


def test_every_archive_request_refuses_an_encoded_body(server: LoopbackServer, tree: Path, tmp_path: Path) -> None:
    """The sibling of the resumable case: plain downloads and small fetches go through the same check."""
    raw = (tree / NUMBER / EXTRACT / "stack_001.mrcs").read_bytes()
    server.add_route("/enc/", lambda path, query: Response(gzip.compress(raw), 200, {"Content-Encoding": "gzip"}))
    with pytest.raises(RemoteError, match="Content-Encoding 'gzip'"):
        _http.get_bytes(f"{server.url}/enc/stack.mrcs", what="stack")
    with open(tmp_path / "plain.mrcs", "wb") as handle, pytest.raises(RemoteError, match="Content-Encoding"):
        _http.download(f"{server.url}/enc/stack.mrcs", handle, what="stack")
    # A .gz file sent as "Content-Encoding: gzip" (Apache's AddEncoding) is the .gz file itself: kept as sent.
    assert gzip.decompress(_http.get_bytes(f"{server.url}/enc/map.mrc.gz", what="map")) == raw
