"""Structures by UniProt accession or PDB id: choose a source (PDB or AlphaFold, with fallback), fetch, clean.

The choice is explained: :class:`StructureChoice` says which source and why, and each lookup is added to
the search history (:func:`perc_platform.archives.search_history`).
"""

from __future__ import annotations

import os
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


def _download(choice: StructureChoice, fmt: str, progress: Progress | None
              ) -> tuple[Path, str, StructureChoice, str]:
    """The file of ``choice`` in ``fmt``, or in the other format when the archive lacks that one (as profet does:
    large PDB entries have no PDB-format file); returns (path, url, choice, format fetched)."""
    first: DataNotFoundError | None = None
    for ext in (fmt, "pdb" if fmt == "cif" else "cif"):
        try:
            if choice.source == "pdb":
                assert choice.pdb_id is not None
                path = pdb.fetch_pdb_file(choice.pdb_id, ext, progress=progress)
                url = pdb.pdb_file_url(choice.pdb_id, ext)
            else:
                assert choice.accession is not None
                path, _, url = alphafold.fetch_afdb_file(choice.accession, ext, progress=progress)
        except DataNotFoundError as exc:
            first = first or exc
            continue
        if ext != fmt:
            choice = replace(choice, reason=f"{choice.reason}; no {fmt} file, {ext} fetched instead")
        return path, url, choice, ext
    assert first is not None
    raise first  # the error for the format asked for


def _next_pdb_choices(choice: StructureChoice) -> list[StructureChoice]:
    """The SIFTS candidates after ``choice`` (the best), in rank order, as choices of their own."""
    if choice.source != "pdb" or choice.accession is None:
        return []
    ranked = sifts.rank_candidates(sifts.best_structures(choice.accession))
    seen = {choice.pdb_id}
    out = []
    for rank, cand in enumerate(ranked[1:], start=2):
        if cand.pdb_id in seen:
            continue
        seen.add(cand.pdb_id)
        out.append(replace(choice, source_id=f"PDB:{cand.pdb_id}", pdb_id=cand.pdb_id, chain_id=cand.chain_id,
                           reason=f"SIFTS candidate {rank} of {len(ranked)}: {cand.describe()}"))
    return out


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
                    clean: bool | _clean.CleanOptions = False, progress: Progress | None = None,
                    save_to: str | os.PathLike[str] | None = None) -> StructureFile:
    """Find, download (once; cached) and optionally clean the structure for a UniProt accession or PDB id.

    If the chosen file is missing (404), the next SIFTS candidates are tried in rank order, then the other
    archive; an entry without the asked-for format gives the other one (``StructureFile.format`` says which).
    ``clean=True`` removes signal peptides (for accessions), hydrogens, waters and hetero groups and writes
    the cleaned file. ``save_to`` copies the final file into that folder too (profet's ``save_directory``);
    ``StructureFile.path`` is then the copy.
    """
    ext = normalise_format(fmt)
    choice = find_structure(query, prefer=prefer)
    tried: list[str] = []
    # The chosen file, then (for accessions) the next SIFTS candidates in rank order, then the other archive.
    queue = [choice, *_next_pdb_choices(choice)]
    fetched: tuple[Path, str, StructureChoice, str] | None = None
    errors: list[DataNotFoundError] = []
    while queue and fetched is None:
        candidate = queue.pop(0)
        try:
            fetched = _download(candidate, ext, progress)
        except DataNotFoundError as exc:
            errors.append(exc)
            tried.append(f"{candidate.source_id}: {exc}")
            if not queue and candidate.accession is not None and candidate.source == choice.source:
                other: Source = "alphafold" if choice.source == "pdb" else "pdb"
                fallback = (_afdb_choice if other == "alphafold" else _pdb_choice)(choice.query, choice.accession,
                                                                                   other)
                if fallback is not None:
                    queue = [replace(fallback, reason=f"{'; '.join(tried)}; {fallback.reason}"),
                             *_next_pdb_choices(fallback)]
    if fetched is None:
        reason = "; ".join(tried)
        record_lookup(LookupRecord(query=query, prefer=prefer, ok=False, tried=tried, reason=reason))
        if len(errors) == 1:
            raise errors[0]
        raise DataNotFoundError(f"no structure file for {query}: {reason}") from errors[0]
    path, url, choice, got = fetched
    if tried:
        choice = replace(choice, reason=f"{'; '.join(tried)}; {choice.reason}")
    options = clean if isinstance(clean, _clean.CleanOptions) else (_clean.CleanOptions() if clean else None)
    if options is not None and options.signal and choice.accession is None:
        options = replace(options, signal=False)  # a bare PDB id has no UniProt features to map
    report = None
    final = path
    if options is not None:
        final, report = _cleaned(path, choice, got, options)
    record_lookup(LookupRecord(query=query, prefer=prefer, source=choice.source, source_id=choice.source_id,
                               url=url, reason=choice.reason, tried=tried + list(choice.candidates)))
    history = [f"fetched {choice.source_id} from {url}: {choice.reason}"]
    if report is not None:
        history.append(report.summary())
    if save_to is not None:
        final = _save_copy(final, Path(save_to), choice, got)
        history.append(f"saved a copy to {final}")
    return StructureFile(final, got, choice, url, path, plddt=choice.source == "alphafold",
                         clean_report=report, history=tuple(history))


def _save_copy(source: Path, folder: Path, choice: StructureChoice, ext: str) -> Path:
    """Copy ``source`` into ``folder`` atomically as ``<id>[.<cleaning>].<ext>`` (e.g. ``1AKI.cif``)."""
    name = choice.source_id.split(":", 1)[1]
    if source.parent.name == "cleaned":
        name = f"{name}.{source.name.split('.')[1]}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.{ext}"
    with atomic_file(target) as (handle, _):
        handle.write(source.read_bytes())
    return target
