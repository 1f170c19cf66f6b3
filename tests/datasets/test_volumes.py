"""Maps open lazily through the engine, open_volume and the catalog; values and placement are right."""

from __future__ import annotations

import bz2
import gzip
import shutil
import warnings
from pathlib import Path

import dask.array as da
import gemmi
import intake
import mrcfile
import numpy as np
import pytest
import xarray as xr

import perc_platform as pp
from perc_platform.catalogs import catalog_path

MAPS = ["EMD-3001.map", "EMD-3197.map", "emd_1832.map", "emd_2566_3J6B_chain9_crop.mrc", "emd_5168.map",
        "emd_5168_monomer_segment.mrc", "emd_5625.map", "emd_6824.mrc"]
ORIGIN_ZERO = ["EMD-3001.map", "EMD-3197.map", "emd_1832.map", "emd_5168.map", "emd_5625.map", "emd_6824.mrc"]


def mrcfile_zyx(path: Path) -> np.ndarray:
    """mrcfile's data (file order: sections, rows, columns) reordered to (z, y, x) from MAPC/MAPR/MAPS."""
    with mrcfile.open(path, permissive=True) as mrc:
        h = mrc.header
        file_axis = {int(h.maps): 0, int(h.mapr): 1, int(h.mapc): 2}
        return np.transpose(mrc.data, (file_axis[3], file_axis[2], file_axis[1])).copy()


def open_catalog_map(path: Path) -> xr.DataArray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cat = intake.open_catalog(str(catalog_path()))
        return cat.local_map(urlpath=str(path)).to_dask()["density"]


@pytest.mark.parametrize("name", MAPS)
def test_every_map_opens_lazily_with_mrcfile_values(shared: Path, name: str) -> None:
    path = shared / "maps" / name
    expected = mrcfile_zyx(path)
    opened = {
        "open_volume": pp.open_volume(path),
        "engine": xr.open_dataset(path, engine="mrc")["density"],
        "catalog": open_catalog_map(path),
    }
    assert isinstance(opened["open_volume"].data, da.Array)
    for how, density in opened.items():
        assert density.dims == ("z", "y", "x"), how
        np.testing.assert_array_equal(density.values, expected, err_msg=how)
        pp.conventions.validate_volume(density)


@pytest.mark.parametrize("name", ORIGIN_ZERO)
def test_placement_agrees_with_gemmi(shared: Path, name: str) -> None:
    path = shared / "maps" / name
    density = pp.open_volume(path)
    values = density.values
    grid = gemmi.read_ccp4_map(str(path), setup=True).grid
    cell = grid.unit_cell
    rng = np.random.default_rng(1)
    for _ in range(300):
        k, j, i = (int(rng.integers(0, n)) for n in values.shape)
        x, y, z = float(density.x[i]), float(density.y[j]), float(density.z[k])
        # Our coords run along the cell axes; for the monoclinic EMD-3001 (beta = 94.3 deg) the Cartesian
        # position of that lattice point is the cell's orthogonalisation of the fractional coordinate.
        position = cell.orthogonalize(gemmi.Fractional(x / cell.a, y / cell.b, z / cell.c))
        assert grid.interpolate_value(position) == pytest.approx(float(values[k, j, i]), abs=1e-5)


def test_emd3001_anisotropic_coords(shared: Path) -> None:
    density = pp.open_volume(shared / "maps" / "EMD-3001.map")
    assert density.shape == (73, 25, 43)
    steps = [float(np.diff(density[c].values).mean()) for c in ("x", "y", "z")]
    np.testing.assert_allclose(steps, [17.93 / 40, 4.71 / 12, 33.03 / 72], rtol=1e-3)
    assert float(density.y[0]) == pytest.approx(-12 * 4.71 / 12, rel=1e-4)  # NYSTART along y is -12


def ca_positions(path: Path) -> np.ndarray:
    structure = gemmi.read_structure(str(path))
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for res in structure[0][0] for a in res if a.name == "CA"])


@pytest.mark.parametrize(("map_name", "model_name"), [
    ("emd_5168.map", "3MFP_tempy.pdb"),
    ("emd_5168_monomer_segment.mrc", "3MFP_tempy.pdb"),
    ("emd_2566_3J6B_chain9_crop.mrc", "3J6B_chain9.pdb"),
])
def test_model_overlays_map(shared: Path, map_name: str, model_name: str) -> None:
    density = pp.open_volume(shared / "maps" / map_name).load()
    ca = ca_positions(shared / "structures" / model_name)
    points = {axis: xr.DataArray(ca[:, i], dims="atom") for i, axis in enumerate("xyz")}
    sampled = density.interp(**points, method="linear").values
    threshold = np.percentile(density.values, 90)
    share = float(np.mean(np.nan_to_num(sampled, nan=-np.inf) > threshold))
    assert share >= 0.9, f"only {share:.0%} of C-alpha atoms on density above the 90th percentile"


@pytest.mark.parametrize("suffix", [".gz", ".bz2"])
def test_compressed_map_decompressed_once(shared: Path, tmp_path: Path, isolated_cache: Path, suffix: str) -> None:
    source = shared / "maps" / "emd_1832.map"
    target = tmp_path / f"emd_1832.map{suffix}"
    opener = gzip.open if suffix == ".gz" else bz2.open
    with open(source, "rb") as src, opener(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    first = pp.open_volume(target)
    np.testing.assert_array_equal(first.values, mrcfile_zyx(source))
    copies = [p for p in isolated_cache.rglob("emd_1832.map") if p.is_file()]
    assert len(copies) == 1
    stamp = copies[0].stat().st_mtime_ns
    second = pp.open_volume(target)
    assert copies[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.values, first.values)
    assert not list(isolated_cache.rglob("*.part"))


def test_partial_reads_touch_only_needed_sections(shared: Path) -> None:
    path = shared / "maps" / "EMD-3001.map"
    density = xr.open_dataset(path, engine="mrc")["density"]
    expected = mrcfile_zyx(path)
    np.testing.assert_array_equal(density[10:20, ::3, [1, 5, 40]].values, expected[10:20, ::3][:, :, [1, 5, 40]])
    np.testing.assert_array_equal(density[7].values, expected[7])
    np.testing.assert_array_equal(density[:, 4, 2].values, expected[:, 4, 2])
