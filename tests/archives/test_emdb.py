"""EMDB maps by id: fetched once as .map.gz, opened lazily with the values and placement of the file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dask.array as da
import intake
import mrcfile
import numpy as np
import pytest

from perc_platform import archives
from perc_platform.catalogs import catalog_path
from perc_platform.conventions import validate_volume
from perc_platform.datasets.emdb import open_emdb_map
from perc_platform.errors import DataNotFoundError
from perc_platform.testing.archive import ArchiveServer

from .conftest import count_settled, write_json


@pytest.mark.parametrize(("emdb_id", "name"), [("EMD-5168", "emd_5168.map"), ("EMD-1832", "emd_1832.map"),
                                               ("3001", "EMD-3001.map")])
def test_map_by_id_matches_mrcfile(archive: ArchiveServer, shared: Path, emdb_id: str, name: str) -> None:
    density = open_emdb_map(emdb_id)
    assert isinstance(density.data, da.Array)
    validate_volume(density)
    with mrcfile.open(shared / "maps" / name, permissive=True) as mrc:
        h = mrc.header
        axes = {int(h.maps): 0, int(h.mapr): 1, int(h.mapc): 2}
        expected = np.transpose(mrc.data, (axes[3], axes[2], axes[1]))
    np.testing.assert_array_equal(density.values, expected)
    assert density.attrs["source_id"] == archives.validate_emdb_id(emdb_id)
    assert count_settled(archive, "*/map/*.map.gz", "GET") == 1


def test_entry_metadata(archive: ArchiveServer, extra: Path) -> None:
    """The entry answer here is written by the test in the EMDB API's layout; its values are MANIFEST facts
    (EMD-5168 at 6.6 A, the actin map TEMPy pairs with model 3MFP); the contour level is made up."""
    path = write_json(extra, "emdb_entry_EMD-5168.json", {
        "emdb_id": "EMD-5168",
        "admin": {"title": "actin filament"},
        "crossreferences": {"pdb_list": {"pdb_reference": [{"pdb_id": "3mfp"}]}},
        "structure_determination_list": {"structure_determination": [
            {"image_processing": [{"final_reconstruction": {"resolution": {"valueOf_": "6.6", "units": "Å"}}}]}]},
        "map": {"contour_list": {"contour": [{"primary": True, "level": 0.05}]}},
        "some_future_field": {"ignored": True},
    })
    archive.index.add(path)
    entry = archives.fetch_emdb_entry("EMD-5168")
    assert entry.resolution == 6.6 and entry.fitted_pdb_ids == ["3MFP"] and entry.contour_level == 0.05
    density = open_emdb_map(5168)
    assert density.attrs["resolution"] == 6.6 and density.attrs["fitted_pdb_ids"] == ["3MFP"]


def test_unknown_map_is_a_clear_not_found(archive: ArchiveServer) -> None:
    with pytest.raises(DataNotFoundError, match=r"EMD-9999 map not found: .*/emd_9999.map.gz"):
        open_emdb_map("EMD-9999")


def test_catalog_entries(archive: ArchiveServer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cat = intake.open_catalog(str(catalog_path()))
        nested = cat.emdb.map(emdb_id="EMD-5168").to_dask()
        top = cat.emdb_map(emdb_id="5168").to_dask()
    assert nested["density"].shape == top["density"].shape == (100, 100, 100)
    assert json.dumps(nested.attrs["fitted_pdb_ids"]) == "[]"  # synthesized entry: no fitted models listed
