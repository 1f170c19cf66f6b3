"""``structure``: a structure by UniProt accession or PDB id (PDB or AlphaFold DB, with fallback) as a Dataset."""

from __future__ import annotations

from typing import Any, Literal, cast

import xarray as xr
from intake.source.base import Schema
from pydantic import model_validator

from intake_perc._lazy import PercSource
from intake_perc._params import SourceParams
from perc_platform.datasets.structures import open_structure_by_id


class StructureParams(SourceParams):
    uniprot_id: str | None = None
    pdb_id: str | None = None
    prefer: Literal["pdb", "alphafold"] = "pdb"
    format: Literal["cif", "pdb"] = "cif"
    clean: bool = False
    select: Literal["chain", "entry"] = "chain"
    ligands: bool = False

    @model_validator(mode="after")
    def _one_id(self) -> StructureParams:
        if self.uniprot_id and self.pdb_id:
            raise ValueError("give uniprot_id or pdb_id, not both")
        return self


class StructureSource(PercSource):
    """An atomic structure (``position`` (atom, axis) and per-atom coords); one partition."""

    name = "structure"
    Params = StructureParams
    partition_access = True

    def __init__(self, uniprot_id: str | None = None, pdb_id: str | None = None,
                 metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(metadata=metadata, uniprot_id=uniprot_id, pdb_id=pdb_id, **kwargs)

    def _open(self) -> xr.Dataset:
        p = cast(StructureParams, self.params)
        query = p.uniprot_id or p.pdb_id
        if not query:
            from perc_platform.errors import ParameterError

            raise ParameterError("the 'structure' source needs uniprot_id (e.g. 'P00698') or pdb_id (e.g. '1AKI')")
        return open_structure_by_id(query, prefer=p.prefer, fmt=p.format, clean=p.clean, select=p.select,
                                    ligands=p.ligands)

    def _dataset(self, opened: xr.Dataset) -> xr.Dataset:
        # The file is fetched and parsed on first use (it is small); its data variables are dask-backed like
        # every other source's, and read() returns them in memory.
        return opened.copy(data={k: v.chunk().data for k, v in opened.data_vars.items()})

    def _schema_of(self, ds: xr.Dataset) -> Schema:
        return Schema(datashape=None, dtype=None, shape=(ds.sizes["atom"],), npartitions=1, extra_metadata={})

    def _get_partition(self, i: int) -> xr.Dataset:
        return self.read()
