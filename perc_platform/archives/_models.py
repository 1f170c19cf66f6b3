"""Pydantic models of the archive answers we rely on; unknown fields are ignored (services add fields)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AfdbPrediction", "EmdbEntry", "ProteinFeatures", "SiftsMapping", "UniProtFeature"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SiftsMapping(_Answer):
    """One row of PDBe ``mappings/best_structures/{accession}``: a PDB chain segment and its UniProt range."""

    pdb_id: str
    chain_id: str
    entity_id: int | None = None
    start: int
    end: int
    unp_start: int
    unp_end: int
    coverage: float = 0.0
    resolution: float | None = None
    experimental_method: str | None = None
    tax_id: int | None = None
    preferred_assembly_id: int | None = None

    def to_structure(self, unp_position: int) -> int:
        """PDB residue number of UniProt position ``unp_position`` inside this segment (offset mapping)."""
        return unp_position - self.unp_start + self.start


class AfdbPrediction(_Answer):
    """One model from the AlphaFold DB ``prediction/{accession}`` answer."""

    entry_id: str = Field(alias="entryId")
    uniprot_accession: str = Field(alias="uniprotAccession")
    uniprot_start: int | None = Field(None, alias="uniprotStart")
    uniprot_end: int | None = Field(None, alias="uniprotEnd")
    latest_version: int | None = Field(None, alias="latestVersion")
    model_created_date: str | None = Field(None, alias="modelCreatedDate")
    cif_url: str | None = Field(None, alias="cifUrl")
    pdb_url: str | None = Field(None, alias="pdbUrl")
    global_metric_value: float | None = Field(None, alias="globalMetricValue")
    uniprot_description: str | None = Field(None, alias="uniprotDescription")
    organism_scientific_name: str | None = Field(None, alias="organismScientificName")


class UniProtFeature(_Answer):
    """A sequence feature from the EBI Proteins API (begin/end are UniProt positions, served as strings)."""

    type: str
    category: str | None = None
    begin: int | None = None
    end: int | None = None
    description: str | None = None

    @field_validator("begin", "end", mode="before")
    @classmethod
    def _position(cls, value: Any) -> int | None:
        # Uncertain ends are served as "~", "<1" or ">147": keep the number, drop the qualifier.
        if value is None or isinstance(value, int):
            return value
        digits = "".join(ch for ch in str(value) if ch.isdigit())
        return int(digits) if digits else None


class ProteinFeatures(_Answer):
    """``features/{accession}`` (or a whole Proteins API entry): its accession, sequence and features."""

    accession: str
    sequence: str | None = None
    features: list[UniProtFeature] = Field(default_factory=list)

    @field_validator("sequence", mode="before")
    @classmethod
    def _sequence(cls, value: Any) -> Any:
        # The entry endpoint nests the sequence as {"sequence": "...", "length": ...}.
        return value.get("sequence") if isinstance(value, dict) else value

    def signal_peptides(self) -> list[tuple[int, int]]:
        """UniProt ranges (1-based, inclusive) of the SIGNAL features."""
        return [(f.begin, f.end) for f in self.features
                if f.type.upper() == "SIGNAL" and f.begin is not None and f.end is not None]


def _value(node: Any) -> Any:
    return node.get("valueOf_") if isinstance(node, dict) else node


class EmdbEntry(_Answer):
    """The parts of the EMDB ``entry/EMD-N`` answer we use: id, title, resolution, fitted PDB ids, contour."""

    emdb_id: str
    admin: dict[str, Any] = Field(default_factory=dict)
    crossreferences: dict[str, Any] = Field(default_factory=dict)
    structure_determination_list: dict[str, Any] = Field(default_factory=dict)
    map: dict[str, Any] = Field(default_factory=dict)

    @property
    def title(self) -> str | None:
        return self.admin.get("title")

    @property
    def resolution(self) -> float | None:
        """Resolution (A) of the final reconstruction, if the entry states one."""
        for determination in self.structure_determination_list.get("structure_determination", []) or []:
            for processing in determination.get("image_processing", []) or []:
                final = (processing or {}).get("final_reconstruction") or {}
                value = _value(final.get("resolution"))
                if value not in (None, ""):
                    return float(value)
        return None

    @property
    def fitted_pdb_ids(self) -> list[str]:
        """PDB ids of the models fitted into this map (upper case)."""
        refs = (self.crossreferences.get("pdb_list") or {}).get("pdb_reference") or []
        return [str(ref["pdb_id"]).upper() for ref in refs if isinstance(ref, dict) and ref.get("pdb_id")]

    @property
    def contour_level(self) -> float | None:
        """The primary (author-recommended) contour level, if given."""
        contours = (self.map.get("contour_list") or {}).get("contour") or []
        for contour in contours:
            if isinstance(contour, dict) and contour.get("primary", True) and contour.get("level") is not None:
                return float(_value(contour["level"]))
        return None
