"""The AlphaFold DB: predictions by UniProt accession, model files through the URLs the API serves."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from perc_platform.archives._fetch import METADATA_TTL, archive_path, fetch_file, fetch_json
from perc_platform.archives._formats import check_structure_file, normalise_format
from perc_platform.archives._http import Progress, check_url, current_config
from perc_platform.archives._ids import validate_uniprot
from perc_platform.archives._models import AfdbPrediction
from perc_platform.errors import DataNotFoundError, RemoteError

__all__ = ["afdb_model", "afdb_predictions", "fetch_afdb_file", "prediction_url"]

_MODEL_FILE = re.compile(r"AF-[A-Z0-9]+-F[0-9]+-model_v[0-9]+\.(cif|pdb)")


def prediction_url(accession: str) -> str:
    return f"{current_config().afdb_api_url}/prediction/{validate_uniprot(accession)}"


def afdb_predictions(accession: str, *, refresh: bool = False) -> list[AfdbPrediction]:
    """The models the AlphaFold DB holds for ``accession`` ([] when none; the answer is cached)."""
    acc = validate_uniprot(accession)
    data = fetch_json(prediction_url(acc), archive_path("afdb", "prediction", f"{acc}.json"),
                      what=f"AlphaFold DB prediction for {acc}", kind="afdb-prediction", missing=[],
                      refresh=refresh, ttl=METADATA_TTL)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise RemoteError(f"AlphaFold DB prediction for {acc}: expected a JSON list, got {type(data).__name__}")
    return [AfdbPrediction.model_validate(item) for item in data]


def afdb_model(accession: str, *, refresh: bool = False) -> AfdbPrediction:
    """The model for the whole protein (fragment F1 of the accession itself), else the first served."""
    acc = validate_uniprot(accession)
    models = afdb_predictions(acc, refresh=refresh)
    if not models:
        raise DataNotFoundError(f"the AlphaFold DB has no prediction for {acc} ({prediction_url(acc)})")
    exact = [m for m in models if m.uniprot_accession.upper() == acc and m.entry_id.upper() == f"AF-{acc}-F1"]
    return (exact or models)[0]


def fetch_afdb_file(accession: str, fmt: str = "cif", *, progress: Progress | None = None,
                    refresh: bool = False) -> tuple[Path, AfdbPrediction, str]:
    """The model file of ``accession`` in the cache (downloaded once), its API record and its URL.

    The file URL is the ``cifUrl``/``pdbUrl`` the API served (so the model version is whatever is
    current), and it is followed only if its host is a configured endpoint.
    """
    ext = normalise_format(fmt)
    model = afdb_model(accession, refresh=refresh)
    url = model.cif_url if ext == "cif" else model.pdb_url
    if not url:
        raise DataNotFoundError(f"the AlphaFold DB prediction {model.entry_id} lists no {ext} file URL")
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not _MODEL_FILE.fullmatch(name):
        raise RemoteError(f"the AlphaFold DB served an unexpected model file name {name!r} ({url}); "
                          "expected AF-<accession>-F<n>-model_v<k>.<ext>")
    cached = archive_path("afdb", name)
    if cached.exists() and not refresh:
        # Model files never change: a cached one is read without asking the (maybe since re-pointed or
        # removed) endpoint its cached prediction record names.
        return cached, model, url
    check_url(url)
    path = fetch_file(url, archive_path("afdb", name), what=f"AlphaFold DB model {model.entry_id} ({ext})",
                      kind="afdb-model", validate=lambda p: check_structure_file(p, ext), progress=progress,
                      refresh=refresh)
    return path, model, url
