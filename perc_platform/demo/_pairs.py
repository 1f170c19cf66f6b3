"""Which map goes with which model in a folder of real files, by the EMDB and PDB ids they carry.

Evidence, strongest first (a pair needs one of them; file names alone that merely look alike never pair):

1. an EMDB entry record ``emdb_entry_EMD-N.json`` (the archive's JSON) naming fitted PDB ids;
2. a ``MANIFEST.md`` with a map + model pairs table (rows naming ``maps/...`` and ``structures/...``);
3. a map named ``emd_N_<PDB id>...`` (a crop or segment around that model), with a model file of that id.

A model file belongs to PDB id ``1ABC`` when its name is ``1abc.pdb``/``.cif`` or starts ``1ABC_``.
Resolutions come from the entry record, else from a MANIFEST row of the same EMDB entry stating
"resolution X A".
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

__all__ = ["MapModelPair", "find_pairs"]

_MAP = re.compile(r"(?:emd_|EMD-)([0-9]{4,6})(?:_([0-9][A-Za-z0-9]{3})(?![A-Za-z0-9]))?[^/]*\.(?:map|mrc)", re.I)
_MODEL = re.compile(r"([0-9][A-Za-z0-9]{3})(?:_[^/]*)?\.(?:pdb|cif)", re.I)
_RESOLUTION = re.compile(r"resolution\s+([0-9]+(?:\.[0-9]+)?)\s*(?:A|Å)\b", re.I)


@dataclasses.dataclass(frozen=True)
class MapModelPair:
    """A map, the model that belongs to it, their ids, the resolution if known and why they pair."""

    map_path: Path
    model_path: Path
    emdb_id: str
    pdb_id: str
    resolution: float | None
    evidence: str


def _models(source: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in sorted(source.rglob("*")):
        if m := _MODEL.fullmatch(path.name):
            out.setdefault(m.group(1).upper(), []).append(path)
    return out


def _manifest(source: Path) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """``(map name, model name)`` rows of MANIFEST pair tables, and resolutions stated per EMDB number."""
    pairs: list[tuple[str, str]] = []
    resolutions: dict[str, float] = {}
    for manifest in sorted(source.rglob("MANIFEST.md")):
        for line in manifest.read_text(errors="replace").splitlines():
            cells = re.findall(r"`(maps/[^`]+|structures/[^`]+)`", line)
            maps = [Path(c).name for c in cells if c.startswith("maps/")]
            models = [Path(c).name for c in cells if c.startswith("structures/")]
            if len(maps) == 1 and len(models) == 1 and line.lstrip().startswith("| `maps/"):
                pairs.append((maps[0], models[0]))
            if maps and (m := _MAP.fullmatch(maps[0])) and (r := _RESOLUTION.search(line)):
                resolutions.setdefault(str(int(m.group(1))), float(r.group(1)))
    return pairs, resolutions


def find_pairs(source: Path) -> list[MapModelPair]:
    """Every map + model pair in ``source`` for which the folder gives evidence (see the module docstring)."""
    maps = {p.name: p for p in sorted(source.rglob("*")) if _MAP.fullmatch(p.name)}
    models = _models(source)
    by_name = {p.name: p for paths in models.values() for p in paths}
    manifest_pairs, resolutions = _manifest(source)
    entries: dict[str, dict[str, object]] = {}
    for path in sorted(source.rglob("emdb_entry_EMD-*.json")):
        from perc_platform.archives._models import EmdbEntry

        entry = EmdbEntry.model_validate(json.loads(path.read_text()))
        entries[str(int(entry.emdb_id.split("-")[1]))] = {"pdb": entry.fitted_pdb_ids, "res": entry.resolution}
    found: dict[tuple[str, str], MapModelPair] = {}

    def add(map_name: str, model: Path, pdb_id: str, evidence: str) -> None:
        number = str(int(_MAP.fullmatch(map_name).group(1)))  # type: ignore[union-attr]
        record = entries.get(number, {})
        resolution = record.get("res") or resolutions.get(number)
        found.setdefault((map_name, model.name), MapModelPair(maps[map_name], model, f"EMD-{number}", pdb_id,
                                                              resolution, evidence))  # type: ignore[arg-type]

    for name in maps:
        number = str(int(_MAP.fullmatch(name).group(1)))  # type: ignore[union-attr]
        for pdb_id in entries.get(number, {}).get("pdb", []):  # type: ignore[attr-defined]
            for model in models.get(pdb_id, []):
                add(name, model, pdb_id, f"EMDB entry EMD-{number} lists fitted model {pdb_id}")
    for map_name, model_name in manifest_pairs:
        if map_name in maps and model_name in by_name and (m := _MODEL.fullmatch(model_name)):
            add(map_name, by_name[model_name], m.group(1).upper(), "MANIFEST map + model pair")
    for name in maps:
        pdb = _MAP.fullmatch(name).group(2)  # type: ignore[union-attr]
        for model in models.get((pdb or "").upper(), []):
            add(name, model, pdb.upper(), f"map name {name} carries PDB id {pdb.upper()}")  # type: ignore[union-attr]
    return list(found.values())


def entry_record(emdb_id: str, pdb_id: str, resolution: float | None, title: str) -> dict[str, object]:
    """An EMDB ``/entry/EMD-N`` JSON answer (the fields ``EmdbEntry`` reads) for the loopback archive."""
    record: dict[str, object] = {"emdb_id": emdb_id, "admin": {"title": title},
                                 "crossreferences": {"pdb_list": {"pdb_reference": [{"pdb_id": pdb_id.lower()}]}}}
    if resolution is not None:
        final = {"resolution": {"valueOf_": float(resolution), "units": "Å", "res_type": "BY AUTHOR"}}
        record["structure_determination_list"] = {
            "structure_determination": [{"image_processing": [{"final_reconstruction": final}]}]}
    return record
