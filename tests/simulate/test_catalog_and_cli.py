"""Simulated data declared in YAML (catalog drivers) and the `perc simulate` / `perc preprocess` commands."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import intake
import numpy as np
import pytest

from perc_platform import open_particles, open_volume
from perc_platform.catalogs import catalog_path
from perc_platform.cli.main import main
from perc_platform.errors import ParameterError
from perc_platform.processing import open_preprocessed


def test_a_training_set_declared_in_yaml(shared: Path, tmp_path: Path) -> None:
    structure = shared / "structures" / "3MFP_tempy.pdb"
    segment = shared / "maps" / "emd_5168_monomer_segment.mrc"
    (tmp_path / "training.yaml").write_text(f"""
sources:
  actin_particles:
    driver: simulated_particles
    args: {{structure: "{structure}", n: 12, box: 32, pixel_size: 3.0, snr: 0.2, seed: 7,
            defocus_range: [12000, 16000]}}
  actin_map:
    driver: simulated_map
    args: {{structure: "{structure}", resolution: 6.6, like: "{segment}"}}
""")
    cat = intake.open_catalog(str(tmp_path / "training.yaml"))
    images = cat.actin_particles.to_dask()["image"]
    assert images.shape == (12, 32, 32) and isinstance(images.data, da.Array)
    assert 12000 <= images["defocus_u"].values.min() <= images["defocus_u"].values.max() <= 16000
    again = cat.actin_particles.to_dask()["image"]
    np.testing.assert_array_equal(images.values, again.values)
    density = cat.actin_map.to_dask()["density"]
    real = open_volume(segment)
    assert np.corrcoef(density.values.ravel(), real.values.ravel())[0, 1] >= 0.6


def test_shipped_catalog_entries_validate_their_parameters(shared: Path) -> None:
    cat = intake.open_catalog(str(catalog_path()))
    structure = str(shared / "structures" / "3MFP_tempy.pdb")
    images = cat.simulated.particles(structure=structure, n=4, box=24, pixel_size=4.0,
                                     defocus_range="9000,11000").to_dask()["image"]
    assert images.shape == (4, 24, 24)
    assert images["defocus_u"].values.min() >= 9000
    with pytest.raises(ParameterError, match="snr"):
        cat.simulated.particles(structure=structure, snr="-1").to_dask()


@pytest.mark.cluster
def test_simulate_then_preprocess_from_the_command_line(shared: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    structure = str(shared / "structures" / "3MFP_tempy.pdb")
    assert main(["simulate", "particles", structure, "-n", "40", "--box", "64", "--pixel-size", "2.0",
                 "--chunk-size", "16", "--out", str(tmp_path / "sim.mrcs")]) == 0
    images = open_particles(tmp_path / "sim.mrcs", star=tmp_path / "sim.star")
    assert images.shape == (40, 64, 64) and images.attrs["pixel_size"] == 2.0
    assert main(["preprocess", str(tmp_path / "sim.mrcs"), "--star", str(tmp_path / "sim.star"), "--box", "32",
                 "--chunk-size", "16", "--out", str(tmp_path / "pre.zarr")]) == 0
    captured = capsys.readouterr()
    assert "preprocess: 3/3 chunks" in captured.err
    result = open_preprocessed(tmp_path / "pre.zarr")
    assert result.shape == (40, 32, 32) and result.attrs["pixel_size"] == pytest.approx(4.0)
    assert main(["simulate", "map", structure, "--resolution", "8", "--out", str(tmp_path / "m.mrc")]) == 0
    density = open_volume(tmp_path / "m.mrc")
    assert density.attrs["voxel_size"] == pytest.approx([8 / 3] * 3, rel=1e-5)
