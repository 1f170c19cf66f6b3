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
    resolution: float
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
    """An archive over a folder of real files (e.g. ../shared/data): its structures, maps and particles."""
    import re

    pdbs = sorted(p for p in source.rglob("*") if re.fullmatch(r"[0-9][a-z0-9]{3}\.(pdb|cif)", p.name, re.I))
    maps = sorted(p for p in source.rglob("*") if re.fullmatch(r"emd_\d+\.map", p.name, re.I))
    stars = sorted(p for p in source.rglob("*.star") if list(p.parent.glob("*.mrcs")))
    if not (pdbs and maps and stars):
        from perc_platform.errors import DataNotFoundError

        raise DataNotFoundError(f"{source} needs a structure named like 1abc.pdb, a map named like emd_1234.map "
                                "and a STAR file beside its .mrcs stacks for `perc demo --real-data`")
    entry = root / "empiar" / EMPIAR_ID.split("-")[1] / "data" / "particles"
    entry.mkdir(parents=True, exist_ok=True)
    star = max(stars, key=_usable_rows)  # the STAR file with the most particles whose stacks are there
    for item in [star, *star.parent.glob("*.mrcs")]:
        link = entry / item.name
        if not link.exists():
            os.symlink(item.resolve(), link)
    return DemoArchive(root=root, pdb_id=pdbs[0].stem.upper(), emdb_id=f"EMD-{maps[0].stem.split('_')[1]}",
                       empiar_id=EMPIAR_ID, star=f"data/particles/{star.name}", resolution=6.6,
                       indexed=(source,))
