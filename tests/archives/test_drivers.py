"""The ``structure`` catalog source: parameters validated, the nested pdb/alphafold catalogs work."""

from __future__ import annotations

import warnings

import intake
import pytest
from intake_perc.structure import StructureSource

from perc_platform.catalogs import catalog_path
from perc_platform.errors import IdentifierError, ParameterError
from perc_platform.testing.archive import ArchiveServer


def open_root() -> intake.catalog.Catalog:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return intake.open_catalog(str(catalog_path()))


def test_structure_entries(archive: ArchiveServer) -> None:
    cat = open_root()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        by_pdb = cat.pdb.structure(uniprot_id="P00698", format="pdb", clean=True).to_dask()
        by_af = cat.alphafold.structure(uniprot_id="Q99J21").to_dask()
        top = cat.structure(pdb_id="1AKI").to_dask()
    assert by_pdb.attrs["source_id"] == top.attrs["source_id"] == "PDB:1AKI"
    assert by_pdb.sizes["atom"] == 1001 and top.sizes["atom"] == 1079  # 78 waters cleaned away
    assert by_af.attrs["source_id"] == "AFDB:AF-Q99J21-F1" and "plddt" in by_af


def test_parameters_are_validated() -> None:
    with pytest.raises(ParameterError, match="prefer"):
        StructureSource(uniprot_id="P00698", prefer="rcsb")
    with pytest.raises(ParameterError, match="not both"):
        StructureSource(uniprot_id="P00698", pdb_id="1AKI")
    with pytest.raises(ParameterError, match="needs uniprot_id"):
        StructureSource().to_dask()
    with pytest.raises(IdentifierError):
        StructureSource(uniprot_id="../../etc").to_dask()
