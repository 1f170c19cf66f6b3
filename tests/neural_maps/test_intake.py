"""Intake: ``neural_map`` catalog entries for saved maps, ``to_neural_map()`` on ``mrc_volume`` entries."""

from __future__ import annotations

from pathlib import Path

import intake
import numpy as np

import perc_platform.neural_maps as nm
from tests.neural_maps.conftest import TINY, TINY_FIT


def test_neural_map_entry_loads_a_saved_map(tiny_map: nm.NeuralMap, tmp_path: Path) -> None:
    folder = tiny_map.save(tmp_path / "segment_map", precision="float32")
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(f"sources:\n  segment:\n    driver: neural_map\n    args:\n      urlpath: '{folder}'\n")
    entry = intake.open_catalog(str(catalog)).segment
    loaded = entry.read()
    assert isinstance(loaded, nm.NeuralMap)
    expected = tiny_map.sample().values
    np.testing.assert_allclose(loaded.sample().values, expected, rtol=1e-6, atol=1e-6)
    dataset = entry.to_dask()
    np.testing.assert_allclose(dataset["density"].values, expected, rtol=1e-6, atol=1e-6)


def test_mrc_volume_entry_fits_a_neural_map(shared: Path, tmp_path: Path) -> None:
    path = shared / "maps" / "emd_5168_monomer_segment.mrc"
    catalog = tmp_path / "cat.yaml"
    catalog.write_text(f"sources:\n  seg:\n    driver: mrc_volume\n    args:\n      urlpath: '{path}'\n")
    neural_map = intake.open_catalog(str(catalog)).seg.to_neural_map(config=TINY, device="cpu",
                                                                     **{**TINY_FIT, "max_steps": 10})
    assert neural_map.shape == (41, 43, 28)
    assert neural_map.attrs["source_uri"].endswith("emd_5168_monomer_segment.mrc")
