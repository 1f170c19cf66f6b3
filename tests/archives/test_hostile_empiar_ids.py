"""Hostile EMPIAR ids are refused before any request or file write, through every entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from perc_platform.archives import empiar
from perc_platform.datasets.empiar import open_empiar_imageset
from perc_platform.errors import IdentifierError
from perc_platform.testing.empiar import empiar_archive

BAD = ["", "   ", "../../etc/passwd", "10934/../x", "EMPIAR-10934/..", "a/b", "x" * 300, "10934\x00",
       "EMPIAR-", "EMPIAR-abc"]


@pytest.mark.parametrize("bad", BAD)
def test_bad_empiar_ids_cause_no_request_and_no_write(bad: str, tmp_path: Path, isolated_cache: Path) -> None:
    from intake_perc.empiar import EmpiarCatalog

    (tmp_path / "entries").mkdir()
    with empiar_archive(tmp_path / "entries") as server:
        calls = [lambda: empiar.fetch_empiar_entry(bad),
                 lambda: open_empiar_imageset(bad, "particles", pattern="*.mrcs")]
        if bad:
            calls.append(lambda: list(EmpiarCatalog(entry=bad)))
        else:  # intake builds catalogs with default (empty) arguments when browsing: an empty catalog
            assert list(EmpiarCatalog(entry=bad)) == []
        for call in calls:
            with pytest.raises(IdentifierError) as info:
                call()
            assert "\n" not in str(info.value)
        assert server.requests == []
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []
