"""The demo's mini archive, made on the spot: a structure, its simulated map, and a mini EMPIAR entry.

Layout under ``root`` (served by the loopback archive: RCSB/EMDB routes index files by name, EMPIAR routes
serve ``empiar/<number>/data/...`` with the entry JSON generated from the tree):

* ``structures/9dem.pdb`` and ``9dem.cif``: a synthetic four-helix bundle (PDB id ``9DEM``);
* ``maps/emd_90001.map``: its molmap-style simulated map (``EMD-90001``);
* ``empiar/90001/data/particles/stack_N.mrcs`` + ``particles.star``: simulated particles with CTF and
  noise, in several stacks with one RELION 3.1 STAR file (``EMPIAR-90001``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import gemmi
import numpy as np
import pandas as pd

__all__ = ["DemoArchive", "build_mini_archive", "real_data_archive"]

PDB_ID, EMDB_ID, EMPIAR_ID = "9DEM", "EMD-90001", "EMPIAR-90001"


@dataclasses.dataclass(frozen=True)
class DemoArchive:
    """Where the demo's archive lives and which ids it serves."""

    root: Path
    pdb_id: str
    emdb_id: str
    empiar_id: str
    star: str  # path of the STAR file inside the EMPIAR entry
    resolution: float | None  # of the map, where known (also in the archive's EMDB entry record)
    indexed: tuple[Path, ...] = ()  # folders whose structures and maps the loopback archive serves


def build_mini_archive(root: Path, *, n_particles: int = 1200, box: int = 48, pixel_size: float = 1.6,
                       resolution: float = 6.0, seed: int = 0, say: object = print) -> DemoArchive:
    """Make the mini archive under ``root`` (kept between runs: files already there are reused)."""
    import perc_platform as pp
    from perc_platform import simulate
    from perc_platform.io.mrc_writer import write_volume
    from perc_platform.processing import write_particles
    from perc_platform.testing.structures import helix_bundle

    structures, maps = root / "structures", root / "maps"
    particles_dir = root / "empiar" / EMPIAR_ID.split("-")[1] / "data" / "particles"
    pdb = structures / f"{PDB_ID.lower()}.pdb"
    if not pdb.exists():
        say(f"building a synthetic four-helix bundle ({PDB_ID})")  # type: ignore[operator]
        helix_bundle(pdb, seed=seed)
        gemmi.read_structure(str(pdb)).make_mmcif_document().write_file(str(pdb.with_suffix(".cif")))
    structure = pp.open_structure(str(pdb))
    emd = maps / f"emd_{EMDB_ID.split('-')[1]}.map"
    if not emd.exists():
        say(f"simulating its density map at {resolution} A ({EMDB_ID})")  # type: ignore[operator]
        density = simulate.density_map(structure, voxel_size=pixel_size, resolution=resolution).compute()
        origin = [float(density[d][0]) for d in ("x", "y", "z")]
        write_volume(emd, density.values.astype(np.float32), voxel_size=pixel_size, origin=origin)
    record = maps / f"emdb_entry_{EMDB_ID}.json"
    if not record.exists():
        import json

        from perc_platform.demo._pairs import entry_record

        record.write_text(json.dumps(entry_record(EMDB_ID, PDB_ID, resolution, "demo four-helix bundle")))
    star = particles_dir / "particles.star"
    if not star.exists():
        say(f"simulating {n_particles} particles ({box} px, CTF, SNR 0.1) for {EMPIAR_ID}")  # type: ignore[operator]
        images = simulate.particles(structure, n=n_particles, box=box, pixel_size=pixel_size, snr=0.1, seed=seed)
        per_stack = -(-n_particles // 3)
        particles_dir.mkdir(parents=True, exist_ok=True)
        stars = []
        for i, start in enumerate(range(0, n_particles, per_stack)):
            part = images.isel(particle=slice(start, start + per_stack))
            _, part_star = write_particles(part, particles_dir / f"stack_{i + 1}.mrcs")
            stars.append(part_star)
        _merge_stars([p for p in stars if p is not None], star)
    return DemoArchive(root=root, pdb_id=PDB_ID, emdb_id=EMDB_ID, empiar_id=EMPIAR_ID,
                       star="data/particles/particles.star", resolution=resolution, indexed=(structures, maps))


def _merge_stars(parts: list[Path], target: Path) -> None:
    """One STAR file for several stacks: the first file's optics, every file's particle rows in turn."""
    from perc_platform.io.star import read_star
    from perc_platform.io.star_writer import write_star

    tables = [read_star(str(part)) for part in parts]
    blocks: dict[str, pd.DataFrame] = {}
    if tables[0].optics is not None:
        blocks["optics"] = tables[0].optics
    blocks["particles"] = pd.concat([t.particles for t in tables], ignore_index=True)
    write_star(target, blocks)
    for part in parts:
        part.unlink()


def _usable_rows(star: Path) -> int:
    """Rows of a STAR file whose stack (``000001@name.mrcs``) sits beside it."""
    import re

    names = re.findall(r"\d+@(\S+\.mrcs)", star.read_text(errors="replace"))
    return sum(1 for name in names if (star.parent / Path(name).name).exists())


def real_data_archive(source: Path, root: Path) -> DemoArchive:
    """An archive over a folder of real files (e.g. ../shared/data): a map with its own model, and particles.

    The map and model are paired by their EMDB/PDB ids (:func:`perc_platform.demo._pairs.find_pairs`), never
    by the first names that match; a pair with a known resolution is preferred, then the smallest map.
    They are linked into ``root`` under the names the loopback archive serves, with an EMDB entry record
    carrying the resolution and the fitted model.
    """
    import json

    from perc_platform.demo._pairs import entry_record, find_pairs
    from perc_platform.errors import DataNotFoundError

    pairs = find_pairs(source)
    stars = sorted(p for p in source.rglob("*.star") if list(p.parent.glob("*.mrcs")))
    if not (pairs and stars):
        raise DataNotFoundError(f"{source} needs a map with its model (an emdb_entry_EMD-N.json naming the fitted "
                                "PDB id, a MANIFEST.md pairs table, or a map named emd_N_<PDBID>...) and a STAR "
                                "file beside its .mrcs stacks for `perc demo --real-data`")
    pair = min(pairs, key=lambda p: (p.resolution is None, p.map_path.stat().st_size, p.map_path.name))
    structures, maps = root / "structures", root / "maps"
    number = pair.emdb_id.split("-")[1]
    links = {structures / f"{pair.pdb_id.lower()}{pair.model_path.suffix.lower()}": pair.model_path,
             maps / f"emd_{number}{pair.map_path.suffix.lower()}": pair.map_path}
    entry = root / "empiar" / EMPIAR_ID.split("-")[1] / "data" / "particles"
    star = max(stars, key=_usable_rows)  # the STAR file with the most particles whose stacks are there
    links.update({entry / item.name: item for item in [star, *star.parent.glob("*.mrcs")]})
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(target.resolve(), link)
    record = entry_record(pair.emdb_id, pair.pdb_id, pair.resolution,
                          f"{pair.emdb_id} with {pair.pdb_id} ({pair.evidence})")
    (maps / f"emdb_entry_{pair.emdb_id}.json").write_text(json.dumps(record))
    return DemoArchive(root=root, pdb_id=pair.pdb_id, emdb_id=pair.emdb_id, empiar_id=EMPIAR_ID,
                       star=f"data/particles/{star.name}", resolution=pair.resolution,  # type: ignore[arg-type]
                       indexed=(structures, maps))
