"""Make small real data files for tests, benchmarks and the demo (MRC stacks and maps, RELION STAR)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from perc_platform.io.mrc_writer import MrcStackWriter
from perc_platform.io.mrc_writer import write_volume as _write_volume

__all__ = ["write_stack", "write_star", "write_volume"]


def write_stack(path: str | os.PathLike[str], n: int, shape: tuple[int, int] = (64, 64), *, dtype: str = "float32",
                seed: int = 0, pixel_size: float = 1.0, block: int = 1024) -> Path:
    """Write an ``.mrcs`` stack of ``n`` random images, block by block (bounded memory); return its path.

    Image ``i`` is standard-normal noise from ``numpy.random.default_rng([seed, i // block])``, so any
    block can be regenerated independently for checks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with MrcStackWriter(path, shape, dtype, voxel_size=pixel_size) as writer:
        for start in range(0, n, block):
            stop = min(n, start + block)
            rng = np.random.default_rng([seed, start // block])
            values = rng.standard_normal((stop - start, *shape), dtype=np.float32)
            if np.dtype(dtype).kind in "iu":
                values = np.clip(values * 20 + (100 if np.dtype(dtype).kind == "u" else 0),
                                 np.iinfo(dtype).min, np.iinfo(dtype).max)
            writer.append(values.astype(dtype))
    return path


def write_volume(path: str | os.PathLike[str], data: np.ndarray, *, voxel_size: float | Sequence[float] = 1.0,
                 origin: Sequence[float] = (0.0, 0.0, 0.0)) -> Path:
    """Write a (z, y, x) array as an MRC map with the given voxel size and ORIGIN field (Angstrom)."""
    return _write_volume(path, np.ascontiguousarray(data), voxel_size=voxel_size, origin=origin)


def write_star(path: str | os.PathLike[str], stack_name: str, n: int, *, pixel_size: float = 1.5,
               voltage: float = 300.0, cs: float = 2.7, amplitude_contrast: float = 0.1, seed: int = 0,
               class_numbers: Sequence[int] | None = None, rows: Sequence[int] | None = None) -> Path:
    """Write a RELION 3.1 STAR file (optics + particles) for images of ``stack_name`` (all or ``rows``)."""
    rng = np.random.default_rng(seed)
    rows = list(range(n)) if rows is None else list(rows)
    classes = list(class_numbers) if class_numbers is not None else [1 + i % 3 for i in range(len(rows))]
    lines = ["# version 30001", "", "data_optics", "", "loop_", "_rlnOpticsGroupName #1", "_rlnOpticsGroup #2",
             "_rlnVoltage #3", "_rlnSphericalAberration #4", "_rlnAmplitudeContrast #5", "_rlnImagePixelSize #6",
             f"opticsGroup1 1 {voltage} {cs} {amplitude_contrast} {pixel_size}", "", "# version 30001", "",
             "data_particles", "", "loop_"]
    columns = ["rlnImageName", "rlnMicrographName", "rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle",
               "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnOriginXAngst", "rlnOriginYAngst",
               "rlnClassNumber", "rlnOpticsGroup"]
    lines += [f"_{c} #{i + 1}" for i, c in enumerate(columns)]
    for k, row in enumerate(rows):
        du = rng.uniform(10000, 25000)
        values = [f"{row + 1:06d}@{stack_name}", f"mic_{row // 10:04d}.mrc", f"{du:.2f}", f"{du - 300:.2f}",
                  f"{rng.uniform(0, 180):.2f}", f"{rng.uniform(-180, 180):.3f}", f"{rng.uniform(0, 180):.3f}",
                  f"{rng.uniform(-180, 180):.3f}", f"{rng.uniform(-3, 3):.3f}", f"{rng.uniform(-3, 3):.3f}",
                  str(classes[k]), "1"]
        lines.append(" ".join(values))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
