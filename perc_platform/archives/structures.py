"""Structures by UniProt accession or PDB id: choose a source (PDB or AlphaFold, with fallback), fetch, clean.

The choice is explained: :class:`StructureChoice` says which source and why, and each lookup is added to
the search history (:func:`perc_platform.archives.search_history`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from perc_platform.archives import _clean, alphafold, pdb, sifts, uniprot
from perc_platform.archives._fetch import archive_path, record_entry
from perc_platform.archives._formats import normalise_format
from perc_platform.archives._history import LookupRecord, record_lookup
from perc_platform.archives._http import Progress
from perc_platform.archives._ids import structure_id_kind, validate_pdb_id, validate_uniprot
from perc_platform.errors import DataNotFoundError, ParameterError
from perc_platform.storage.cache import atomic_file, entry_lock

__all__ = ["Source", "StructureChoice", "StructureFile", "fetch_structure", "find_structure"]

Source = Literal["pdb", "alphafold"]


@dataclass(frozen=True)
class StructureChoice:
    """Which structure a query resolves to, and why."""

    query: str
    source: Source
    source_id: str  # "PDB:1AKI" or "AFDB:AF-Q99J21-F1"
    accession: str | None = None
    pdb_id: str | None = None
    chain_id: str | None = None
    reason: str = ""
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class StructureFile:
    """A fetched (and maybe cleaned) structure file with everything needed to open it as a dataset."""

    path: Path
    format: str
    choice: StructureChoice
    url: str
    original: Path
    plddt: bool = False
    clean_report: _clean.CleanReport | None = None
    history: tuple[str, ...] = field(default_factory=tuple)


def _pdb_choice(query: str, accession: str | None, prefer: str) -> StructureChoice | None:
    if accession is None:
        pid = validate_pdb_id(query)
        return StructureChoice(query, "pdb", f"PDB:{pid}", pdb_id=pid, reason=f"PDB id {pid} asked for directly")
    ranked = sifts.rank_candidates(sifts.best_structures(accession))
    if not ranked:
        return None
    best = ranked[0]
    why = (f"preferred source {prefer!r}; " if prefer == "pdb" else f"fallback from {prefer!r}; ")
    why += f"best of {len(ranked)} PDB chain(s) mapped by SIFTS, ranked by coverage then resolution: {best.describe()}"
    return StructureChoice(query, "pdb", f"PDB:{best.pdb_id}", accession=accession, pdb_id=best.pdb_id,
                           chain_id=best.chain_id, reason=why,
                           candidates=tuple(c.describe() for c in ranked[:5]))


def _afdb_choice(query: str, accession: str | None, prefer: str) -> StructureChoice | None:
    if accession is None:
        return None
    models = alphafold.afdb_predictions(accession)
    if not models:
        return None
    model = alphafold.afdb_model(accession)
    why = (f"preferred source {prefer!r}" if prefer == "alphafold" else "fallback: no usable PDB entry") + \
        f"; AlphaFold DB model {model.entry_id} (version {model.latest_version}, served by the API)"
    return StructureChoice(query, "alphafold", f"AFDB:{model.entry_id}", accession=accession, reason=why,
                           candidates=tuple(m.entry_id for m in models))


def find_structure(query: str, *, prefer: Source = "pdb") -> StructureChoice:
    """Resolve a UniProt accession or PDB id to one structure without downloading it.

    Accessions: PDB chains from SIFTS ranked by coverage then resolution, or the AlphaFold DB model, in the
    order ``prefer`` gives, each falling back to the other. Raises DataNotFoundError when neither has one.
    """
    if prefer not in ("pdb", "alphafold"):
        raise ParameterError(f"prefer={prefer!r}: use 'pdb' or 'alphafold'")
    kind = structure_id_kind(query)
    accession = validate_uniprot(query) if kind == "uniprot" else None
    order = [_pdb_choice, _afdb_choice] if prefer == "pdb" else [_afdb_choice, _pdb_choice]
    if kind == "pdb":
        order = [_pdb_choice]
    tried = []
    for choose in order:
        choice = choose(query.strip().upper(), accession, prefer)
        if choice is not None:
            return choice
        tried.append("PDB (SIFTS best_structures)" if choose is _pdb_choice else "AlphaFold DB")
    record_lookup(LookupRecord(query=query, prefer=prefer, ok=False, tried=tried,
                               reason="no structure in " + " nor ".join(tried)))
    raise DataNotFoundError(f"no structure for {query}: nothing in {' nor in '.join(tried)}")


def _download(choice: StructureChoice, fmt: str, progress: Progress | None) -> tuple[Path, str, StructureChoice]:
    if choice.source == "pdb":
        assert choice.pdb_id is not None
        return pdb.fetch_pdb_file(choice.pdb_id, fmt, progress=progress), pdb.pdb_file_url(choice.pdb_id, fmt), choice
    assert choice.accession is not None
    path, _, url = alphafold.fetch_afdb_file(choice.accession, fmt, progress=progress)
    return path, url, choice


def _signal_ranges(choice: StructureChoice, path: Path) -> dict[str, list[tuple[int, int]]]:
    if choice.accession is None:
        raise ParameterError(f"removing signal peptides needs a UniProt accession; {choice.query} is a PDB id "
                             "(query by accession, or clean with signal=False)")
    signals = uniprot.signal_peptides(choice.accession)
    if not signals:
        return {}
    if choice.source == "pdb":
        assert choice.pdb_id is not None
        return _clean.map_signal_sifts(signals, sifts.segments_for(choice.accession, choice.pdb_id))
    model = alphafold.afdb_model(choice.accession)
    chains = [chain.name for chain in _clean.read_for_cleaning(path)[0]]
    return _clean.map_signal_identity(signals, chains, model.uniprot_start or 1)


def _cleaned(original: Path, choice: StructureChoice, fmt: str, options: _clean.CleanOptions
             ) -> tuple[Path, _clean.CleanReport]:
    ranges = _signal_ranges(choice, original) if options.signal else {}
    key = _clean.cleaned_key(original, options, choice.accession, ranges)
    target = archive_path("cleaned", f"{original.stem}.{options.tag()}.{key}.{fmt}")
    structure = _clean.read_for_cleaning(original)
    report = _clean.clean_structure(structure, options, ranges)
    with entry_lock(target):
        if not target.exists():  # same input, same options: gemmi writes the same file
            with atomic_file(target) as (handle, _):
                handle.write(_clean.structure_text(structure, fmt))
            record_entry("cleaned", f"{choice.source_id} {options.tag()}", target, original=original.name)
    return target, report


def fetch_structure(query: str, *, prefer: Source = "pdb", fmt: str = "cif",
                    clean: bool | _clean.CleanOptions = False, progress: Progress | None = None) -> StructureFile:
    """Find, download (once; cached) and optionally clean the structure for a UniProt accession or PDB id.

    If the chosen source's file turns out to be missing, the other source is tried. ``clean=True`` removes
    signal peptides (for accessions), hydrogens, waters and hetero groups and writes the cleaned file.
    """
    ext = normalise_format(fmt)
    choice = find_structure(query, prefer=prefer)
    tried: list[str] = []
    try:
        path, url, choice = _download(choice, ext, progress)
    except DataNotFoundError as exc:
        tried.append(f"{choice.source_id}: {exc}")
        if choice.accession is None:  # a PDB id asked for directly has no other source
            record_lookup(LookupRecord(query=query, prefer=prefer, ok=False, tried=tried, reason=str(exc)))
            raise
        other: Source = "alphafold" if choice.source == "pdb" else "pdb"
        fallback = (_afdb_choice if other == "alphafold" else _pdb_choice)(choice.query, choice.accession, other)
        if fallback is None:
            record_lookup(LookupRecord(query=query, prefer=prefer, ok=False, tried=tried, reason=str(exc)))
            raise DataNotFoundError(f"no structure file for {query}: {exc}; and the fallback "
                                    f"({'AlphaFold DB' if other == 'alphafold' else 'PDB'}) has none") from exc
        choice = replace(fallback, reason=f"{choice.source_id} file missing ({exc}); {fallback.reason}")
        path, url, choice = _download(choice, ext, progress)
    options = clean if isinstance(clean, _clean.CleanOptions) else (_clean.CleanOptions() if clean else None)
    if options is not None and options.signal and choice.accession is None:
        options = replace(options, signal=False)  # a bare PDB id has no UniProt features to map
    report = None
    final = path
    if options is not None:
        final, report = _cleaned(path, choice, ext, options)
    record_lookup(LookupRecord(query=query, prefer=prefer, source=choice.source, source_id=choice.source_id,
                               url=url, reason=choice.reason, tried=tried + list(choice.candidates)))
    history = [f"fetched {choice.source_id} from {url}: {choice.reason}"]
    if report is not None:
        history.append(report.summary())
    return StructureFile(final, ext, choice, url, path, plddt=choice.source == "alphafold",
                         clean_report=report, history=tuple(history))
