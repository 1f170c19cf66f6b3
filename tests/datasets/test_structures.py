"""``open_structure``: any mmCIF/PDB file (local, .gz, or URL) as a convention Dataset, checked against gemmi."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import gemmi
import numpy as np
import pytest
import xarray as xr

import perc_platform as pp
from perc_platform.conventions import validate_structure
from perc_platform.errors import DataNotFoundError, StructureFormatError
from perc_platform.storage.policy import grant_host

STRUCTURES = ["1aki.pdb", "1aki.cif", "3J6B_chain9.pdb", "3MFP_tempy.pdb", "AF-Q99J21-F1-model_v2.pdb"]
ATOMS = {"1aki.pdb": 1079, "1aki.cif": 1079, "3J6B_chain9.pdb": 2865, "3MFP_tempy.pdb": 2882,
         "AF-Q99J21-F1-model_v2.pdb": 4612}  # MANIFEST facts


def gemmi_atoms(path: Path) -> list[gemmi.Atom]:
    st = gemmi.read_structure(str(path))
    st.remove_alternative_conformations()
    return [atom for chain in st[0] for res in chain for atom in res]


@pytest.mark.parametrize("name", STRUCTURES)
def test_every_structure_matches_gemmi(shared: Path, name: str) -> None:
    path = shared / "structures" / name
    ds = pp.open_structure(path)
    validate_structure(ds)
    atoms = gemmi_atoms(path)
    assert ds.sizes["atom"] == len(atoms) == ATOMS[name]
    assert ds["position"].dims == ("atom", "axis") and list(ds["axis"].values) == ["x", "y", "z"]
    np.testing.assert_allclose(ds["position"].values, [a.pos.tolist() for a in atoms], atol=1e-4)
    assert list(ds["atom_name"].values) == [a.name for a in atoms]
    assert list(ds["element"].values) == [a.element.name for a in atoms]
    np.testing.assert_allclose(ds["occupancy"].values, [a.occ for a in atoms], atol=1e-6)
    for key in ("source_id", "source_uri", "retrieved", "perc_platform_version", "history"):
        assert key in ds.attrs


def test_1aki_pdb_and_mmcif_are_identical(shared: Path) -> None:
    a = pp.open_structure(shared / "structures" / "1aki.pdb")
    b = pp.open_structure(shared / "structures" / "1aki.cif")
    for ds in (a, b):
        ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("source_uri", "history", "retrieved")}
    xr.testing.assert_identical(a, b)
    assert a.attrs["source_id"] == "PDB:1AKI" and a.attrs["resolution"] == 1.5
    assert int(a["hetero"].sum()) == 78 and set(a["res_name"].values[a["hetero"].values]) == {"HOH"}


def test_alphafold_model_has_plddt_not_b_factor(shared: Path) -> None:
    ds = pp.open_structure(shared / "structures" / "AF-Q99J21-F1-model_v2.pdb")
    assert ds.attrs["source_id"] == "AFDB:AF-Q99J21-F1"
    assert "plddt" in ds and bool(ds["b_factor"].isnull().all())
    np.testing.assert_allclose(ds["plddt"].values, [a.b_iso for a in gemmi_atoms(
        shared / "structures" / "AF-Q99J21-F1-model_v2.pdb")])
    experimental = pp.open_structure(shared / "structures" / "1aki.pdb")
    assert "plddt" not in experimental and not bool(experimental["b_factor"].isnull().any())


def test_hydrogens_and_chain_names(shared: Path) -> None:
    ds = pp.open_structure(shared / "structures" / "3J6B_chain9.pdb")
    assert int((ds["element"] == "H").sum()) == 1437
    assert set(ds["chain_id"].values) == {"9"}
    assert int(ds["res_id"].min()) == 29 and int(ds["res_id"].max()) == 241


def test_gzip_and_remote(shared: Path, tmp_path: Path, server_factory) -> None:  # type: ignore[no-untyped-def]
    gz = tmp_path / "1aki.cif.gz"
    with open(shared / "structures" / "1aki.cif", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    local = pp.open_structure(shared / "structures" / "1aki.cif")
    assert pp.open_structure(gz)["position"].equals(local["position"])
    srv = server_factory(shared / "structures")
    grant_host(srv.url)
    remote = pp.open_structure(f"{srv.url}/1aki.cif")
    assert remote["position"].equals(local["position"]) and remote.attrs["source_uri"] == f"{srv.url}/1aki.cif"


def test_altloc_all_keeps_alternative_conformations(tmp_path: Path, shared: Path) -> None:
    # two conformations of one atom, written by this test
    pdb = tmp_path / "alt.pdb"
    pdb.write_text(
        "ATOM      1  N   SER A   1      10.000  10.000  10.000  0.60 10.00           N\n"
        "ATOM      2  CA ASER A   1      11.000  10.000  10.000  0.60 10.00           C\n"
        "ATOM      3  CA BSER A   1      11.500  10.000  10.000  0.40 10.00           C\n"
        "END\n")
    assert pp.open_structure(pdb).sizes["atom"] == 2
    both = pp.open_structure(pdb, altloc="all")
    assert both.sizes["atom"] == 3 and list(both["altloc"].values) == ["", "A", "B"]


@pytest.mark.parametrize("content", [b"", b"not a structure at all\n", b"data_x\nloop_\n_atom_site.id\n"])
def test_bad_files_raise_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.cif"
    bad.write_bytes(content)
    with pytest.raises(StructureFormatError, match="bad.cif"):
        pp.open_structure(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no such structure file"):
        pp.open_structure(tmp_path / "nope.cif")
