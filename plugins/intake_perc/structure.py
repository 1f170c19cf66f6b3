"""``structure``: a structure by UniProt accession or PDB id (PDB or AlphaFold DB, with fallback) as a Dataset."""

from __future__ import annotations

from typing import Any, Literal

import xarray as xr
from intake.source.base import DataSource, Schema
from pydantic import model_validator

from intake_perc._params import SourceParams, validate_params
from perc_platform._version import __version__
from perc_platform.datasets.structures import open_structure_by_id


class StructureParams(SourceParams):
    uniprot_id: str | None = None
    pdb_id: str | None = None
    prefer: Literal["pdb", "alphafold"] = "pdb"
    format: Literal["cif", "pdb"] = "cif"
    clean: bool = False

    @model_validator(mode="after")
    def _one_id(self) -> StructureParams:
        if self.uniprot_id and self.pdb_id:
            raise ValueError("give uniprot_id or pdb_id, not both")
        return self


class StructureSource(DataSource):
    """An atomic structure (``position`` (atom, axis) and per-atom coords); one partition."""

    container = "xarray"
    name = "structure"
    version = __version__
    partition_access = True

    def __init__(self, uniprot_id: str | None = None, pdb_id: str | None = None, prefer: str = "pdb",
                 format: str = "cif", clean: bool = False, metadata: dict[str, Any] | None = None) -> None:
        self.params = validate_params(StructureParams, self.name, uniprot_id=uniprot_id, pdb_id=pdb_id,
                                      prefer=prefer, format=format, clean=clean)
        self._ds: xr.Dataset | None = None
        super().__init__(metadata=metadata)

    def _load(self) -> xr.Dataset:
        if self._ds is None:
            p = self.params
            query = p.uniprot_id or p.pdb_id
            if not query:
                from perc_platform.errors import ParameterError

                raise ParameterError("the 'structure' source needs uniprot_id (e.g. 'P00698') or pdb_id "
                                     "(e.g. '1AKI')")
            self._ds = open_structure_by_id(query, prefer=p.prefer, fmt=p.format, clean=p.clean)
        return self._ds

    def _get_schema(self) -> Schema:
        ds = self._load()
        self.metadata.update({k: v for k, v in ds.attrs.items() if k != "history"})
        return Schema(datashape=None, dtype=None, shape=(ds.sizes["atom"],), npartitions=1, extra_metadata={})

    def to_dask(self) -> xr.Dataset:
        return self._load()

    def _get_partition(self, i: int) -> xr.Dataset:
        return self._load()

    def read(self) -> xr.Dataset:
        return self._load()

    def _close(self) -> None:
        self._ds = None
