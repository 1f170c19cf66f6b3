"""Archive clients: RCSB PDB files, PDBe SIFTS, AlphaFold DB, EBI Proteins API (UniProt features), EMDB.

Base URLs come from config (``PERC_*_URL``); only configured hosts are contacted. Everything fetched lands
once in the cache (``PERC_CACHE_DIR``), atomically, and is served from there afterwards (also offline).
"""

from perc_platform.archives._clean import CleanOptions as CleanOptions
from perc_platform.archives._clean import CleanReport as CleanReport
from perc_platform.archives._fetch import FetchOutcome as FetchOutcome
from perc_platform.archives._fetch import fetch_many as fetch_many
from perc_platform.archives._fetch import text_progress as text_progress
from perc_platform.archives._history import LookupRecord as LookupRecord
from perc_platform.archives._history import search_history as search_history
from perc_platform.archives._ids import validate_emdb_id as validate_emdb_id
from perc_platform.archives._ids import validate_empiar_id as validate_empiar_id
from perc_platform.archives._ids import validate_pdb_id as validate_pdb_id
from perc_platform.archives._ids import validate_uniprot as validate_uniprot
from perc_platform.archives._models import AfdbPrediction as AfdbPrediction
from perc_platform.archives._models import EmdbEntry as EmdbEntry
from perc_platform.archives._models import ProteinFeatures as ProteinFeatures
from perc_platform.archives._models import SiftsMapping as SiftsMapping
from perc_platform.archives.alphafold import afdb_predictions as afdb_predictions
from perc_platform.archives.alphafold import fetch_afdb_file as fetch_afdb_file
from perc_platform.archives.emdb import fetch_emdb_entry as fetch_emdb_entry
from perc_platform.archives.emdb import fetch_emdb_map as fetch_emdb_map
from perc_platform.archives.pdb import fetch_pdb_file as fetch_pdb_file
from perc_platform.archives.sifts import PdbCandidate as PdbCandidate
from perc_platform.archives.sifts import best_structures as best_structures
from perc_platform.archives.sifts import rank_candidates as rank_candidates
from perc_platform.archives.structures import StructureChoice as StructureChoice
from perc_platform.archives.structures import StructureFile as StructureFile
from perc_platform.archives.structures import fetch_structure as fetch_structure
from perc_platform.archives.structures import find_structure as find_structure
from perc_platform.archives.uniprot import fetch_features as fetch_features
from perc_platform.archives.uniprot import signal_peptides as signal_peptides

__all__ = [
    "AfdbPrediction", "CleanOptions", "CleanReport", "EmdbEntry", "FetchOutcome", "LookupRecord", "PdbCandidate",
    "ProteinFeatures", "SiftsMapping", "StructureChoice", "StructureFile", "afdb_predictions", "best_structures",
    "fetch_afdb_file", "fetch_emdb_entry", "fetch_emdb_map", "fetch_features", "fetch_many", "fetch_pdb_file",
    "fetch_structure", "find_structure", "rank_candidates", "search_history", "signal_peptides", "text_progress",
    "validate_emdb_id", "validate_empiar_id", "validate_pdb_id", "validate_uniprot",
]
