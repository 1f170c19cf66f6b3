"""``perc fetch structure|map``: single ids, id files with progress, offline use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perc_platform.cli.main import main
from perc_platform.testing.archive import ArchiveServer


def test_fetch_one_structure_cleaned(archive: ArchiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "structure", "P00698", "--prefer", "pdb", "--format", "cif", "--clean"]) == 0
    query, source_id, path = capsys.readouterr().out.strip().split("\t")
    assert (query, source_id) == ("P00698", "PDB:1AKI")
    assert Path(path).name.startswith("1AKI.clean-signal-hydrogens-waters-hetero.") and Path(path).exists()


def test_fetch_from_a_file_with_progress_then_offline(archive: ArchiveServer, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# structures\n1AKI\nQ99J21  # AlphaFold fallback\nP00698\n\nP12345\n")
    assert main(["fetch", "structure", "-f", str(ids), "-j", "3"]) == 1  # P12345 has no structure
    captured = capsys.readouterr()
    rows = [line.split("\t") for line in captured.out.strip().splitlines()]
    assert [r[0] for r in rows] == ["1AKI", "Q99J21", "P00698", "P12345"]
    assert rows[1][1] == "AFDB:AF-Q99J21-F1" and rows[3][1] == "FAILED"
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert len(progress) == 4 and progress[-1].startswith("[4/4]")
    archive.reset_counts()
    assert main(["fetch", "structure", "1AKI", "--offline"]) == 0
    assert archive.count() == 0
    assert "PERC_OFFLINE" not in os.environ  # the flag holds for the command only


def test_offline_miss_is_one_clear_line(archive: ArchiveServer, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["fetch", "structure", "1AKI", "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("perc: error: PDB entry 1AKI") and "PERC_OFFLINE" in err


def test_fetch_map(archive: ArchiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "map", "EMD-5168"]) == 0
    assert capsys.readouterr().out.strip().endswith("emd_5168.map.gz")
