"""UniProt sequence features from the EBI Proteins API (signal peptides for cleaning)."""

from __future__ import annotations

from perc_platform.archives._fetch import archive_path, fetch_json
from perc_platform.archives._http import current_config
from perc_platform.archives._ids import validate_uniprot
from perc_platform.archives._models import ProteinFeatures

__all__ = ["features_url", "fetch_features", "signal_peptides"]


def features_url(accession: str, categories: str = "MOLECULE_PROCESSING") -> str:
    acc = validate_uniprot(accession)
    return f"{current_config().proteins_api_url}/features/{acc}?categories={categories}"


def fetch_features(accession: str, *, refresh: bool = False) -> ProteinFeatures:
    """The MOLECULE_PROCESSING features (signal peptides, propeptides, chains) of ``accession`` (cached)."""
    acc = validate_uniprot(accession)
    data = fetch_json(features_url(acc), archive_path("proteins", "features", f"{acc}.json"),
                      what=f"UniProt features of {acc}", kind="uniprot-features", refresh=refresh)
    return ProteinFeatures.model_validate(data)


def signal_peptides(accession: str, *, refresh: bool = False) -> list[tuple[int, int]]:
    """UniProt ranges (1-based, inclusive) of the signal peptides of ``accession``; [] when it has none."""
    return fetch_features(accession, refresh=refresh).signal_peptides()
