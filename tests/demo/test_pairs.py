"""`perc demo --real-data`: maps paired with their own models by EMDB/PDB ids, resolution from the entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perc_platform.demo._data import real_data_archive
from perc_platform.demo._pairs import entry_record, find_pairs
from perc_platform.errors import DataNotFoundError


def _pairs(source: Path) -> set[tuple[str, str, str, str]]:
    return {(p.map_path.name, p.model_path.name, p.emdb_id, p.pdb_id) for p in find_pairs(source)}


def test_shared_data_pairs_follow_its_manifest(shared: Path) -> None:
    # MANIFEST.md, "Map + model pairs": the three pairs it checked, and not lysozyme (1AKI) with any map
    assert _pairs(shared) == {("emd_5168.map", "3MFP_tempy.pdb", "EMD-5168", "3MFP"),
                              ("emd_5168_monomer_segment.mrc", "3MFP_tempy.pdb", "EMD-5168", "3MFP"),
                              ("emd_2566_3J6B_chain9_crop.mrc", "3J6B_chain9.pdb", "EMD-2566", "3J6B")}
    resolutions = {p.map_path.name: p.resolution for p in find_pairs(shared)}
    assert resolutions["emd_5168.map"] == 6.6  # stated in the EMD-5168 row
    assert resolutions["emd_2566_3J6B_chain9_crop.mrc"] is None  # "Resolution not stated in source."


def test_names_alone_do_not_pair(shared: Path, tmp_path: Path) -> None:
    shutil.copy(shared / "maps" / "EMD-3197.map", tmp_path / "emd_3197.map")
    shutil.copy(shared / "structures" / "1aki.pdb", tmp_path / "1aki.pdb")
    assert find_pairs(tmp_path) == []
    # an EMDB entry record naming the fitted model pairs them, with its resolution
    record = entry_record("EMD-3197", "1AKI", 11.5, "test")
    (tmp_path / "emdb_entry_EMD-3197.json").write_text(json.dumps(record))
    (pair,) = find_pairs(tmp_path)
    assert (pair.map_path.name, pair.model_path.name, pair.resolution) == ("emd_3197.map", "1aki.pdb", 11.5)
    assert "fitted model 1AKI" in pair.evidence


def test_real_data_archive_serves_the_pair_with_its_resolution(shared: Path, tmp_path: Path) -> None:
    from perc_platform._environ import environment
    from perc_platform.datasets.emdb import open_emdb_map
    from perc_platform.testing.archive import archive_server

    archive = real_data_archive(shared, tmp_path / "archive")
    # the pair with a known resolution and the smallest map: the EMD-5168 segment with 3MFP
    assert (archive.emdb_id, archive.pdb_id, archive.resolution) == ("EMD-5168", "3MFP", 6.6)
    assert (tmp_path / "archive" / "maps" / "emd_5168.mrc").resolve() == \
        (shared / "maps" / "emd_5168_monomer_segment.mrc").resolve()
    with environment({"PERC_CACHE_DIR": str(tmp_path / "cache")}), archive_server(*archive.indexed):
        density = open_emdb_map("EMD-5168")
    assert density.attrs["resolution"] == 6.6 and density.attrs["fitted_pdb_ids"] == ["3MFP"]
    assert density.shape == (41, 43, 28)  # MANIFEST: NX,NY,NZ = 28,43,41
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="map with its model"):
        real_data_archive(empty, tmp_path / "archive2")
