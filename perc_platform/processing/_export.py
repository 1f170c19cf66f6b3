"""Write particle stacks as ``.mrcs`` (chunk by chunk, in parallel) with a RELION 3.1 STAR file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from perc_platform.conventions import OPTICS_ATTRS, PARTICLE_COORDS, validate_particles
from perc_platform.errors import ParameterError
from perc_platform.io.mrc_header import HEADER_BYTES, parse_header
from perc_platform.io.mrc_writer import create_stack
from perc_platform.io.star_writer import write_star
from perc_platform.processing._tasks import Progress, run_chunk_tasks

__all__ = ["MrcsRegion", "create_mrcs", "write_particles", "write_star_for"]


class MrcsRegion:
    """A picklable ``__setitem__`` target over the data of an existing ``.mrcs`` file (for ``da.store``).

    Each write opens the file's data block as a ``numpy.memmap``, so workers write disjoint particle ranges
    of one file at once without holding a handle in the graph.
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, ...], dtype: str = "float32") -> None:
        with open(path, "rb") as handle:
            self.offset = parse_header(handle.read(HEADER_BYTES), os.fspath(path)).data_offset
        self.path, self.shape, self.dtype = os.fspath(path), tuple(shape), np.dtype(dtype)

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        target = np.memmap(self.path, dtype=self.dtype, mode="r+", offset=self.offset, shape=self.shape)
        target[key] = value
        target.flush()
        del target


def create_mrcs(path: str | os.PathLike[str], shape: tuple[int, ...], pixel_size: float | None) -> MrcsRegion:
    """Create an image-stack ``.mrcs`` of ``shape`` (float32, data not yet written) and return its target."""
    create_stack(path, (shape[0], shape[1], shape[2]), "float32", pixel_size=pixel_size)  # statistics: unknown
    return MrcsRegion(path, shape)


def write_star_for(images: xr.DataArray, star: str | os.PathLike[str], stack: str | os.PathLike[str]) -> Path:
    """Write a RELION 3.1 STAR file (optics + particles) for ``images`` stored in order in ``stack``."""
    n, ny, _ = images.shape
    name = os.path.relpath(os.fspath(stack), os.path.dirname(os.path.abspath(star)))
    optics: dict[str, Any] = {"rlnOpticsGroupName": "opticsGroup1", "rlnOpticsGroup": 1}
    for attr, column in OPTICS_ATTRS.items():
        if attr in images.attrs:
            optics[column] = images.attrs[attr]
    if "pixel_size" in images.attrs:
        optics["rlnImagePixelSize"] = images.attrs["pixel_size"]
    optics["rlnImageSize"] = ny
    columns: dict[str, np.ndarray] = {"rlnImageName": np.array([f"{i + 1:06d}@{name}" for i in range(n)])}
    for coord, column in PARTICLE_COORDS.items():
        if coord in images.coords and coord not in ("image_name", "optics_group") \
                and images.coords[coord].dims == (images.dims[0],):
            columns[column] = np.asarray(images.coords[coord].values)
    columns["rlnOpticsGroup"] = np.ones(n, dtype=np.int64)
    return write_star(star, {"optics": pd.DataFrame([optics]), "particles": pd.DataFrame(columns)})


def _write_chunk(block: np.ndarray, target: MrcsRegion, start: int) -> int:
    target[start:start + block.shape[0]] = np.asarray(block, dtype=np.float32)
    return start


def write_particles(images: xr.DataArray, path: str | os.PathLike[str], star: str | os.PathLike[str] | bool = True,
                    *, progress: Progress | None = None) -> tuple[Path, Path | None]:
    """Write ``images`` to an ``.mrcs`` stack (float32) and, by default, a RELION 3.1 STAR file beside it.

    Chunks are computed and written in parallel (on the distributed client when one is active) and never
    gathered in this process; ``progress(done, total)`` is called as chunks finish. ``star`` is a path,
    ``True`` (``path`` with ``.star``) or ``False``. Returns the stack and STAR paths.
    """
    validate_particles(images)
    path = Path(path)
    if path.suffix not in (".mrcs", ".mrc"):
        raise ParameterError(f"{path}: name particle stacks *.mrcs (or *.mrc)")
    target = create_mrcs(path, tuple(images.shape), images.attrs.get("pixel_size"))
    data = images.data if isinstance(images.data, da.Array) else da.from_array(images.values, chunks=(1024, -1, -1))
    starts = np.concatenate([[0], np.cumsum(data.chunks[0])[:-1]]).tolist()
    write = dask.delayed(_write_chunk, pure=False)
    run_chunk_tasks([write(block, target, start) for block, start in zip(data.to_delayed().ravel(), starts,
                                                                          strict=True)], progress=progress)
    star_path = None
    if star:
        star_path = path.with_suffix(".star") if star is True else Path(star)
        write_star_for(images, star_path, path)
    return path, star_path
