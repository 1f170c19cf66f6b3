"""PDBe SIFTS ``best_structures``: UniProt accession -> PDB chains, ranked by coverage, then resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perc_platform.archives._fetch import METADATA_TTL, archive_path, fetch_json
from perc_platform.archives._http import current_config
from perc_platform.archives._ids import validate_pdb_id, validate_uniprot
from perc_platform.archives._models import SiftsMapping
from perc_platform.errors import RemoteError

__all__ = ["PdbCandidate", "best_structures", "best_structures_url", "rank_candidates", "segments_for"]


@dataclass(frozen=True)
class PdbCandidate:
    """One PDB chain mapped to an accession, with all its mapped segments."""

    pdb_id: str
    chain_id: str
    coverage: float
    resolution: float | None
    experimental_method: str | None
    segments: tuple[SiftsMapping, ...]

    def describe(self) -> str:
        res = f"{self.resolution:g} A" if self.resolution is not None else "no resolution"
        return f"{self.pdb_id} chain {self.chain_id} (coverage {self.coverage:.3f}, {res})"


def best_structures_url(accession: str) -> str:
    return f"{current_config().pdbe_api_url}/mappings/best_structures/{validate_uniprot(accession)}"


def best_structures(accession: str, *, refresh: bool = False) -> list[SiftsMapping]:
    """All SIFTS rows for ``accession`` in the service's order ([] when nothing maps; cached)."""
    acc = validate_uniprot(accession)
    data = fetch_json(best_structures_url(acc), archive_path("pdbe", "best_structures", f"{acc}.json"),
                      what=f"PDBe best_structures for {acc}", kind="pdbe-best-structures", missing={},
                      refresh=refresh, ttl=METADATA_TTL)
    if not isinstance(data, dict):
        raise RemoteError(f"PDBe best_structures for {acc}: expected a JSON object, got {type(data).__name__}")
    rows: list[Any] = (data.get(acc) or next(iter(data.values()), [])) if data else []
    return [SiftsMapping.model_validate(row) for row in rows]


def rank_candidates(mappings: list[SiftsMapping]) -> list[PdbCandidate]:
    """PDB chains ordered best first: highest coverage, then best (lowest) resolution, then service order."""
    groups: dict[tuple[str, str], list[SiftsMapping]] = {}
    for row in mappings:
        groups.setdefault((row.pdb_id.upper(), row.chain_id), []).append(row)
    candidates = []
    for (pdb_id, chain), rows in groups.items():
        resolutions = [r.resolution for r in rows if r.resolution is not None]
        candidates.append(PdbCandidate(pdb_id, chain, max(r.coverage for r in rows),
                                       min(resolutions) if resolutions else None,
                                       rows[0].experimental_method, tuple(rows)))
    # sorted() is stable, so equal candidates keep the service's own order.
    return sorted(candidates, key=lambda c: (-c.coverage, c.resolution if c.resolution is not None else math.inf))


def segments_for(accession: str, pdb_id: str, *, refresh: bool = False) -> list[SiftsMapping]:
    """The SIFTS segments mapping ``accession`` onto entry ``pdb_id`` (all chains)."""
    pid = validate_pdb_id(pdb_id)
    return [row for row in best_structures(accession, refresh=refresh) if row.pdb_id.upper() == pid]
